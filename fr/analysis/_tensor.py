"""The boundary between the analysis modules and the heads.

The analysis functions take and return numpy arrays; the formulas they plot are the heads' own functions
(:mod:`fr.heads`), which work on torch tensors. These helpers convert at that boundary, always in float64 on the
CPU, and differentiate a head function where a figure needs a slope.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def tensor(x) -> torch.Tensor:
    """``x`` (array-like) as a new float64 CPU tensor."""
    return torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: numpy views may have negative strides


def array(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array (0-d for a scalar)."""
    return t.detach().cpu().to(torch.float64).numpy()


def derivative(fn: Callable[..., torch.Tensor], x, *args) -> np.ndarray:
    """``d fn(x, *args) / dx`` elementwise, by autograd, for a head function ``fn`` that acts elementwise.

    ``x`` and the array arguments ``args`` are broadcast against each other first, so the result has the full
    broadcast shape (scalars in ``args`` are passed as Python floats)."""
    arrays = [tensor(a) for a in (x, *args)]
    full = torch.broadcast_tensors(*arrays)
    xt = full[0].clone().requires_grad_(True)
    rest = [full[i + 1] if np.ndim(a) else float(a) for i, a in enumerate(args)]
    (grad,) = torch.autograd.grad(fn(xt, *rest).sum(), xt)
    return array(grad)
