"""AdaFace analysis: the quality-adaptive margin map (no training).

Source: AdaFace (Kim et al., CVPR 2022) eq. 10/11 and the official code (mk-minchul/AdaFace ``head.py``).

``ẑ = clip((a − μ)/(σ + ε) · h, −1, 1)``, ``g_angle = −m ẑ``, ``g_add = m ẑ + m``; target logit
``s (cos(θ_y + g_angle) − g_add)``. ẑ = −1 → ArcFace(m), ẑ = 0 → CosFace(m), ẑ = +1 → angular ``−m`` plus
additive ``2m``. With h = 0.333 a norm within 3 standard deviations (99.7% of a Gaussian batch) is not
clipped. The formulas are the AdaFace head's functions (:mod:`fr.heads.adaface`) on float64 tensors and the
defaults its registered ones.
"""
from __future__ import annotations

import math

import numpy as np

from ..heads import head_defaults
from ..heads.adaface import NORM_CLIP, adaface_margins, adaface_norm_score, adaface_target
from ._plot import heatmap, new_figure
from ._tensor import array, tensor

_ADA = head_defaults("adaface")


def margins(z_hat, m: float = _ADA["m"]):
    """``(g_angle, g_add) = (−m ẑ, m (1 + ẑ))`` (AdaFace eq. 10/11; :func:`fr.heads.adaface.adaface_margins`)."""
    g_angle, g_add = adaface_margins(tensor(z_hat), m)
    return array(g_angle), array(g_add)


def z_hat(norms, mu: float, sigma: float, *, h: float = _ADA["h"]):
    """``ẑ = clip((a − μ)/(σ + 1e−3) · h, −1, 1)`` with ``a`` the norm clipped to ``[0.001, 100]``, as the head
    computes it from its running statistics ``μ``, ``σ`` (:func:`fr.heads.adaface.adaface_norm_score`)."""
    return array(adaface_norm_score(tensor(norms).clamp(*NORM_CLIP), mu, sigma, h))


def target_logit(c, z_hat, *, m: float = _ADA["m"]):
    """Target logit ÷ s: ``cos(clip(arccos c + g_angle, eps, π − eps)) − g_add`` with the official guards
    (:func:`fr.heads.adaface.adaface_target`)."""
    return array(adaface_target(tensor(c), tensor(z_hat), m))


def unclipped_fraction(h: float = _ADA["h"]) -> float:
    """Fraction of a standard-normal batch with ``|z · h| < 1`` (not clipped): ``erf(1/(h√2))``.
    h = 0.333 → ``P(|z| < 3.003) = 0.9973`` (the "99.7%" of the paper)."""
    if h <= 0:
        raise ValueError(f"unclipped_fraction: h must be > 0, got {h}")
    return math.erf(1.0 / (h * math.sqrt(2.0)))


def plot_margin_map(*, m: float = _ADA["m"], n: int = 201):
    """Left: ``g_angle`` and ``g_add`` versus ẑ. Middle: target logit versus θ_y for ẑ ∈ {−1, 0, 1}
    (ArcFace / CosFace / high-quality limit) against the plain cosine. Right: the margin's effect
    ``cos θ_y − f̃`` over (θ_y, ẑ)."""
    z = np.linspace(-1, 1, n)
    th = np.linspace(0, math.pi, n)
    fig, axes = new_figure(1, 3, width=4.0)
    ga, gd = margins(z, m)
    axes[0].plot(z, ga, label="g_angle = −m ẑ")
    axes[0].plot(z, gd, label="g_add = m(1 + ẑ)")
    axes[0].set_xlabel("ẑ")
    axes[0].set_title(f"AdaFace margins (m={m:g})", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].plot(th, np.cos(th), color="grey", ls=":", label="cos θ (no margin)")
    for zz, name in ((-1, "ẑ=−1 (ArcFace)"), (0, "ẑ=0 (CosFace)"), (1, "ẑ=+1")):
        axes[1].plot(th, target_logit(np.cos(th), zz, m=m), label=name)
    axes[1].set_xlabel("θ_y (rad)")
    axes[1].set_title("target logit / s", fontsize=9)
    axes[1].legend(fontsize=7)
    T, Z = np.meshgrid(th, z)
    heatmap(axes[2], th, z, np.cos(T) - target_logit(np.cos(T), Z, m=m), cmap="viridis",
            title="cos θ_y − f̃ (effective margin)", xlabel="θ_y (rad)", ylabel="ẑ")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    return fig
