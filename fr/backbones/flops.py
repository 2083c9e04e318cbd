"""Analytic multiply-add counts of a backbone, from its conv and linear shapes.

A convolution producing a (C_out, H_out, W_out) map costs ``C_out * H_out * W_out * (C_in / groups) * k_h * k_w``
multiply-adds per image, and a linear layer ``in * out``. Normalisation, activation, pooling and the
residual additions are left out (they are memory-bound and well under 1% of the multiply-adds of an
IResNet). One multiply-add is 2 FLOPs. A training step costs about 3x the forward FLOPs (the backward
pass computes the gradient of both the input and the weights).

IResNet-50 at 112 px: 6.3 G multiply-adds (12.7 GFLOPs) per image, the figure insightface's
``flops.py`` reports as "6.3G" for r50.
"""
from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, input_size: tuple[int, int] | None = None) -> int:
    """Multiply-adds of one forward pass of ``model`` on a single image.

    Runs one eval-mode forward pass on a zero image of ``input_size`` (default ``model.input_spec.size``)
    only to learn each conv/linear output shape (forward hooks); the count is computed from those
    shapes and the layers' weight shapes, not measured.
    """
    if input_size is None:
        input_size = model.input_spec.size
    total = 0

    def conv_hook(m: nn.Conv2d, inp, out):
        nonlocal total
        c_out, h, w = out.shape[1:]
        total += c_out * h * w * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, inp, out):
        nonlocal total
        total += m.in_features * m.out_features * (out.numel() // out.shape[-1] // out.shape[0])

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    param = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_size, device=param.device, dtype=param.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def train_flops_per_image(model: nn.Module, input_size: tuple[int, int] | None = None,
                          head_classes: int = 0) -> float:
    """FLOPs of one training step per image: ``3 * 2 * (backbone MACs + embedding_size * head_classes)``
    (forward + backward of both the backbone and a cosine classifier over ``head_classes`` classes)."""
    macs = count_macs(model, input_size) + getattr(model, "embedding_size", 0) * head_classes
    return 6.0 * macs
