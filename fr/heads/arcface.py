"""ArcFace (additive angular margin), with the paper's exact gradient or insightface's detached one."""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target

GRAD_MODES = ("exact", "detached")


@register_head(
    "arcface",
    paper="Deng et al., ArcFace: additive angular margin loss for deep face recognition, CVPR 2019 (arXiv:1801.07698)",
    equation="Eq. 3",
    tex=r"L = -\log \frac{e^{s\cos(\theta_y + m)}}{e^{s\cos(\theta_y + m)} + \sum_{j\ne y} e^{s\cos\theta_j}}",
    official="deepinsight/insightface recognition/arcface_torch/losses.py (ArcFace)",
    notes=(
        "grad_mode='exact' (default) differentiates cos(theta+m) through the cos/sin expansion, with "
        "insightface's pre-2022 fallback: when theta_y + m > pi the target logit is cos(theta_y) - m sin(m) "
        "(th/mm), which keeps it monotone in theta (discontinuous at theta = pi - m).",
        "grad_mode='exact' computes cos(theta_y + m) as c cos m - sqrt(1 - c^2) sin m with the radicand clamped "
        "at 1e-7 (finite gradient at c_y = 1, where the official acos or sqrt gradient is infinite). Where the "
        "clamp is active, 1 - c_y^2 < 1e-7 (in float32 only at c_y = 1 exactly; in float64 for theta_y < "
        "3.2e-4 rad; c_y = -1 takes the th/mm branch), the target cosine is c_y cos m - 3.2e-4 sin m: at "
        "c_y = 1, 3.2e-4 sin m below cos(m) (1.5e-4 at m = 0.5, about 0.01 in the logit at s = 64). Elsewhere "
        "it equals the official value to float64 rounding.",
        "grad_mode='detached' is today's insightface arcface_torch (since commit 657ae30e, 2022-12): the margin "
        "is added to arccos(c) under no_grad, so the forward is cos(theta+m) but the gradient is that of s*c, "
        "as CosFace's (the 'detached d_theta' trick of opensphere). No th/mm, no clamp of theta+m.",
        "easy_margin=True applies the margin only when cos(theta_y) > 0 (SV-X-Softmax, MagFace's default).",
    ),
    summary="Additive angular margin on the target angle.",
)
class ArcFace(MarginRule):
    """ArcFace: target logit ``s cos(theta_y + m)``, others ``s cos theta_j``.

    ``grad_mode``: ``"exact"`` (paper gradient, th/mm fallback) or ``"detached"`` (insightface today).
    ``easy_margin``: margin only where ``cos theta_y > 0`` (exact mode only).
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, grad_mode: str = "exact", easy_margin: bool = False):
        super().__init__()
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        if easy_margin and grad_mode != "exact":
            raise ValueError("easy_margin is only defined for grad_mode='exact'")
        self.s, self.m, self.grad_mode, self.easy_margin = float(s), float(m), grad_mode, bool(easy_margin)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        if self.grad_mode == "detached":
            with torch.no_grad():
                theta = torch.acos(cos.clamp(-1.0, 1.0))
                target = torch.cos(theta + self.m * ctx.onehot(cos).to(cos.dtype))
                delta = target - cos
            return self.s * (cos + delta)
        c_y = cos.gather(1, ctx.local_labels.clamp_min(0)[:, None]).squeeze(1)
        return self.s * ctx.replace_target(cos, arc_target(c_y, self.m, easy_margin=self.easy_margin))
