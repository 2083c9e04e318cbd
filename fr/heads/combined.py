"""Combined margin (insightface): SphereFace, ArcFace and CosFace margins in one target logit."""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, safe_acos


@register_head(
    "combined",
    paper="Deng et al., ArcFace: additive angular margin loss for deep face recognition, CVPR 2019 (arXiv:1801.07698)",
    equation="Eq. 4 (combined margin)",
    tex=(r"L = -\log \frac{e^{s(\cos(m_1\theta_y + m_2) - m_3)}}"
         r"{e^{s(\cos(m_1\theta_y + m_2) - m_3)} + \sum_{j\ne y} e^{s\cos\theta_j}}"),
    official="deepinsight/insightface recognition/arcface_mxnet/train.py (combined margin, loss 'combined' in "
             "sample_config.py)",
    notes=(
        "The MXNet formula: t = arccos(c_y); t *= m1; t += m2; body = cos(t) - m3, with autograd through "
        "arccos (exact gradient). arccos takes c_y clamped to +-(1 - 1e-7) so the gradient stays finite at "
        "c_y = +-1. Defaults s=64, (m1, m2, m3) = (1.0, 0.3, 0.2) (insightface's 'combined' config).",
        "The clamp shifts the value where it is active (float64: theta_y within 4.5e-4 rad of 0 or pi; "
        "float32: c_y = +-1 and the float next to it): the angle used is 4.5e-4 rad (float32: 4.9e-4) off "
        "0 or pi, so at c_y = 1 with the defaults the target cosine is 1.3e-4 (float32: 1.4e-4) below "
        "cos(m2) - m3. Elsewhere it equals the official value to float64 rounding.",
        "No monotonicity fallback (as MXNet): once m1 theta_y + m2 > pi (theta_y > 162.8 deg at the defaults) "
        "the target logit rises again with theta. (1, m, 0) therefore equals ArcFace(m) with th/mm only for "
        "theta_y <= pi - m.",
        "CAUTION: insightface arcface_torch's CombinedMarginLoss implements only two cases: m1 == 1 and "
        "m3 == 0 gives ArcFace(m2); m3 > 0 gives CosFace(m3) and silently ignores m1 and m2; anything else "
        "raises. Its margin_list (1.0, 0.3, 0.2) is thus CosFace m=0.2, not this rule.",
        "interclass_filtering_threshold tau (arcface_torch; WebFace 'filter04' configs use 0.4 with Partial "
        "FC 0.3; 0 = off): every NON-target cosine above tau is set to 0 before the margin (suspected "
        "label-noise classes drop out of the softmax at logit 0, and get no gradient).",
    ),
    summary="cos(m1*theta + m2) - m3 on the target: multiplicative, additive angular and additive cosine margins.",
)
class CombinedMargin(MarginRule):
    """Combined margin: target logit ``s (cos(m1 theta_y + m2) - m3)``, others ``s c_j``.

    ``interclass_filtering_threshold``: when > 0, non-target cosines above it are replaced by 0 first.
    """

    def __init__(self, s: float = 64.0, m1: float = 1.0, m2: float = 0.3, m3: float = 0.2,
                 interclass_filtering_threshold: float = 0.0):
        super().__init__()
        if m1 <= 0:
            raise ValueError(f"combined: m1 must be positive, got {m1}")
        if not 0.0 <= interclass_filtering_threshold <= 1.0:
            raise ValueError("combined: interclass_filtering_threshold must be in [0, 1] (0 = off), got "
                             f"{interclass_filtering_threshold}")
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.interclass_filtering_threshold = float(interclass_filtering_threshold)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        tau = self.interclass_filtering_threshold
        if tau > 0:
            with torch.no_grad():
                negative = ~ctx.onehot(cos) & ctx.valid[:, None]
                dirty = (cos > tau) & ~ctx.onehot(cos)
                n_dirty = ctx.all_sum((dirty & negative).sum().to(cos.dtype))
                self.stat(filtered_frac=n_dirty / ctx.all_sum(negative.sum().to(cos.dtype)).clamp_min(1.0))
            cos = cos.masked_fill(dirty, 0.0)
        c_y = ctx.target(cos)
        target = torch.cos(self.m1 * safe_acos(c_y) + self.m2) - self.m3
        return self.s * ctx.replace_target(cos, target)
