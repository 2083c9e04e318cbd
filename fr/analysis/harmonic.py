"""Harmonic loss (cosine distance) versus softmax: the true-class probability (no training).

Source: Baek et al., "Harmonic loss trains interpretable AI models" (HarMax, Euclidean) and "Rethinking the
Harmonic Loss via Non-Euclidean Distance Layers" (code: maxwellmg/rethinking-harmonic-loss
``vision/models/distlayers.py``).

``p_y = d_y^{−n} / Σ_k d_k^{−n}`` with ``d_k = 1 − c_k + ε``; softmax ``p_y = e^{s c_y} / Σ_k e^{s c_k}``.
HarMax is invariant to a common rescaling of all distances (the repository's ``d / min d`` changes nothing).
The distance and the HarMax logits are the harmonic head's functions (:mod:`fr.heads.harmonic`), the
defaults (n, ε; s of the softmax) the registered heads'.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import expit

from ..heads import head_defaults
from ..heads.harmonic import cosine_distance, harmax_logits
from ._plot import new_figure
from ._tensor import array, tensor

_HARMONIC = head_defaults("harmonic")
_SOFTMAX_S = head_defaults("softmax")["s"]


def harmonic_prob(c_y, *, n: float = _HARMONIC["n"], num_classes: int = 2, c_other: float = 0.0,
                  eps: float = _HARMONIC["eps"], scale: float = 1.0):
    """True-class HarMax probability with ``num_classes − 1`` other classes at cosine ``c_other``.

    The head's logits ``−n log d`` of the distances ``d`` (:func:`fr.heads.harmonic.cosine_distance`, times
    ``scale`` to show the invariance), and ``log p_y = l_y − logsumexp_k l_k``."""
    if num_classes < 2:
        raise ValueError(f"harmonic_prob: num_classes must be >= 2, got {num_classes}")
    ly = harmax_logits(scale * cosine_distance(tensor(c_y), eps), n)
    lo = harmax_logits(scale * cosine_distance(tensor(c_other), eps), n) + math.log(num_classes - 1)
    return array(torch.exp(ly - torch.logaddexp(ly, lo)))


def softmax_prob(c_y, *, s: float = _SOFTMAX_S, num_classes: int = 2, c_other: float = 0.0):
    """True-class softmax probability ``σ(s (c_y − c_other) − log(C − 1))`` (logits ``s c``, the normalised
    softmax head)."""
    return expit(s * (np.asarray(c_y, dtype=float) - c_other) - np.log(num_classes - 1))


def plot_probabilities(*, ns=(1, 4, 16), s: float = _SOFTMAX_S, num_classes: int = 2, eps: float = _HARMONIC["eps"],
                       m: int = 801):
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
