"""MagFace and Mag-CosFace: a margin that grows with the feature norm, plus a regulariser on the norm.

``a = clamp(||x||, l_a, u_a)``, ``m(a) = (u_m - l_m)/(u_a - l_a) · (a - l_a) + l_m`` and
``g(a) = a / u_a² + 1 / a``; the loss is ``CE + λ_g · mean_i g(a_i)``. The norm is NOT detached: the
cross-entropy reaches it through ``m(a)`` and the regulariser directly, which is how MagFace learns norms that
measure quality. Outside ``[l_a, u_a]`` the clamp gives the norm no gradient (as the official code).
"""
from __future__ import annotations

import warnings

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target


def magface_margin(a: torch.Tensor, l_a: float, u_a: float, l_m: float, u_m: float) -> torch.Tensor:
    """``m(a)``, linear from ``l_m`` at ``a = l_a`` to ``u_m`` at ``a = u_a`` (``a`` already clamped)."""
    return (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m


def magface_regulariser(a: torch.Tensor, u_a: float) -> torch.Tensor:
    """``g(a) = a / u_a² + 1 / a``: convex, decreasing on ``(0, u_a]``, minimum ``2 / u_a`` at ``a = u_a``."""
    return a / (u_a * u_a) + 1.0 / a


def magface_target(c_y: torch.Tensor, m: torch.Tensor, *, easy_margin: bool = True) -> torch.Tensor:
    """MagFace's target cosine (before ``s``): ``cos(θ_y + m)`` with the official fallbacks, the easy margin
    (``c_y`` kept where ``c_y <= 0``) or else insightface's ``c_y - m sin m`` where ``θ_y + m > π``."""
    return arc_target(c_y, m, easy_margin=easy_margin, th_mm=True)


def mag_cosface_target(c_y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mag-CosFace's target cosine (before ``s``): ``c_y - m`` (the official cosine branch, no fallback)."""
    return c_y - m


def magface_lambda_bound(s: float = 64.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45,
                         u_m: float = 0.8) -> float:
    """The smallest ``λ_g`` for which MagFace's optimal norm is unique (the official trainer prints it):
    ``λ_g ≥ s k u_a² l_a² / (u_a² - l_a²)``, ``k = (u_m - l_m)/(u_a - l_a)``. 22.59 for the MagFace defaults
    (so the trainer's default λ_g = 20 violates it and run.sh's 35 satisfies it), 29.04 with Mag-CosFace's
    ``l_m = 0.35``."""
    k = (u_m - l_m) / (u_a - l_a)
    return s * k * u_a ** 2 * l_a ** 2 / (u_a ** 2 - l_a ** 2)


@register_head(
    "magface",
    paper="Meng, Zhao, Huang, Zhou, MagFace: a universal representation for face recognition and quality "
          "assessment, CVPR 2021 (arXiv:2103.06627)",
    equation="Sec. 3.2, L_Mag: CE with cos(theta_y + m(a_i)) plus lambda_g g(a_i) (restated in SMAFace Sec. 2)",
    tex=(r"L_i = -\log\frac{e^{s\cos(\theta_y + m(a_i))}}{e^{s\cos(\theta_y + m(a_i))} + \sum_{j\ne y} "
         r"e^{s\cos\theta_j}} + \lambda_g\,g(a_i),\ m(a) = \frac{u_m - l_m}{u_a - l_a}(a - l_a) + l_m,\ "
         r"g(a) = \frac{a}{u_a^2} + \frac{1}{a}"),
    official="IrvingMeng/MagFace models/magface.py (MagLinear, MagLoss), run/run.sh",
    default_init="unit_uniform",
    notes=(
        "easy_margin=True by default, as the official MagLinear is constructed (margin only where cos theta_y > 0, "
        "c_y kept otherwise); easy_margin=False gives the per-sample th/mm fallback of the official else-branch.",
        "a = clamp(||x||, l_a, u_a) is not detached: the CE gradient reaches the norm through m(a) by design.",
        "lambda_g = 35 from run/run.sh; the trainer's default 20 (also FaceX-Zoo's) is below the feasibility bound "
        "lambda_g >= s k u_a^2 l_a^2/(u_a^2 - l_a^2) = 22.59 that the trainer itself prints (a warning here).",
        "The official sin(theta) = sqrt(1 - c^2) has an infinite gradient at |c| = 1; we clamp the radicand at "
        "1e-7 (fr.heads.base.safe_sin). That shifts the value where the clamp is active, 1 - c_y^2 < 1e-7 (in "
        "float32 only at c_y = 1 exactly; in float64 for theta_y < 3.2e-4 rad; c_y = -1 takes the easy-margin "
        "or th/mm branch): the target cosine is c_y cos m - 3.2e-4 sin m: at c_y = 1, 3.2e-4 sin m below cos(m) "
        "(1.4e-4 to 2.3e-4 for m in [0.45, 0.8]). Elsewhere it equals the official value to float64 rounding.",
        "The regulariser is averaged over the rows with a label (the official code: over the batch).",
    ),
    summary="Angular margin that grows with the feature norm, plus a norm regulariser, so that the norm learns "
            "face quality.",
)
class MagFace(MarginRule):
    """MagFace: target logit ``s cos(θ_y + m(a))`` (easy margin by default), others ``s cos θ_j``; loss
    ``CE + λ_g mean g(a)`` with ``a = clamp(||x||, l_a, u_a)`` (gradient kept).

    Records the loss components (``loss_ce``, ``loss_g``) and ``mean_norm``, ``mean_margin`` as stats. Warns when
    ``lambda_g`` is below :func:`magface_lambda_bound`.
    """

    def __init__(self, s: float = 64.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8,
                 lambda_g: float = 35.0, easy_margin: bool = True):
        super().__init__()
        self._init_common(s, l_a, u_a, l_m, u_m, lambda_g)
        self.easy_margin = bool(easy_margin)

    def _init_common(self, s, l_a, u_a, l_m, u_m, lambda_g) -> None:
        name = type(self).__name__
        if not 0.0 < l_a < u_a:
            raise ValueError(f"{name}: need 0 < l_a < u_a, got l_a={l_a}, u_a={u_a}")
        if l_m > u_m:
            raise ValueError(f"{name}: need l_m <= u_m (the margin increases with the norm), got {l_m} > {u_m}")
        if lambda_g < 0:
            raise ValueError(f"{name}: lambda_g must be >= 0, got {lambda_g}")
        self.s, self.l_a, self.u_a = float(s), float(l_a), float(u_a)
        self.l_m, self.u_m, self.lambda_g = float(l_m), float(u_m), float(lambda_g)
        bound = magface_lambda_bound(self.s, self.l_a, self.u_a, self.l_m, self.u_m)
        if self.lambda_g < bound:
            warnings.warn(f"{name}: lambda_g={self.lambda_g:g} is below the feasibility bound {bound:.2f} "
                          f"(s k u_a^2 l_a^2/(u_a^2 - l_a^2), printed by the official trainer): MagFace's "
                          f"guarantee of a unique optimal feature norm does not hold", stacklevel=3)

    def clamped_norm(self, norms: torch.Tensor) -> torch.Tensor:
        return norms.clamp(self.l_a, self.u_a)

    def margin(self, a: torch.Tensor) -> torch.Tensor:
        return magface_margin(a, self.l_a, self.u_a, self.l_m, self.u_m)

    def target(self, c_y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Target cosine (before ``s``) for target cosines ``c_y`` and per-row margins ``m``."""
        return magface_target(c_y, m, easy_margin=self.easy_margin)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        m = self.margin(self.clamped_norm(norms))
        c_y = cos.gather(1, ctx.local_labels.clamp_min(0)[:, None]).squeeze(1)
        return self.s * ctx.replace_target(cos, self.target(c_y, m))

    def loss(self, logits: torch.Tensor, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        a = self.clamped_norm(norms)
        ce = ctx.cross_entropy(logits)
        reg = ctx.mean_valid(magface_regulariser(a, self.u_a))
        self.stat(loss_ce=ce, loss_g=reg, mean_norm=ctx.mean_valid(a), mean_margin=ctx.mean_valid(self.margin(a)))
        return ce + self.lambda_g * ctx.count_once(reg)


@register_head(
    "mag_cosface",
    paper="Meng, Zhao, Huang, Zhou, MagFace: a universal representation for face recognition and quality "
          "assessment, CVPR 2021 (arXiv:2103.06627); Mag-CosFace from the official repository",
    equation="L_Mag with the CosFace target s(cos theta_y - m(a_i))",
    tex=(r"L_i = -\log\frac{e^{s(\cos\theta_y - m(a_i))}}{e^{s(\cos\theta_y - m(a_i))} + \sum_{j\ne y} "
         r"e^{s\cos\theta_j}} + \lambda_g\,g(a_i)"),
    official="IrvingMeng/MagFace models/parallel_maglinear.py (useArcFace=0), run/run_dist_cos.sh",
    default_init="unit_uniform",
    notes=(
        "Official cosine branch: target cos theta_y - m(a), no easy margin and no th/mm.",
        "l_m = 0.35, u_m = 0.8, l_a = 10, u_a = 110, lambda_g = 150 from run/run_dist_cos.sh (feasibility bound "
        "29.04).",
    ),
    summary="MagFace's norm-dependent margin applied as an additive cosine margin.",
)
class MagCosFace(MagFace):
    """Mag-CosFace: target logit ``s (cos θ_y - m(a))``, others ``s cos θ_j``; loss ``CE + λ_g mean g(a)``."""

    def __init__(self, s: float = 64.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.35, u_m: float = 0.8,
                 lambda_g: float = 150.0):
        MarginRule.__init__(self)
        self._init_common(s, l_a, u_a, l_m, u_m, lambda_g)

    def target(self, c_y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return mag_cosface_target(c_y, m)
