"""SFace: sigmoid-constrained hypersphere loss (not a softmax loss).

Zhong, Deng, Hu, Zhao, Li and Wen, *SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face
Recognition*, IEEE Transactions on Image Processing 30, 2021 (arXiv:2205.12010). Official code:
``zhongyy/SFace`` ``SFace_torch/head/metrics.py`` (``SFaceLoss``).

The loss pulls each sample towards its centre and pushes it from the others with *detached* sigmoid
weights, so the gradient with respect to an angle is a sigmoid-shaped re-scale of ``sin theta``::

    L = mean_i( -[r_intra(theta_y)]_sg cos theta_y ) + mean_i( sum_{j != y} [r_inter(theta_j)]_sg cos theta_j )
    r_intra(theta) = s / (1 + exp(-k (theta - a)))          r_inter(theta) = s / (1 + exp(k (theta - b)))

``dL/dtheta_y = r_intra(theta_y) sin theta_y`` (the pull fades once ``theta_y < a``) and
``dL/dtheta_j = -r_inter(theta_j) sin theta_j`` (the push fades once ``theta_j > b``).
"""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext


def r_intra(theta: torch.Tensor, s: float, k: float, a: float) -> torch.Tensor:
    """Intra-class re-scale ``s / (1 + exp(-k (theta - a)))`` (``s/2`` at ``theta = a``)."""
    return s * torch.sigmoid(k * (theta - a))


def r_inter(theta: torch.Tensor, s: float, k: float, b: float) -> torch.Tensor:
    """Inter-class re-scale ``s / (1 + exp(k (theta - b)))`` (``s/2`` at ``theta = b``)."""
    return s * torch.sigmoid(-k * (theta - b))


@register_head(
    "sface",
    paper=("Zhong et al., SFace: sigmoid-constrained hypersphere loss for robust face recognition, "
           "IEEE TIP 30, 2021 (arXiv:2205.12010)"),
    equation=("L = L_intra + L_inter with the sigmoid re-scale functions r_intra, r_inter (equation numbers not "
              "checked: the full text was not available)"),
    tex=(r"L = \frac{1}{B}\sum_i \Big(-\big[r_{intra}(\theta_{y_i})\big]_{sg}\cos\theta_{y_i} "
         r"+ \sum_{j\ne y_i}\big[r_{inter}(\theta_j)\big]_{sg}\cos\theta_j\Big),\ "
         r"r_{intra}(\theta) = \frac{s}{1+e^{-k(\theta-a)}},\ r_{inter}(\theta) = \frac{s}{1+e^{k(\theta-b)}}"),
    official="zhongyy/SFace SFace_torch/head/metrics.py (SFaceLoss); SFace_mxnet/train_SFace.py",
    default_init="xavier",
    notes=(
        "Defaults are the torch class's (s=64, k=80, a=0.8, b=1.23). Documented settings: CASIA-WebFace R50 "
        "a=0.87, b=1.2; VGGFace2 R50 a=0.88, b=1.25; MS1MV2 R100 a=0.9, b=1.2 (k=80 throughout).",
        "The official code takes theta = acos(c) of the unclamped cosine under no_grad; here the cosine is "
        "clamped to [-1, 1] first (it already is, by the classifier), which changes nothing in exact arithmetic.",
        "The logits returned (s cos theta, as the official 'output') serve accuracy only; the loss does not use "
        "them.",
        "MXNet naming caveat (SFace_mxnet/train_SFace.py): --param-a is the slope k (default 80), --param-b is a, "
        "--param-c is k and --param-d is b; the MXNet README passes '--param-a 0.87 --param-b 1.2', which under "
        "that parsing sets the slope to 0.87. The torch names (k, a, b) are used here.",
        "Centres are initialised with xavier_normal (gain 2) as in the official torch code.",
    ),
    summary="Sigmoid-weighted pull to the own centre and push from the others, with stop-gradient weights: "
            "moderate optimisation against label noise; not softmax-based.",
)
class SFace(MarginRule):
    """SFace: ``L = mean(-[r_intra(theta_y)]_sg c_y) + mean(sum_{j!=y} [r_inter(theta_j)]_sg c_j)``.

    ``s`` the re-scales' height, ``k`` their slope, ``a`` the intra-class midpoint and ``b`` the inter-class
    midpoint (radians). Logits ``s cos theta`` (for accuracy). Statistics: ``intra`` and ``inter`` (the two
    loss terms), ``cos_y`` (mean target cosine), ``theta_y`` (mean target angle, radians).
    """

    def __init__(self, s: float = 64.0, k: float = 80.0, a: float = 0.8, b: float = 1.23):
        super().__init__()
        self.s, self.k, self.a, self.b = float(s), float(k), float(a), float(b)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        return self.s * cos

    def loss(self, logits: torch.Tensor, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        c_y = ctx.target(cos)  # (B,), over all shards
        with torch.no_grad():
            theta_y = torch.acos(c_y.detach().clamp(-1.0, 1.0))
            w_intra = r_intra(theta_y, self.s, self.k, self.a)
            w_inter = r_inter(torch.acos(cos.detach().clamp(-1.0, 1.0)), self.s, self.k, self.b)
            w_inter = w_inter.masked_fill(ctx.onehot(cos), 0.0)
        intra = ctx.mean_valid(-w_intra * c_y)
        inter = ctx.mean_valid(ctx.sum_classes(w_inter * cos))
        with torch.no_grad():
            self.stat(intra=intra, inter=inter, cos_y=ctx.mean_valid(c_y.detach()),
                      theta_y=ctx.mean_valid(theta_y))
        return intra + inter
