"""insightface IResNet ("improved residual network"), parameter-compatible with ``arcface_torch``.

Architecture: Duta et al., *Improved Residual Networks for Image and Video Recognition*, ICPR 2020
(arXiv:2004.04989), as adapted to 112x112 faces by insightface for ArcFace (Deng et al., CVPR 2019,
arXiv:1801.07698; the "r50"/"r100" of every later margin-loss paper trained with ``arcface_torch``).

Layout (reference: ``deepinsight/insightface recognition/arcface_torch/backbones/iresnet.py``):

* stem ``conv1`` 3x3/1 (3 -> 64, no bias), ``bn1``, ``prelu`` — no pooling, so a 112 px input stays 112;
* four stages ``layer1..layer4`` of :class:`IBasicBlock` with widths 64-128-256-512; the first block of
  every stage (including ``layer1``) has stride 2 and a ``downsample`` = (1x1 conv stride 2, BN);
  112 -> 56 -> 28 -> 14 -> 7;
* ``bn2`` (BatchNorm2d), flatten, ``dropout`` (p=0 in insightface's configs), ``fc`` (512*7*7 -> 512,
  with bias), ``features`` (BatchNorm1d whose weight is fixed at 1.0 and not trained; its bias and
  running statistics are).

:class:`IBasicBlock` is the pre-activation-style unit ``bn1 -> conv1 3x3 -> bn2 -> prelu -> conv2 3x3
(stride) -> bn3`` plus the shortcut; there is no activation after the sum.

Every module keeps insightface's attribute name, so the ``state_dict`` keys and shapes match its
released ``backbone.pth`` files and ``load_state_dict(strict=True)`` accepts them (see
:func:`fr.backbones.load_official`). Depths: 18 [2,2,2,2], 34 [3,4,6,3], 50 [3,4,14,3],
100 [3,13,30,3], 200 [6,26,60,6].

Differences from the reference code, none of which changes the parameters:

* ``forward`` returns ``(emb, norm)`` instead of ``emb`` (the raw embedding is unchanged);
* ``input_size`` other than 112 is allowed: the FC input is ``C * ceil(H/16) * ceil(W/16)``
  (insightface hard-codes ``fc_scale = 7*7``); checkpoints trained at 112 px need 112 px;
* ``width``/``widths`` give narrower networks for CPU experiments (``iresnet_small``, ``iresnet_tiny``);
* the ``fp16`` autocast switch inside insightface's ``forward`` is left to the training loop;
* ``dropout`` is not in-place.

Initialisation follows insightface: conv weights ~ N(0, 0.1), BatchNorm weight 1 / bias 0, PyTorch's
default for ``fc`` and PReLU (0.25); ``zero_init_residual`` zeroes ``bn2.weight`` of every block (as
insightface does; this zeroes the whole residual branch at initialisation).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import FaceBackbone, halved
from .factory import register_backbone
from .spec import InputSpec, size_pair

__all__ = ["IBasicBlock", "IResNet", "IRESNET_LAYERS"]

IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
DEFAULT_WIDTHS = (64, 128, 256, 512)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """``bn1 -> conv1 -> bn2 -> prelu -> conv2(stride) -> bn3`` + shortcut (``downsample`` when the
    shape changes). Attribute names are insightface's."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout, eps=1e-5),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(FaceBackbone):
    """insightface IResNet with ``forward(x) -> (emb, norm)``.

    layers:     blocks per stage (4 stages), e.g. ``(3, 4, 14, 3)`` for IResNet-50.
    widths:     channels per stage; the stem has ``widths[0]`` channels. Default 64-128-256-512.
    width:      multiplier applied to ``widths`` (rounded, at least 1 channel).
    embedding_size: output dimension (``fc`` out features, 512 in insightface).
    input_size: crop size, int or (H, W); sets the FC input and ``input_spec.size``.
    dropout:    dropout before ``fc`` (insightface configs: 0).
    zero_init_residual: zero every block's ``bn2.weight`` at initialisation (insightface's option).
    """

    def __init__(self, layers: Sequence[int], widths: Sequence[int] = DEFAULT_WIDTHS, *,
                 embedding_size: int = 512, input_size: int | tuple[int, int] = 112, dropout: float = 0.0,
                 width: float = 1.0, zero_init_residual: bool = False):
        super().__init__()
        layers, widths = tuple(int(n) for n in layers), tuple(int(w) for w in widths)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"IResNet needs 4 stages of at least 1 block each, got layers={layers}")
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"IResNet needs 4 positive stage widths, got widths={widths}")
        if width <= 0:
            raise ValueError(f"width multiplier must be positive, got {width}")
        if embedding_size < 1:
            raise ValueError(f"embedding_size must be positive, got {embedding_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        widths = tuple(max(1, round(w * width)) for w in widths)
        h, w = size_pair(input_size)
        self.layers, self.widths = layers, widths
        self.embedding_size = int(embedding_size)
        self.input_spec = InputSpec(size=(h, w), color="RGB", mean=(0.5,) * 3, std=(0.5,) * 3)
        self.feature_size = (halved(h, 4), halved(w, 4))

        stem = widths[0]
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem, eps=1e-5)
        self.prelu = nn.PReLU(stem)
        cin = stem
        for i, (n, cout) in enumerate(zip(layers, widths, strict=True), start=1):
            blocks = [IBasicBlock(cin, cout, stride=2)] + [IBasicBlock(cout, cout) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(cin * self.feature_size[0] * self.feature_size[1], self.embedding_size)
        self.features = nn.BatchNorm1d(self.embedding_size, eps=1e-5)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, IBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, widths={self.widths}, embedding_size={self.embedding_size}, "
                f"input_size={self.input_spec.size}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


# --- registered variants ---------------------------------------------------------------------------

_PAPER = ("Duta et al., Improved Residual Networks for Image and Video Recognition, ICPR 2020 "
          "(arXiv:2004.04989); face variant from Deng et al., ArcFace, CVPR 2019 (arXiv:1801.07698)")
_OFFICIAL = "deepinsight/insightface recognition/arcface_torch/backbones/iresnet.py"
_SPEC = InputSpec(size=(112, 112), color="RGB")


def _register_depth(depth: int) -> None:
    layers = IRESNET_LAYERS[depth]

    def factory(*, embedding_size: int = 512, input_size: int | tuple[int, int] = 112, dropout: float = 0.0,
                width: float = 1.0, widths: Sequence[int] = DEFAULT_WIDTHS,
                zero_init_residual: bool = False) -> IResNet:
        return IResNet(layers, widths, embedding_size=embedding_size, input_size=input_size, dropout=dropout,
                       width=width, zero_init_residual=zero_init_residual)

    factory.__doc__ = f"insightface IResNet-{depth}: blocks {list(layers)}, widths 64-128-256-512, 112 px RGB."
    register_backbone(f"iresnet{depth}", paper=_PAPER, official=_OFFICIAL, spec=_SPEC, source="arcface_torch",
                      summary=f"insightface IResNet-{depth} (arcface_torch 'r{depth}'); loads its checkpoints.",
                      notes=("forward returns (emb, norm); the FC input adapts to input_size.",))(factory)


for _depth in IRESNET_LAYERS:
    _register_depth(_depth)


@register_backbone("iresnet", paper=_PAPER, official=_OFFICIAL, spec=_SPEC, source="arcface_torch",
                   summary="IResNet with any blocks per stage and widths.")
def _iresnet_custom(*, layers: Sequence[int], widths: Sequence[int] = DEFAULT_WIDTHS, embedding_size: int = 512,
                    input_size: int | tuple[int, int] = 112, dropout: float = 0.0, width: float = 1.0,
                    zero_init_residual: bool = False) -> IResNet:
    """IResNet with explicit ``layers`` (4 block counts) and ``widths``."""
    return IResNet(layers, widths, embedding_size=embedding_size, input_size=input_size, dropout=dropout,
                   width=width, zero_init_residual=zero_init_residual)


_SMALL_NOTES = ("A CPU-sized IResNet for this book's experiments, not a published network: widths 32-64-128-256, "
                "crops of 56-64 px. Same block and head layout as IResNet-18.",)


@register_backbone("iresnet_small", paper=_PAPER, official=_OFFICIAL, spec=_SPEC.with_size(64),
                   summary="IResNet-18 layout at half width (32-64-128-256), 64 px; for CPU runs.",
                   notes=_SMALL_NOTES)
def _iresnet_small(*, embedding_size: int = 512, input_size: int | tuple[int, int] = 64, dropout: float = 0.0,
                   width: float = 1.0, zero_init_residual: bool = False) -> IResNet:
    """IResNet, blocks [2,2,2,2], widths 32-64-128-256, 64 px RGB (about 100 img/s training on 2 CPU cores)."""
    return IResNet((2, 2, 2, 2), (32, 64, 128, 256), embedding_size=embedding_size, input_size=input_size,
                   dropout=dropout, width=width, zero_init_residual=zero_init_residual)


@register_backbone("iresnet_tiny", paper=_PAPER, official=_OFFICIAL, spec=_SPEC.with_size(64),
                   summary="One block per stage, widths 32-64-128-256, 64 px; for CPU smoke runs.",
                   notes=_SMALL_NOTES)
def _iresnet_tiny(*, embedding_size: int = 512, input_size: int | tuple[int, int] = 64, dropout: float = 0.0,
                  width: float = 1.0, zero_init_residual: bool = False) -> IResNet:
    """IResNet, blocks [1,1,1,1], widths 32-64-128-256, 64 px RGB."""
    return IResNet((1, 1, 1, 1), (32, 64, 128, 256), embedding_size=embedding_size, input_size=input_size,
                   dropout=dropout, width=width, zero_init_residual=zero_init_residual)
