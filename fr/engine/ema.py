"""An exponential moving average of a model's weights, evaluated in place of the raw weights.

The average follows timm's ``ModelEmaV3`` (``timm/utils/model_ema.py``): after every optimiser step,
``ema = ema + (1 - d_t) * (model - ema)`` over floating-point parameters *and* buffers (BatchNorm running
statistics included), integer buffers copied, with the warm-up ``d_t = min(decay, (1 + t) / (10 + t))`` so
that the first steps do not average in the random initialisation. It changes no loss and no gradient: only
which weights the final evaluation sees.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEma(nn.Module):
    """A frozen copy of ``model`` updated with :meth:`update` after each optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay_at(int(self.updates))
        ema_f, new_f = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if e.is_floating_point():
                ema_f.append(e)
                new_f.append(m.detach().to(e.dtype))
            else:
                e.copy_(m)
        if ema_f:
            torch._foreach_lerp_(ema_f, new_f, 1.0 - d)
        self.updates += 1

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
