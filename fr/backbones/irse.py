"""AdaFace's IR networks ("ir_50", "ir_101", ...), parameter-compatible with ``mk-minchul/AdaFace``.

AdaFace (Kim et al., *AdaFace: Quality Adaptive Margin for Face Recognition*, CVPR 2022,
arXiv:2204.00964) trains the "IR" ResNets of ``net.py`` in its repository, which descend from
face.evoLVe / TFace (``model_irse.py``) and ultimately from ArcFace's "LResNet-IR" (Deng et al.,
CVPR 2019, Fig. 7). They are **not** the same networks as insightface's ``iresnet*``, so they have
their own names here (``ir50_adaface`` etc.). Differences from :mod:`fr.backbones.iresnet`:

* the unit's shortcut is ``MaxPool2d(1, stride)`` (plain subsampling, no parameters) when the width
  does not change, and (1x1 conv, BN) otherwise; IResNet always uses the conv in a stage's first block;
* the output layer is ``BN2d -> Dropout(0.4) -> flatten -> Linear -> BatchNorm1d(affine=False)``
  (IResNet: ``features`` BN1d with a fixed weight of 1 and a *trained* bias);
* initialisation: Kaiming-normal (fan_out) for conv and linear weights, zero biases;
* released checkpoints expect **BGR** input (AdaFace's ``inference.py`` flips the channels).

Module names follow AdaFace's ``net.py`` (``input_layer``, ``body.<i>.res_layer.<j>``,
``body.<i>.shortcut_layer``, ``output_layer``), so its checkpoints load strictly after the ``model.``
prefix of the Lightning checkpoint is removed (:func:`fr.backbones.load_official` with
``source="adaface"``). AdaFace's own ``forward`` returns the *normalised* embedding and its norm; ours
returns the raw embedding and its norm (normalise it to get AdaFace's first output).

face.evoLVe's older ``bottleneck_IR`` lacks the BatchNorm between the first conv and the PReLU, so its
checkpoints do not load here.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import FaceBackbone, halved
from .factory import register_backbone
from .spec import ADAFACE_SPEC, InputSpec, size_pair

__all__ = ["IRBlock", "IRNet", "IR_LAYERS"]

IR_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    101: (3, 13, 30, 3),  # AdaFace calls it "ir_101" (num_layers=100 in its net.py)
}


class IRBlock(nn.Module):
    """``res_layer`` = BN, conv3x3, BN, PReLU, conv3x3(stride), BN; ``shortcut_layer`` = MaxPool2d(1, stride)
    if the width is unchanged, else (conv1x1(stride), BN). Output: their sum."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if cin == cout:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRNet(FaceBackbone):
    """AdaFace IR backbone with ``forward(x) -> (emb, norm)`` and a BGR :attr:`input_spec`.

    layers: blocks per stage (4 stages); widths: channels per stage (the stem has 64, fixed as in AdaFace).
    dropout: before the FC (AdaFace: 0.4). input_size: crop size; the FC input is ``512*ceil(H/16)*ceil(W/16)``.
    """

    def __init__(self, layers: Sequence[int], widths: Sequence[int] = (64, 128, 256, 512), *,
                 embedding_size: int = 512, input_size: int | tuple[int, int] = 112, dropout: float = 0.4):
        super().__init__()
        layers, widths = tuple(int(n) for n in layers), tuple(int(w) for w in widths)
        if len(layers) != 4 or min(layers) < 1 or len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"IRNet needs 4 stages with positive blocks and widths, got layers={layers}, "
                             f"widths={widths}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        h, w = size_pair(input_size)
        self.layers, self.widths = layers, widths
        self.embedding_size = int(embedding_size)
        self.input_spec = InputSpec(size=(h, w), color=ADAFACE_SPEC.color, mean=ADAFACE_SPEC.mean,
                                    std=ADAFACE_SPEC.std)
        self.feature_size = (halved(h, 4), halved(w, 4))
        stem = 64
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                                         nn.PReLU(stem))
        blocks, cin = [], stem
        for n, cout in zip(layers, widths, strict=True):
            blocks.append(IRBlock(cin, cout, 2))
            blocks.extend(IRBlock(cout, cout, 1) for _ in range(n - 1))
            cin = cout
        self.body = nn.Sequential(*blocks)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(cin * self.feature_size[0] * self.feature_size[1], self.embedding_size),
            nn.BatchNorm1d(self.embedding_size, affine=False),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, embedding_size={self.embedding_size}, input_size={self.input_spec.size}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


_PAPER = "Kim et al., AdaFace: Quality Adaptive Margin for Face Recognition, CVPR 2022 (arXiv:2204.00964)"
_OFFICIAL = "mk-minchul/AdaFace net.py (Backbone, BasicBlockIR)"


def _register(depth: int) -> None:
    layers = IR_LAYERS[depth]

    def factory(*, embedding_size: int = 512, input_size: int | tuple[int, int] = 112,
                dropout: float = 0.4) -> IRNet:
        return IRNet(layers, embedding_size=embedding_size, input_size=input_size, dropout=dropout)

    factory.__doc__ = f"AdaFace IR-{depth}: blocks {list(layers)}, widths 64-128-256-512, 112 px BGR."
    register_backbone(f"ir{depth}_adaface", paper=_PAPER, official=_OFFICIAL, spec=ADAFACE_SPEC, source="adaface",
                      summary=f"AdaFace's IR-{depth} (not insightface's iresnet{depth if depth != 101 else 100}); "
                              "BGR input.",
                      notes=("forward returns the raw embedding and its norm (AdaFace returns it normalised).",
                             "Not the same network as iresnet*: MaxPool shortcuts, affine-free output BN."))(factory)


for _depth in IR_LAYERS:
    _register(_depth)
