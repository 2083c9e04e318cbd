"""The SMAFace family: the AdaFace margin plus a sample-mining weight on each row's cross-entropy.

Paper: "SMAFace: sample mining guided adaptive loss for face recognition" (no code
released). Every rule here computes margin logits exactly as :class:`fr.heads.adaface.AdaFace` (angular form:
SMAFace, eq. 5 / 11) or with the additive part only (SM-CosFace, eq. 4 / 10), and then the mining loss of eq. 2,

    L_i = -I(p_i) log p_i,       p_i = softmax probability of the true class under the margin logits,

with the indicator (weight) of eq. 3, ``I(p) = 1 + α (1/(1 + e^{p - p0}) - 0.5) = 1 + α (σ(p0 - p) - 0.5)``, its
renormalised form ``I*(p) = |7/(7+α)| I(p)`` (eq. 38, the "*" rules) and the appendix-H variants (eq. 39-40).

Gradient through the weight: the paper's gradient analysis (eq. 7-8, appendix C/D, ``st = I'(p) p log p + I(p)``)
differentiates THROUGH ``I(p)``, so that is the default here (``detach_weight=False``). ``detach_weight=True``
treats ``I`` as a constant per row (``st = I(p)``), as focal-style re-weightings often do; the paper does not say
which its (unreleased) training code used.
"""
from __future__ import annotations

import torch

from .registry import register_head
from .adaface import NormAdaptiveMargin
from .base import ShardContext

VARIANTS = ("standard", "weak", "strong", "beta")
P0_DEFAULT = 0.6
#: The paper's renormalisation constant of ``I*`` (eq. 38), "related to p0 = 0.6": ``1/(σ(0.6) - 0.5) = 6.87``.
STAR_CONSTANT = 7.0


def star_factor(alpha: float) -> float:
    """``|7/(7+α)|`` (SMAFace eq. 38), the factor of the "*" rules. Refuses ``α = -7``, where it is infinite."""
    if alpha == -STAR_CONSTANT:
        raise ValueError("SMAFace star factor |7/(7+alpha)| is infinite at alpha = -7 (eq. 38)")
    return abs(STAR_CONSTANT / (STAR_CONSTANT + alpha))


def _sigmoid_argument(p: torch.Tensor, p0: float, variant: str, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``u`` with ``I = 1 + a (σ(u) - 0.5)``: ``u = β (p0 - p)``, one-sided for weak/strong; and ``du/dp``."""
    if variant not in VARIANTS:
        raise ValueError(f"SMAFace mining weight: variant must be one of {VARIANTS}, got {variant!r}")
    d = p0 - p
    if variant == "weak":  # exponent min(p - p0, 0)  <=>  argument max(p0 - p, 0): I = 1 on easy rows (p >= p0)
        u = d.clamp_min(0.0)
        du = -beta * (d > 0).to(p.dtype)
    elif variant == "strong":  # exponent max(p - p0, 0)  <=>  argument min(p0 - p, 0): I = 1 on hard rows (p <= p0)
        u = d.clamp_max(0.0)
        du = -beta * (d < 0).to(p.dtype)
    else:
        u = d
        du = -beta * torch.ones_like(p)
    return beta * u, du


def _amplitude(alpha: float, variant: str, alpha0: float | None) -> float:
    if alpha0 is not None:
        return float(alpha0)
    return 1.0 if variant == "beta" else float(alpha)


def mining_weight(p: torch.Tensor, alpha: float = 1.0, p0: float = P0_DEFAULT, variant: str = "standard",
                  star: bool = False, *, beta: float = 1.0, alpha0: float | None = None) -> torch.Tensor:
    """The SMAFace mining weight ``I(p)`` and its variants, for a tensor ``p`` (differentiable).

    ``I(p) = [|7/(7+α)| if star] · (1 + a (σ(β (p0 - p)) - 0.5))`` with

    * ``variant="standard"``: eq. 3 (= appendix eq. 33), ``a = α``, ``β = 1``;
    * ``"weak"``: eq. 39, exponent ``min(p - p0, 0)``: ``I = 1`` (times the star factor) on easy rows ``p >= p0``;
    * ``"strong"``: eq. 39, exponent ``max(p - p0, 0)``: ``I = 1`` on hard rows ``p <= p0``;
    * ``"beta"``: eq. 40, ``a = α0`` (default 1, the paper's value) and slope ``β``; ``α`` then only enters the
      star prefactor, which the paper keeps as written — read it as a free overall scale.

    ``alpha0`` (when given) replaces ``α`` as the amplitude and ``beta`` scales the exponent in any variant.
    ``star=True`` is eq. 38 ("SMAFace*" for α > 0, "NSMAFace*" for α < 0). Check values (p0 = 0.6): α = 1 gives
    ``I(0), I(0.6), I(1) = 1.1457, 1, 0.9013``; ``I*(0) = 1.0024``. The training rules require α > -7; this
    function only refuses α = -7 with ``star`` (the paper plots α = -8, -16, -32).
    """
    a = _amplitude(alpha, variant, alpha0)
    u, _ = _sigmoid_argument(p, p0, variant, beta)
    w = 1.0 + a * (torch.sigmoid(u) - 0.5)
    return w * star_factor(alpha) if star else w


def mining_weight_grad(p: torch.Tensor, alpha: float = 1.0, p0: float = P0_DEFAULT, variant: str = "standard",
                       star: bool = False, *, beta: float = 1.0, alpha0: float | None = None) -> torch.Tensor:
    """``dI/dp`` of :func:`mining_weight` in closed form: ``α σ(p0 - p)(σ(p0 - p) - 1)`` for the standard variant
    (appendix eq. 34), times ``β`` for the β-variant, zero on the flat side of weak/strong, times the star factor."""
    a = _amplitude(alpha, variant, alpha0)
    u, du = _sigmoid_argument(p, p0, variant, beta)
    sg = torch.sigmoid(u)
    g = a * sg * (1.0 - sg) * du
    return g * star_factor(alpha) if star else g


_PAPER = "SMAFace: sample mining guided adaptive loss for face recognition (no code released)"
_TEX_I = (r"I(p) = 1 + \alpha\Big(\frac{1}{1 + e^{\,p - p_0}} - \frac12\Big)")
_TEX_ISTAR = r"I^*(p) = \Big|\frac{7}{7+\alpha}\Big|\,I(p)"
_TEX_L = r"L_i = -I(p_{y_i})\log p_{y_i},\ "
_TEX_SMCOS = (r"f(\theta_y) = s(\cos\theta_y - m_{add}),\ m_{add} = m\,\widehat{\|z\|} + m")
_TEX_SMA = (r"f(\theta_y) = s\big(\cos(\theta_y + m_{angle}) - m_{add}\big),\ m_{angle} = -m\,\widehat{\|z\|},\ "
            r"m_{add} = m\,\widehat{\|z\|} + m")
_NOTES = (
    "No official code: the margin is AdaFace's official implementation (clamps, EMA with 0.01 on the new batch "
    "value, updated before use; under sharding over the whole gathered batch, see AdaFace's notes), as the "
    "paper says it 'adopts the same solution as AdaFace'; the paper's 'alpha = 0.99' is read as the weight on "
    "the running value.",
    "p is the softmax probability of the true class under the margin logits (eq. 2). The weight is differentiated "
    "(detach_weight=False), as in the paper's gradient analysis (eq. 7-8); detach_weight=True is offered.",
    "Names: '*' = the |7/(7+alpha)| factor of eq. 38; 'N' = alpha < 0 (easy samples weighted up). alpha must be "
    "> -7.",
    "h = 0.333 (the paper writes 0.33, AdaFace's value, whose scripts use 0.333); s = 64, m = 0.4, p0 = 0.6.",
    "variant='weak'/'strong' (appendix H, eq. 39) and 'beta' (eq. 40, alpha0 = 1; alpha then only enters the "
    "|7/(7+alpha)| prefactor, kept as a free scale).",
)


@register_head(
    "sm_cosface",
    paper=_PAPER, equation="Eq. 2-4 (mining loss, I(p), SM-CosFace margin)",
    tex=_TEX_L + _TEX_I + r",\ " + _TEX_SMCOS, default_init="unit_uniform", notes=_NOTES,
    defaults={"alpha": 1.0, "star": False},
    summary="Additive half of the AdaFace margin with a sigmoid sample-mining weight on each row's loss "
            "(alpha = 1, Table 1).",
)
@register_head(
    "sm_cosface_star",
    paper=_PAPER, equation="Eq. 2, 4, 38 (mining loss, SM-CosFace margin, renormalised I*)",
    tex=_TEX_L + _TEX_ISTAR + r",\ " + _TEX_SMCOS, default_init="unit_uniform", notes=_NOTES + (
        "alpha = 2 by analogy with SMAFace* (Table 2); SM-CosFace* with alpha > 0 appears only in Fig. 11.",),
    defaults={"alpha": 2.0, "star": True},
    summary="SM-CosFace with the renormalised weight I* and alpha = 2 (emphasises hard samples).",
)
@register_head(
    "nsm_cosface_star",
    paper=_PAPER, equation="Eq. 2, 4, 38 (mining loss, SM-CosFace margin, renormalised I*)",
    tex=_TEX_L + _TEX_ISTAR + r",\ " + _TEX_SMCOS, default_init="unit_uniform", notes=_NOTES + (
        "alpha = -1, the best NSM-CosFace* row of Table 1 (alpha in {-1, -3, -5}).",),
    defaults={"alpha": -1.0, "star": True},
    summary="SM-CosFace with the renormalised weight I* and negative alpha = -1 (emphasises easy samples).",
)
class SMCosFace(NormAdaptiveMargin):
    """SM-CosFace: target logit ``s (cos θ_y - m_add)`` (eq. 4), others ``s cos θ_j``, loss ``-I(p_y) log p_y``.

    The margin is the additive half of AdaFace's, ``m_add = m ẑ + m`` with the EMA-normalised norm ``ẑ``
    (:class:`fr.heads.adaface.NormAdaptiveMargin`; state: ``batch_mean``, ``batch_std``). ``I`` is
    :func:`mining_weight` with ``alpha``, ``p0``, ``variant``, ``star``, ``beta``, ``alpha0``.
    ``detach_weight=False`` differentiates through ``I(p)`` as the paper's gradient analysis does (eq. 7).
    ``alpha`` must be > -7. ``alpha = 0`` gives the plain cross-entropy of the margin logits.

    ``h = 0.333``: the paper writes ``h = 0.33``, "adopted from AdaFace", whose scripts use 0.333; taking 0.333
    makes ``alpha = 0`` exactly AdaFace.
    """

    angular = False

    def __init__(self, s: float = 64.0, m: float = 0.4, h: float = 0.333, t_alpha: float = 0.01, alpha: float = 1.0,
                 p0: float = P0_DEFAULT, star: bool = False, variant: str = "standard", beta: float = 1.0,
                 alpha0: float | None = None, detach_weight: bool = False):
        super().__init__(s=s, m=m, h=h, t_alpha=t_alpha)
        name = type(self).__name__
        if not alpha > -STAR_CONSTANT:
            raise ValueError(f"{name}: alpha must be > -7 (I*(p) has the factor |7/(7+alpha)| and I(0) < 0 below "
                             f"about -6.87, which makes the loss reward misclassification), got alpha={alpha}")
        if variant not in VARIANTS:
            raise ValueError(f"{name}: variant must be one of {VARIANTS}, got {variant!r}")
        if not 0.0 <= p0 <= 1.0:
            raise ValueError(f"{name}: p0 is a probability threshold in [0, 1], got {p0}")
        self.alpha, self.p0, self.star, self.variant = float(alpha), float(p0), bool(star), variant
        self.beta = float(beta)
        self.alpha0 = None if alpha0 is None else float(alpha0)
        self.detach_weight = bool(detach_weight)

    def weight(self, p: torch.Tensor) -> torch.Tensor:
        """The mining weight ``I(p)`` of this rule."""
        return mining_weight(p, self.alpha, self.p0, self.variant, self.star, beta=self.beta, alpha0=self.alpha0)

    def loss(self, logits: torch.Tensor, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        log_p = ctx.log_prob_target(logits)
        p = log_p.exp()
        w = self.weight(p.detach() if self.detach_weight else p)
        ce = -log_p
        self.stat(p_mean=ctx.mean_valid(p), weight_mean=ctx.mean_valid(w), ce=ctx.mean_valid(ce))
        return ctx.mean_valid(w * ce)


@register_head(
    "smaface",
    paper=_PAPER, equation="Eq. 2, 3, 5 (mining loss, I(p), SMAFace = AdaFace margin)",
    tex=_TEX_L + _TEX_I + r",\ " + _TEX_SMA, default_init="unit_uniform", notes=_NOTES,
    defaults={"alpha": 1.0, "star": False},
    summary="AdaFace's margin with a sigmoid sample-mining weight on each row's loss (alpha = 1, Tables 1-2).",
)
@register_head(
    "smaface_star",
    paper=_PAPER, equation="Eq. 2, 5, 38 (mining loss, SMAFace margin, renormalised I*)",
    tex=_TEX_L + _TEX_ISTAR + r",\ " + _TEX_SMA, default_init="unit_uniform", notes=_NOTES + (
        "alpha = 2 as in Table 2 ('SMAFace* has alpha = 2').",),
    defaults={"alpha": 2.0, "star": True},
    summary="SMAFace with the renormalised weight I* and alpha = 2 (emphasises hard samples).",
)
@register_head(
    "nsmaface_star",
    paper=_PAPER, equation="Eq. 2, 5, 38 (mining loss, SMAFace margin, renormalised I*)",
    tex=_TEX_L + _TEX_ISTAR + r",\ " + _TEX_SMA, default_init="unit_uniform", notes=_NOTES + (
        "alpha = -2 as in Table 2 ('NSMAFace* variants all have alpha = -2'); Table 1's best R50 is alpha = -3.",),
    defaults={"alpha": -2.0, "star": True},
    summary="SMAFace with the renormalised weight I* and negative alpha = -2 (emphasises easy samples).",
)
class SMAFace(SMCosFace):
    """SMAFace: AdaFace's target logit ``s (cos(θ_y + m_angle) - m_add)`` (eq. 5), others ``s cos θ_j``, loss
    ``-I(p_y) log p_y``. Everything else as :class:`SMCosFace`; with ``alpha = 0`` it is AdaFace exactly."""

    angular = True
