"""Normalised softmax (NormFace) and CosFace (AM-Softmax / LMCL)."""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext


@register_head(
    "softmax",
    paper="Wang et al., NormFace: L2 hypersphere embedding for face verification, ACM MM 2017 (arXiv:1704.06369)",
    equation="Eq. 4 (normalised softmax, scale s)",
    tex=r"L = -\log \frac{e^{s\cos\theta_y}}{\sum_j e^{s\cos\theta_j}}",
    official="deepinsight/insightface recognition/arcface_mxnet/sample_config.py (loss.nsoftmax)",
    summary="Cosine softmax with a fixed scale and no margin; the baseline every margin is measured against.",
)
class NormSoftmax(MarginRule):
    """Normalised softmax: logits ``s * cos(theta_j)`` for every class; no margin."""

    def __init__(self, s: float = 64.0):
        super().__init__()
        self.s = float(s)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        return self.s * cos


@register_head(
    "cosface",
    paper="Wang et al., CosFace: large margin cosine loss for deep face recognition, CVPR 2018 (arXiv:1801.09414)",
    equation="Eq. 4 (LMCL)",
    tex=r"L = -\log \frac{e^{s(\cos\theta_y - m)}}{e^{s(\cos\theta_y - m)} + \sum_{j\ne y} e^{s\cos\theta_j}}",
    official="deepinsight/insightface recognition/arcface_torch/losses.py (CosFace)",
    notes=("s=64, m=0.35 as in the paper; insightface's WebFace configs and AdaFace's head use m=0.4.",
           "Variants with an 'easy margin' (margin only when cos > 0, SV-X; or cos > m, FaceX-Zoo) are not the "
           "reference and are not offered."),
    summary="Additive cosine margin on the target logit.",
)
class CosFace(MarginRule):
    """CosFace: target logit ``s (cos theta_y - m)``, others ``s cos theta_j``."""

    def __init__(self, s: float = 64.0, m: float = 0.35):
        super().__init__()
        self.s, self.m = float(s), float(m)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        return self.s * (cos - self.m * ctx.onehot(cos).to(cos.dtype))
