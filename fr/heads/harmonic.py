"""Harmonic loss with the cosine distance.

The harmonic loss (Baek, Liu, Tyagi and Tegmark, *Harmonic Loss Trains Interpretable AI Models*, 2025,
arXiv:2502.01628; code ``KindXiaoming/grow-crystals``) replaces the softmax over logits with the "HarMax"
over distances to the class centres, ``p_j = d_j^{-n} / sum_k d_k^{-n}``, and minimises ``-log p_y``.
*Rethinking the Harmonic Loss via Non-Euclidean Distance Layers* (2025 preprint; code
``maxwellmg/rethinking-harmonic-loss``) swaps the Euclidean distance for others and finds the cosine distance
the best trade-off on vision tasks. That is the head here::

    d_j = 1 - cos theta_j + eps,    logit_j = -n log d_j,    L = CE(logits, y) = -log HarMax(d)_y

Since ``HarMax`` is invariant to scaling every ``d_j`` by one constant, the repository's division by
``min_k d_k`` cancels and is not needed in log space. No scale ``s`` and no margin.
"""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext


def cosine_distance(cos: torch.Tensor, eps: float) -> torch.Tensor:
    """``d = max(1 - cos, 0) + eps``; the clamp guards cosines rounded above 1, ``eps`` keeps ``log d`` finite."""
    return (1.0 - cos).clamp_min(0.0) + eps


def harmax_logits(d: torch.Tensor, n: float) -> torch.Tensor:
    """``-n log d``: softmax over these is HarMax, ``p_j = d_j^{-n} / sum_k d_k^{-n}``."""
    return -n * torch.log(d)


@register_head(
    "harmonic",
    paper=("Rethinking the harmonic loss via non-Euclidean distance layers, 2025 preprint (code: "
           "maxwellmg/rethinking-harmonic-loss); harmonic loss: Baek et al., Harmonic loss trains interpretable "
           "AI models, 2025 (arXiv:2502.01628)"),
    equation=("HarMax p_j = d_j^{-n} / sum_k d_k^{-n} with the cosine distance d_j = 1 - cos(x, w_j) + eps "
              "(equation numbers not checked: only the abstract was available)"),
    tex=(r"L = -\log \frac{(1-\cos\theta_y+\varepsilon)^{-n}}{\sum_j (1-\cos\theta_j+\varepsilon)^{-n}}"
         r" = \mathrm{CE}\big(-n\log(1-\cos\theta+\varepsilon),\ y\big)"),
    official=("maxwellmg/rethinking-harmonic-loss vision/models/distlayers.py (CosineDistLayer), "
              "vision/models/models.py"),
    notes=(
        "The repository has two output conventions. Its ResNet50 wrapper returns log(clamp(d^{-n}, 1e-8)) and "
        "applies cross-entropy, which is the HarMax loss exactly; that is the form used here (logits "
        "-n log(d), without the 1e-8 floor, which only matters when d^{-n} < 1e-8). Its MLP/CNN/PVT wrappers "
        "instead feed -d^{-n} to cross-entropy, a different objective that is not offered.",
        "The repository divides d by min_k d_k before the power; HarMax is scale-invariant, so this cancels.",
        "n = 1 as in the vision configs (regular_config.py); the language-model layer uses n = embedding size.",
        "The distance's clamp at 0 guards cosines rounded above 1; the gradient of a logit is n / (1 - c + eps), "
        "up to n/eps = 1e4 at c = 1: fine in float32, avoid float16.",
        "The original (Euclidean) harmonic loss of grow-crystals raises the squared distance to -n and smooths p "
        "with alpha/V; neither applies to this cosine variant.",
    ),
    summary="Cross-entropy over the HarMax of cosine distances to the class centres: p_j proportional to "
            "(1 - cos theta_j + eps)^(-n); no scale, no margin.",
)
class HarmonicCosine(MarginRule):
    """Cosine-distance harmonic loss: logits ``-n log(max(1 - cos theta_j, 0) + eps)``, softmax cross-entropy.

    ``n`` the harmonic exponent (1 for vision, the embedding size in the paper's language models), ``eps``
    the distance offset. Statistic: ``dist_y`` (mean target distance ``1 - cos theta_y``).
    """

    def __init__(self, n: float = 1.0, eps: float = 1e-4):
        super().__init__()
        if n <= 0:
            raise ValueError(f"harmonic exponent n must be > 0, got {n}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0 (it keeps log(d) finite at cos = 1), got {eps}")
        self.n, self.eps = float(n), float(eps)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        self.stat(dist_y=ctx.mean_valid(1.0 - ctx.target(cos.detach())))
        return harmax_logits(cosine_distance(cos, self.eps), self.n)
