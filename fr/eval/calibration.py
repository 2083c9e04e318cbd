"""Reference feature extractors that need no training of ours, to calibrate the protocols.

:class:`PixelFeatures` is the floor: down-sampled grey pixels, mean-removed, as the embedding. Any trained
model should beat it on every protocol; where it does not, the protocol measures something other than
identity (illumination, pose, background). It follows the fr backbone contract (``model(x) -> (emb, norm)``
with ``model.input_spec``), so every evaluation in :mod:`fr.eval` runs on it unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.spec import InputSpec

__all__ = ["PixelFeatures"]


class PixelFeatures(nn.Module):
    """Embedding = the ``grid`` x ``grid`` average-pooled grey image, minus its mean (``grid²`` dimensions).

    input_size: the crop the evaluation decodes to (``input_spec.size``); pooling then averages
    ``input_size / grid`` pixels per cell."""

    def __init__(self, grid: int = 8, input_size: int = 32):
        super().__init__()
        if grid < 1 or input_size < grid:
            raise ValueError(f"need 1 <= grid <= input_size, got grid={grid}, input_size={input_size}")
        self.grid = int(grid)
        self.input_spec = InputSpec(size=(input_size, input_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = F.adaptive_avg_pool2d(x.mean(dim=1, keepdim=True), self.grid).flatten(1)
        e = g - g.mean(dim=1, keepdim=True)
        return e, e.norm(dim=1)
