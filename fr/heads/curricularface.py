"""CurricularFace and ReCurricularFace: ArcFace's target plus hard negatives re-weighted by a curriculum
parameter ``t``, an EMA of the mean target cosine."""
from __future__ import annotations

import math

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target

COEF_MODES = ("paper_values", "equation")
MASK_MODES = ("curricular", "fixed")
#: ``(a, b)`` of ReCurricularFace's hard-negative coefficient ``I = a c_j + b t`` in the paper's experiments (Sec. 4.2).
PAPER_COEFFICIENTS = (1.1, 0.4)


def curricular_hard_threshold(c_y: torch.Tensor, m: float) -> torch.Tensor:
    """CurricularFace's hard-negative threshold: a negative with a cosine above ``cos(θ_y + m)`` is hard. The
    cos/sin expansion without the th/mm fallback (the official mask), per row."""
    return arc_target(c_y, m, th_mm=False)


def curricular_negative(c: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """CurricularFace's logit of a hard negative (before the scale): ``N(t, c) = c (t + c)``."""
    return c * (t + c)


def recurricular_negative(c: torch.Tensor, t: torch.Tensor | float, a: float, b: float) -> torch.Tensor:
    """ReCurricularFace's logit of a hard negative (before the scale): ``N(t, c) = c (a c + b t)`` (Eq. 1, 6)."""
    return c * (a * c + b * t)


def ema_update_(buffer: torch.Tensor, value: torch.Tensor, ctx: ShardContext, weight: float) -> None:
    """In place ``buffer <- (1 - weight) buffer + weight * mean(value over valid rows)``; unchanged when no
    row is valid. ``value`` is per row and global (e.g. ``ctx.target(cos)``), so every shard agrees."""
    with torch.no_grad():
        mean = ctx.mean_valid(value.detach().to(buffer.dtype))
        new = (1.0 - weight) * buffer + weight * mean
        buffer.copy_(torch.where(ctx.valid.any(), new, buffer))


def negative_fraction(mask: torch.Tensor, ctx: ShardContext) -> torch.Tensor:
    """Fraction of the non-target entries of valid rows (over all shards) where ``mask`` is true."""
    with torch.no_grad():
        negative = ~ctx.onehot(mask) & ctx.valid[:, None]
        n = ctx.all_sum((mask & negative).sum().double())
        return n / ctx.all_sum(negative.sum().double()).clamp_min(1.0)


def _check_ema_weight(name: str, ema_weight: float) -> None:
    if not 0.0 <= ema_weight <= 1.0:
        raise ValueError(f"{name}: ema_weight (weight of the new batch mean in the EMA of t) must be in [0, 1], "
                         f"got {ema_weight}")


@register_head(
    "curricularface",
    paper="Huang et al., CurricularFace: adaptive curriculum learning loss for deep face recognition, CVPR 2020 "
          "(arXiv:2004.00288)",
    equation="Sec. 3.2: loss with T(cos theta_y) = cos(theta_y + m), N(t, cos theta_j), and the EMA of t",
    tex=(r"L = -\log \frac{e^{s\,T(\cos\theta_y)}}{e^{s\,T(\cos\theta_y)} + \sum_{j\ne y} e^{s\,N(t,\cos\theta_j)}},"
         r"\quad N(t, c_j) = \begin{cases} c_j & T(\cos\theta_y) \ge c_j \\ c_j (t + c_j) & "
         r"T(\cos\theta_y) < c_j \end{cases},"
         r"\quad t \leftarrow 0.99\,t + 0.01\,\overline{\cos\theta_y}"),
    official="HuangYG123/CurricularFace head/metrics.py (CurricularFace); identical in JDAI-CV/FaceX-Zoo "
             "head/CurricularFace.py",
    notes=(
        "Official-code semantics: t is a buffer starting at 0, updated BEFORE it is used, with weight 0.01 on "
        "the new batch mean of cos(theta_y) (the paper writes 'alpha = 0.99' for the EMA, ambiguous about "
        "which side). The official code updates t in every forward; here only in training, over valid rows, "
        "and the batch mean is over the whole (all-gathered) batch, not one GPU's share.",
        "Hard-negative mask c_j > cos(theta_y + m) with cos(theta_y + m) from the cos/sin expansion WITHOUT "
        "the th/mm fallback; the target logit itself uses ArcFace's th/mm fallback (c_y - m sin m when "
        "c_y <= cos(pi - m)), as the official code.",
        "sqrt(1 - c_y^2) has its radicand clamped at 1e-7 (official: none, which gives NaN gradients at "
        "c_y = +-1). That shifts the value where the clamp is active, 1 - c_y^2 < 1e-7 (in float32 only at "
        "c_y = +-1 exactly; in float64 within 3.2e-4 rad of theta_y = 0 or pi): cos(theta_y + m) becomes "
        "c_y cos m - 3.2e-4 sin m, 1.5e-4 lower at m = 0.5, in the target logit at c_y = 1 (about 0.01 at "
        "s = 64; c_y = -1 takes the th/mm branch) and in the hard-negative threshold. Elsewhere the value "
        "equals the official one to float64 rounding.",
        "t carries no gradient; a hard negative's gradient is s (t + 2 c_j).",
    ),
    summary="ArcFace target; hard negatives become c(t + c), with t an EMA of the mean target cosine.",
)
class CurricularFace(MarginRule):
    """CurricularFace: target ``s T(c_y)`` (ArcFace with th/mm); negative ``s c_j`` if easy and
    ``s c_j (t + c_j)`` if hard (``c_j > cos(theta_y + m)``).

    ``ema_weight``: weight of the batch mean of ``c_y`` when updating ``t`` (official 0.01).
    State: ``t`` (scalar buffer, init 0), updated before use in training only.
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, ema_weight: float = 0.01):
        super().__init__()
        _check_ema_weight(type(self).__name__, ema_weight)
        self.s, self.m, self.ema_weight = float(s), float(m), float(ema_weight)
        self.register_buffer("t", torch.zeros(()))

    # the two pieces ReCurricularFace changes
    def hard_threshold(self, c_y: torch.Tensor) -> torch.Tensor:
        """Per row: a negative with a cosine above this is hard. ``cos(theta_y + m)``, no th/mm."""
        return curricular_hard_threshold(c_y, self.m)

    def negative_logit(self, cos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``N(t, c)`` of a hard negative (before the scale)."""
        return curricular_negative(cos, t)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        c_y = ctx.target(cos)
        if self.training:
            ema_update_(self.t, c_y, ctx, self.ema_weight)
        t = self.t.to(cos.dtype)
        with torch.no_grad():
            hard = (cos > self.hard_threshold(c_y.detach())[:, None]) & ~ctx.onehot(cos) & ctx.valid[:, None]
        out = torch.where(hard, self.negative_logit(cos, t), cos)
        out = ctx.replace_target(out, arc_target(c_y, self.m))
        self.stat(t=self.t, hard_neg_frac=negative_fraction(hard, ctx))
        return self.s * out


def recurricular_coefficients(E: float, m: float) -> tuple[float, float]:
    """``(a, b)`` of ReCurricularFace's Eq. 6, ``I = a c_j + b t``, from the expected minimum inter-centre
    angle ``E`` in DEGREES and the margin ``m`` in radians: ``a = 1 / cos((E - m)/2)``,
    ``b = (1 - (E - m)/2)(E + m)/2`` (Eq. 5). E = 80 deg, m = 0.5: a = 1.1096, b = 0.5232."""
    e = math.radians(E)
    return 1.0 / math.cos((e - m) / 2.0), (1.0 - (e - m) / 2.0) * (e + m) / 2.0


@register_head(
    "recurricularface",
    paper="Sang and Yang, ReCurricularFace: revisiting CurricularFace for hard sample mining (Yunnan Normal "
          "University)",
    equation="Eq. 1 with N = c_j I(t, c_j), Eq. 6, and the values of Sec. 4.2 (I = 1.1 c_j + 0.4 t)",
    tex=(r"L = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + \sum_{j\ne y} e^{s\,N(t,\cos\theta_j)}},"
         r"\quad N(t, c_j) = \begin{cases} c_j & \cos(\theta_y + m) \ge c_j \\ c_j\,(1.1\,c_j + 0.4\,t) & "
         r"\text{otherwise} \end{cases}"),
    official="none public",
    notes=(
        "Everything but the hard-negative coefficient follows CurricularFace's official code (t EMA with "
        "weight 0.01 on the new batch mean, init 0, update before use; ArcFace target with th/mm and the "
        "clamped sqrt(1 - c_y^2) described in CurricularFace's notes; s = 64, which the paper does not state).",
        "coef_mode='paper_values' (default) uses the paper's Sec. 4.2 numbers: N = c_j (1.1 c_j + 0.4 t). "
        "The paper's Fig. 1 supports the product form c_j * I (its boundary starts wider than ArcFace's and "
        "shrinks to it as t -> 1); the reading N = 1.1 c_j + 0.4 t does not.",
        "Inconsistency: with E = 80 deg (taken 'from ArcFace'; no unit in the paper), Eq. 6's coefficients are "
        "a = 1/cos((E-m)/2) = 1.1096 (~1.1, consistent) but b = (1-(E-m)/2)(E+m)/2 = 0.5232, not 0.4; "
        "solving Eq. 4 exactly gives b = -0.064. coef_mode='equation' uses Eq. 6 for any E (degrees).",
        "Inconsistency: the paper's own Eq. 2 (expected minimum angle between n random centres in d dims) "
        "gives 55.7 deg for CASIA (n = 10,572, d = 512), not 80; it is not used.",
        "The hard-negative mask is not restated. mask_mode='curricular' (default): CurricularFace's "
        "c_j > cos(theta_y + m). mask_mode='fixed': c_j > cos((E - m)/2), the 'inside the non-target "
        "boundary' condition of Sec. 3.",
    ),
    summary="CurricularFace with the hard-negative coefficient t + c replaced by 1.1 c + 0.4 t.",
)
class ReCurricularFace(CurricularFace):
    """ReCurricularFace: CurricularFace with hard negatives ``s c_j (a c_j + b t)``.

    ``coef_mode``: ``"paper_values"`` (``a, b = 1.1, 0.4``) or ``"equation"`` (Eq. 6 from ``E``).
    ``E``: expected minimum inter-centre angle in degrees (used by ``"equation"`` and ``mask_mode="fixed"``).
    ``mask_mode``: ``"curricular"`` (``c_j > cos(theta_y + m)``) or ``"fixed"`` (``c_j > cos((E - m)/2)``).
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, E: float = 80.0, coef_mode: str = "paper_values",
                 mask_mode: str = "curricular", ema_weight: float = 0.01):
        super().__init__(s=s, m=m, ema_weight=ema_weight)
        if coef_mode not in COEF_MODES:
            raise ValueError(f"recurricularface: coef_mode must be one of {COEF_MODES}, got {coef_mode!r}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"recurricularface: mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if not 0.0 < E < 180.0:
            raise ValueError(f"recurricularface: E is an angle in degrees in (0, 180), got {E}")
        self.E, self.coef_mode, self.mask_mode = float(E), coef_mode, mask_mode
        self.a, self.b = (PAPER_COEFFICIENTS if coef_mode == "paper_values"
                          else recurricular_coefficients(self.E, self.m))
        self.fixed_threshold = math.cos((math.radians(self.E) - self.m) / 2.0)

    def hard_threshold(self, c_y: torch.Tensor) -> torch.Tensor:
        if self.mask_mode == "fixed":
            return torch.full_like(c_y, self.fixed_threshold)
        return super().hard_threshold(c_y)

    def negative_logit(self, cos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return recurricular_negative(cos, t, self.a, self.b)
