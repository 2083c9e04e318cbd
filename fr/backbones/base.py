"""The contract every backbone meets: ``model(x) -> (emb, norm)`` plus ``model.input_spec``."""
from __future__ import annotations

import torch
from torch import nn

from .spec import InputSpec


def halved(n: int, times: int) -> int:
    """Spatial size after ``times`` stride-2 stages with 'same' padding (3x3/pad 1 or 1x1/pad 0):
    each stage maps ``n`` to ``ceil(n / 2)``."""
    for _ in range(times):
        n = (n + 1) // 2
    return n


class FaceBackbone(nn.Module):
    """Base class: subclasses implement :meth:`embed` (the raw embedding, shape (B, D)).

    ``forward(x)`` checks the input against :attr:`input_spec` (so a 96 px batch fed to a 112 px model
    fails with a message, not inside the FC layer's matmul) and returns ``(emb, emb.norm(dim=1))``:
    the un-normalised embedding and its l2 norm, which AdaFace/MagFace-style heads consume.
    """

    input_spec: InputSpec
    embedding_size: int

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        h, w = self.input_spec.size
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (h, w):
            raise ValueError(
                f"{type(self).__name__} expects a float batch of shape (B, 3, {h}, {w}) "
                f"({self.input_spec.color}, normalised), got {tuple(x.shape)}; "
                f"build it with input_size={tuple(x.shape[2:])} to change the crop size"
            )
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a float tensor, got {x.dtype}; "
                            "convert uint8 images with fr.data.transforms.to_input(images, model.input_spec)")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        emb = self.embed(x)
        return emb, emb.norm(dim=1)
