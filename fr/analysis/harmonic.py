"""Harmonic loss (cosine distance) versus softmax: the true-class probability (no training).

Source: Baek et al., "Harmonic loss trains interpretable AI models" (HarMax, Euclidean) and "Rethinking the
Harmonic Loss via Non-Euclidean Distance Layers" (code: maxwellmg/rethinking-harmonic-loss
``vision/models/distlayers.py``). Reference: ``heads.md`` §2.16, §4.8.

``p_y = d_y^{−n} / Σ_k d_k^{−n}`` with ``d_k = 1 − c_k + ε``; softmax ``p_y = e^{s c_y} / Σ_k e^{s c_k}``.
HarMax is invariant to a common rescaling of all distances (the repository's ``d / min d`` changes nothing).
"""
from __future__ import annotations

import numpy as np

from ._plot import new_figure


def harmonic_prob(c_y, *, n: float = 1.0, num_classes: int = 2, c_other: float = 0.0, eps: float = 1e-4,
                  scale: float = 1.0):
    """True-class HarMax probability with ``num_classes − 1`` other classes at cosine ``c_other``.

    Computed in log space: ``log p_y = −n log d_y − logsumexp_k(−n log d_k)``. ``scale`` multiplies every
    distance (to show the invariance)."""
    if num_classes < 2:
        raise ValueError(f"harmonic_prob: num_classes must be >= 2, got {num_classes}")
    c_y = np.asarray(c_y, dtype=float)
    ly = -n * np.log(scale * (np.clip(1.0 - c_y, 0.0, None) + eps))
    lo = -n * np.log(scale * (max(1.0 - c_other, 0.0) + eps)) + np.log(num_classes - 1)
    return np.exp(ly - np.logaddexp(ly, lo))


def softmax_prob(c_y, *, s: float = 64.0, num_classes: int = 2, c_other: float = 0.0):
    """True-class softmax probability ``σ(s (c_y − c_other) − log(C − 1))``."""
    z = s * (np.asarray(c_y, dtype=float) - c_other) - np.log(num_classes - 1)
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def plot_probabilities(*, ns=(1, 4, 16), s: float = 64.0, num_classes: int = 2, eps: float = 1e-4, m: int = 801):
    """``p_y`` versus ``c_y`` for HarMax with n ∈ {1, 4, 16} and softmax (s = 64), others at c = 0."""
    c = np.linspace(-1, 1, m)
    fig, ax = new_figure(1, 1, width=5.5)
    for n in ns:
        ax.plot(c, harmonic_prob(c, n=n, num_classes=num_classes, eps=eps), label=f"harmonic, n={n}")
    ax.plot(c, softmax_prob(c, s=s, num_classes=num_classes), color="k", ls="--", label=f"softmax, s={s:g}")
    ax.set_xlabel("c_y (other classes at c = 0)")
    ax.set_ylabel("p_y")
    ax.set_title(f"true-class probability, {num_classes} classes", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
