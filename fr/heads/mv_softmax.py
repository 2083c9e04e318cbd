"""MV-Softmax (mis-classified vector guided softmax): MV-AM-Softmax and MV-Arc-Softmax."""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target
from .curricularface import negative_fraction

MODES = ("adaptive", "fixed")

_PAPER = ("Wang et al., Mis-classified vector guided softmax loss for face recognition, AAAI 2020 "
          "(arXiv:1912.00833)")
_EQUATION = "Sec. 3: MV-Softmax with indicator I_k = 1[f(m, theta_y) - cos theta_k < 0] and adaptive h"
_OFFICIAL = "xiaoboCASIA/SV-X-Softmax fc_layers.py (FC, fc_type='MV-AM' / 'MV-Arc')"
_COMMON_NOTES = (
    "Official defaults (SV-X fc_layers.py): s=32, m=0.35, t=0.2, easy_margin=True, for both MV-AM and MV-Arc. "
    "FaceX-Zoo's MV_Softmax uses t=0.12 ('mv_weight 1.12') and applies the AM margin only when c_y > m.",
    "mode='adaptive' (official code, the paper's h = exp(s t (c_k + 1) I_k)): a hard negative's logit is "
    "s((t + 1) c_k + t). mode='fixed' (commented out in the official code, the paper's h = exp(s t I_k)): "
    "s(c_k + t).",
    "easy_margin=True applies the target margin only when c_y > 0 (else the target logit is s c_y); the "
    "hard-negative mask uses the margin target regardless, as the official code.",
)


class _MVSoftmax(MarginRule):
    def __init__(self, s: float = 32.0, m: float = 0.35, t: float = 0.2, easy_margin: bool = True,
                 mode: str = "adaptive"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"{type(self).__name__}: mode must be one of {MODES}, got {mode!r}")
        if t < 0:
            raise ValueError(f"{type(self).__name__}: t must be >= 0, got {t}")
        self.s, self.m, self.t, self.easy_margin, self.mode = float(s), float(m), float(t), bool(easy_margin), mode

    def margin_target(self, c_y: torch.Tensor) -> torch.Tensor:
        """``f(m, theta_y)`` without the easy-margin switch."""
        raise NotImplementedError

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        c_y = ctx.target(cos)
        f = self.margin_target(c_y)
        with torch.no_grad():
            hard = (cos > f.detach()[:, None]) & ~ctx.onehot(cos) & ctx.valid[:, None]
        boosted = (self.t + 1.0) * cos + self.t if self.mode == "adaptive" else cos + self.t
        out = torch.where(hard, boosted, cos)
        target = torch.where(c_y > 0, f, c_y) if self.easy_margin else f
        self.stat(hard_neg_frac=negative_fraction(hard, ctx))
        return self.s * ctx.replace_target(out, target)


@register_head(
    "mv_am",
    paper=_PAPER,
    equation=_EQUATION + ", f = cos theta_y - m",
    tex=(r"L = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + \sum_{k\ne y} h(t,\theta_k,I_k)\,"
         r"e^{s\cos\theta_k}},\quad h = e^{s t (\cos\theta_k + 1) I_k},\ I_k = [\cos\theta_y - m < \cos\theta_k]"),
    official=_OFFICIAL,
    default_init="unit_uniform",
    notes=_COMMON_NOTES,
    summary="CosFace target; mis-classified negatives get their logit raised to (t+1)c + t.",
)
class MVAMSoftmax(_MVSoftmax):
    """MV-AM-Softmax: target ``s (c_y - m)`` (only where ``c_y > 0`` with ``easy_margin``); hard negatives
    (``c_k > c_y - m``) ``s((t+1) c_k + t)`` (adaptive) or ``s(c_k + t)`` (fixed); others ``s c_k``."""

    def margin_target(self, c_y: torch.Tensor) -> torch.Tensor:
        return c_y - self.m


@register_head(
    "mv_arc",
    paper=_PAPER,
    equation=_EQUATION + ", f = cos(theta_y + m)",
    tex=(r"L = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + \sum_{k\ne y} h(t,\theta_k,I_k)\,"
         r"e^{s\cos\theta_k}},\quad h = e^{s t (\cos\theta_k + 1) I_k},\ I_k = [\cos(\theta_y + m) < \cos\theta_k]"),
    official=_OFFICIAL,
    default_init="unit_uniform",
    notes=_COMMON_NOTES + (
        "cos(theta_y + m) from the cos/sin expansion with no th/mm fallback (official), the radicand of "
        "sqrt(1 - c_y^2) clamped at 1e-7 (official: none, NaN gradient at c_y = +-1). With easy_margin=False "
        "the target is therefore non-monotone beyond theta_y = pi - m, as in the official code.",
        "The clamp shifts the value where it is active, 1 - c_y^2 < 1e-7 (in float32 only at c_y = +-1 exactly; "
        "in float64 within 3.2e-4 rad of theta_y = 0 or pi): f = c_y cos m - 3.2e-4 sin m, 3.2e-4 sin m below "
        "cos(theta_y + m) at c_y = +-1 (1.1e-4 at m = 0.35), in the target logit and in the hard-negative "
        "threshold. Elsewhere it equals the official value to float64 rounding.",
    ),
    summary="ArcFace target; mis-classified negatives get their logit raised to (t+1)c + t.",
)
class MVArcSoftmax(_MVSoftmax):
    """MV-Arc-Softmax: target ``s cos(theta_y + m)`` (only where ``c_y > 0`` with ``easy_margin``); hard
    negatives (``c_k > cos(theta_y + m)``) ``s((t+1) c_k + t)`` (adaptive) or ``s(c_k + t)`` (fixed)."""

    def margin_target(self, c_y: torch.Tensor) -> torch.Tensor:
        return arc_target(c_y, self.m, th_mm=False)
