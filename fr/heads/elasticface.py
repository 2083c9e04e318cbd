"""ElasticFace: ArcFace / CosFace with a margin drawn per sample from a normal distribution.

Boutros, Damer, Kirchbuchner and Kuijper, *ElasticFace: Elastic Margin Loss for Deep Face Recognition*,
CVPR Workshops 2022 (arXiv:2109.09416). Official code: ``fdbtrs/ElasticFace`` ``utils/losses.py``.

In training, every valid row ``i`` gets its own margin ``m_i ~ N(m, sigma^2)``, drawn afresh each step:

* ElasticFace-Arc: target logit ``s cos(theta_y + m_i)``;
* ElasticFace-Cos: target logit ``s (cos theta_y - m_i)``;

non-target logits are ``s cos theta_j``; the loss is softmax cross-entropy. The "+" variants sort the batch's
margins so that samples close to their centre (large ``cos theta_y``) get the small ones. In eval mode every
row gets the mean margin ``m``, so a head in eval mode is ArcFace / CosFace with margin ``m``.

Random numbers: the margins come from torch's global generator (``torch.normal``), one draw per valid row
in row order, always in float32 (as the official code, whose ``torch.normal`` uses the default dtype), then
cast to the head's dtype. So ``torch.manual_seed`` reproduces them whatever the head's dtype, and a batch
with ignored rows (label -1) gives its valid rows the same margins as the batch without them.

Under a sharded Partial FC every rank draws the margins of the whole gathered batch from its own generator.
A row's margin only touches its target column, which lives on exactly one rank, so the loss is an
ElasticFace loss whatever the ranks draw; seeding all ranks alike reproduces one process exactly (tested).
"""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target

PLUS_MODES = ("official", "intended")

_PAPER = ("Boutros et al., ElasticFace: elastic margin loss for deep face recognition, CVPR Workshops 2022 "
          "(arXiv:2109.09416)")
_OFFICIAL = "fdbtrs/ElasticFace utils/losses.py (ElasticArcFace, ElasticCosFace; plus=True); config/config.py"
_EQUATION = ("ArcFace / CosFace target logit with a per-sample margin m_i ~ N(m, sigma^2) (equation numbers not "
             "checked: the full text was not available)")
_COMMON_NOTES = (
    "sigma defaults are the official config/config.py values (Arc 0.05, Arc+ 0.0175, Cos 0.05, Cos+ 0.02); the "
    "official class constructors default to sigma=0.0125.",
    "Margins are not clipped (the official code carries an unused '.clamp(m - std, m + std)' comment), so a "
    "margin can in principle be negative.",
    "Eval mode uses the mean margin m (deterministic); the official code has no eval path for the head.",
)
_ARC_NOTES = (
    "The target logit is cos(theta_y + m_i) differentiated exactly (the official code applies acos_/cos_ "
    "through autograd), computed as c cos m_i - sqrt(1 - c^2) sin m_i with the radicand clamped at 1e-7, "
    "which keeps the gradient finite at cos = +-1 where the official acos gradient is infinite. The clamp "
    "also changes the value where it is active, 1 - c^2 < 1e-7 (in float32 only at c = +-1 exactly; in "
    "float64 within 3.2e-4 rad of theta_y = 0 or pi): the target cosine is then c cos m_i - 3.2e-4 sin m_i, "
    "3.2e-4 sin m_i below cos(theta_y + m_i) at c = +-1 (1.5e-4 at m_i = 0.5, about 0.01 in the logit at "
    "s = 64). Elsewhere it equals the official value to float64 rounding.",
    "No fallback when theta_y + m_i > pi (official); th_mm=True applies insightface's cos(theta) - m sin(m) "
    "fallback with each row's own margin.",
)
_PLUS_NOTES = (
    "plus_mode='official' (default, the code behind the released models and reported numbers): the margins are "
    "sorted ascending, idx = argsort(c_y, descending) and row i receives sorted_margin[idx[i]]; that is the "
    "rank-matching only when idx is an involution, and in general a permutation unrelated to row i's own rank "
    "(rank correlation of margin and c_y near 0, see stat margin_rank_corr).",
    "plus_mode='intended' (the paper's description): the k-th smallest margin goes to the row with the k-th "
    "largest c_y (rank correlation -1).",
    "c_y used for the ranking is detached and taken over all classes of all shards; rows labelled -1 take no "
    "part in the ranking.",
)


def assign_plus_margins(margins: torch.Tensor, cos_y: torch.Tensor, mode: str) -> torch.Tensor:
    """ElasticFace+ margin assignment for one batch.

    ``margins``: the ``n`` sampled margins; ``cos_y``: the target cosine of the same ``n`` rows. Returns the
    margin of each row. ``"intended"``: the k-th smallest margin goes to the row with the k-th largest
    ``cos_y``. ``"official"``: row ``i`` gets ``sorted_margins[idx[i]]`` with ``idx = argsort(cos_y,
    descending)`` (``margin[idx]`` in fdbtrs/ElasticFace). Sorts are stable, so ties are resolved by row order.
    """
    if mode not in PLUS_MODES:
        raise ValueError(f"plus_mode must be one of {PLUS_MODES}, got {mode!r}")
    if margins.shape != cos_y.shape or margins.dim() != 1:
        raise ValueError(f"margins and cos_y must both have shape (n,), got {tuple(margins.shape)} "
                         f"and {tuple(cos_y.shape)}")
    sorted_m = torch.sort(margins, stable=True).values
    order = torch.sort(cos_y, descending=True, stable=True).indices  # order[k]: row with k-th largest cos_y
    if mode == "official":
        return sorted_m[order]
    out = torch.empty_like(sorted_m)
    out[order] = sorted_m
    return out


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of two 1-d tensors (ties by order; 0 when either is constant or n < 2)."""
    if a.numel() < 2 or bool((a == a[0]).all()) or bool((b == b[0]).all()):
        return a.new_zeros((), dtype=torch.float64)
    ra = torch.argsort(torch.argsort(a, stable=True)).to(torch.float64)
    rb = torch.argsort(torch.argsort(b, stable=True)).to(torch.float64)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return (ra * rb).sum() / torch.sqrt((ra * ra).sum() * (rb * rb).sum())


class _ElasticMargin(MarginRule):
    """Shared machinery: drawing, assigning and recording the per-row margins."""

    plus: bool = False

    #: set by the "+" variants
    plus_mode: str = ""

    def __init__(self, s: float, m: float, sigma: float):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma (the margin's standard deviation) must be >= 0, got {sigma}")
        self.s, self.m, self.sigma = float(s), float(m), float(sigma)

    def _set_plus_mode(self, plus_mode: str) -> None:
        if plus_mode not in PLUS_MODES:
            raise ValueError(f"plus_mode must be one of {PLUS_MODES}, got {plus_mode!r}")
        self.plus_mode = plus_mode

    def margins(self, cos: torch.Tensor, ctx: ShardContext) -> torch.Tensor:
        """The margin of every row, shape ``(B,)`` in ``cos.dtype`` (``m`` on ignored rows and in eval mode)."""
        out = torch.full((cos.shape[0],), self.m, dtype=cos.dtype, device=cos.device)
        if not self.training:
            self.stat(margin_mean=self.m, margin_std=0.0)
            return out
        rows = ctx.valid.nonzero().squeeze(1)
        if rows.numel() == 0:
            return out
        draws = torch.normal(self.m, self.sigma, size=(rows.numel(),), device=cos.device).to(cos.dtype)
        with torch.no_grad():
            if self.plus:
                cos_y = ctx.target(cos.detach())[rows]
                draws = assign_plus_margins(draws, cos_y, self.plus_mode)
                self.stat(margin_rank_corr=rank_correlation(draws, cos_y))
            std = draws.std() if draws.numel() > 1 else draws.new_zeros(())
            # one device-to-host copy for the four statistics
            mean, std, lo, hi = torch.stack([draws.mean(), std, draws.min(), draws.max()]).tolist()
            self.stat(margin_mean=mean, margin_std=std, margin_min=lo, margin_max=hi)
        return out.index_put((rows,), draws)


# --- ElasticFace-Arc -------------------------------------------------------------------------------

@register_head(
    "elastic_arc",
    paper=_PAPER, equation=_EQUATION, official=_OFFICIAL,
    tex=(r"L = -\log \frac{e^{s\cos(\theta_y + m_i)}}{e^{s\cos(\theta_y + m_i)} + \sum_{j\ne y} e^{s\cos\theta_j}},"
         r"\quad m_i \sim \mathcal{N}(m, \sigma^2)"),
    notes=_COMMON_NOTES + _ARC_NOTES,
    summary="ArcFace with a per-sample angular margin drawn from N(m, sigma^2) at every step.",
)
class ElasticArcFace(_ElasticMargin):
    """ElasticFace-Arc: target logit ``s cos(theta_y + m_i)`` with ``m_i ~ N(m, sigma^2)`` per row and step.

    ``s`` scale, ``m`` mean margin (radians), ``sigma`` its standard deviation (0 gives ArcFace in training
    too), ``th_mm`` insightface's fallback for ``theta_y + m_i > pi`` (off in the official code). Eval mode
    uses ``m``. Statistics: ``margin_mean``, ``margin_std``, ``margin_min``, ``margin_max``.
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, sigma: float = 0.05, th_mm: bool = False):
        super().__init__(s, m, sigma)
        self.th_mm = bool(th_mm)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        m = self.margins(cos, ctx)
        c_y = cos.gather(1, ctx.local_labels.clamp_min(0)[:, None]).squeeze(1)
        return self.s * ctx.replace_target(cos, arc_target(c_y, m, th_mm=self.th_mm))


@register_head(
    "elastic_arc_plus",
    paper=_PAPER, equation=_EQUATION + "; ElasticFace+ margin-to-sample assignment", official=_OFFICIAL,
    tex=(r"L = -\log \frac{e^{s\cos(\theta_y + m_{(r_i)})}}{e^{s\cos(\theta_y + m_{(r_i)})} + "
         r"\sum_{j\ne y} e^{s\cos\theta_j}},\quad m_{(1)} \le \dots \le m_{(B)} \sim \mathcal{N}(m, \sigma^2),"
         r"\ r_i = \mathrm{rank}_\downarrow(\cos\theta_{y_i})"),
    notes=_COMMON_NOTES + _ARC_NOTES + _PLUS_NOTES,
    summary="ElasticFace-Arc whose sorted margins go to the samples by their target cosine (smaller margin "
            "for samples closer to their centre).",
)
class ElasticArcFacePlus(ElasticArcFace):
    """ElasticFace-Arc+: ElasticFace-Arc with the batch's margins assigned by target cosine.

    ``plus_mode="official"`` reproduces fdbtrs/ElasticFace (a scrambled assignment), ``"intended"`` gives the
    k-th smallest margin to the row with the k-th largest ``cos theta_y``. Extra statistic
    ``margin_rank_corr``: Spearman correlation of the assigned margins with ``cos theta_y`` (-1 when intended).
    """

    plus = True

    def __init__(self, s: float = 64.0, m: float = 0.5, sigma: float = 0.0175, plus_mode: str = "official",
                 th_mm: bool = False):
        super().__init__(s, m, sigma, th_mm)
        self._set_plus_mode(plus_mode)


# --- ElasticFace-Cos -------------------------------------------------------------------------------

@register_head(
    "elastic_cos",
    paper=_PAPER, equation=_EQUATION, official=_OFFICIAL,
    tex=(r"L = -\log \frac{e^{s(\cos\theta_y - m_i)}}{e^{s(\cos\theta_y - m_i)} + \sum_{j\ne y} e^{s\cos\theta_j}},"
         r"\quad m_i \sim \mathcal{N}(m, \sigma^2)"),
    notes=_COMMON_NOTES,
    summary="CosFace with a per-sample cosine margin drawn from N(m, sigma^2) at every step.",
)
class ElasticCosFace(_ElasticMargin):
    """ElasticFace-Cos: target logit ``s (cos theta_y - m_i)`` with ``m_i ~ N(m, sigma^2)`` per row and step.

    ``s`` scale, ``m`` mean margin, ``sigma`` its standard deviation (0 gives CosFace in training too).
    Eval mode uses ``m``. Statistics: ``margin_mean``, ``margin_std``, ``margin_min``, ``margin_max``.
    """

    def __init__(self, s: float = 64.0, m: float = 0.35, sigma: float = 0.05):
        super().__init__(s, m, sigma)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        m = self.margins(cos, ctx)
        return self.s * (cos - m[:, None] * ctx.onehot(cos).to(cos.dtype))


@register_head(
    "elastic_cos_plus",
    paper=_PAPER, equation=_EQUATION + "; ElasticFace+ margin-to-sample assignment", official=_OFFICIAL,
    tex=(r"L = -\log \frac{e^{s(\cos\theta_y - m_{(r_i)})}}{e^{s(\cos\theta_y - m_{(r_i)})} + "
         r"\sum_{j\ne y} e^{s\cos\theta_j}},\quad m_{(1)} \le \dots \le m_{(B)} \sim \mathcal{N}(m, \sigma^2),"
         r"\ r_i = \mathrm{rank}_\downarrow(\cos\theta_{y_i})"),
    notes=_COMMON_NOTES + _PLUS_NOTES,
    summary="ElasticFace-Cos whose sorted margins go to the samples by their target cosine (smaller margin "
            "for samples closer to their centre).",
)
class ElasticCosFacePlus(ElasticCosFace):
    """ElasticFace-Cos+: ElasticFace-Cos with the batch's margins assigned by target cosine.

    ``plus_mode`` as for :class:`ElasticArcFacePlus`; extra statistic ``margin_rank_corr``.
    """

    plus = True

    def __init__(self, s: float = 64.0, m: float = 0.35, sigma: float = 0.02, plus_mode: str = "official"):
        super().__init__(s, m, sigma)
        self._set_plus_mode(plus_mode)
