"""AdaFace analysis: the quality-adaptive margin map (no training).

Source: AdaFace (Kim et al., CVPR 2022) eq. 10/11 and the official code (mk-minchul/AdaFace ``head.py``).
Reference: ``heads.md`` §2.8, §4.6.

``ẑ = clip((a − μ)/(σ + ε) · h, −1, 1)``, ``g_angle = −m ẑ``, ``g_add = m ẑ + m``; target logit
``s (cos(θ_y + g_angle) − g_add)``. ẑ = −1 → ArcFace(m), ẑ = 0 → CosFace(m), ẑ = +1 → angular ``−m`` plus
additive ``2m``. With h = 0.333 a norm within 3 standard deviations (99.7% of a Gaussian batch) is not
clipped.
"""
from __future__ import annotations

import math

import numpy as np

from ._plot import heatmap, new_figure


def margins(z_hat, m: float = 0.4):
    """``(g_angle, g_add) = (−m ẑ, m (1 + ẑ))`` (AdaFace eq. 10/11)."""
    z_hat = np.asarray(z_hat, dtype=float)
    return -m * z_hat, m * (1.0 + z_hat)


def z_hat(norms, mu: float, sigma: float, *, h: float = 0.333, eps: float = 1e-3):
    """``ẑ = clip((a − μ)/(σ + eps) · h, −1, 1)`` as in the official code (eps = 1e-3)."""
    return np.clip((np.asarray(norms, dtype=float) - mu) / (sigma + eps) * h, -1.0, 1.0)


def target_logit(c, z_hat, *, m: float = 0.4, eps: float = 1e-3):
    """Target logit ÷ s: ``cos(clip(arccos c + g_angle, eps, π − eps)) − g_add`` (official clip)."""
    g_angle, g_add = margins(z_hat, m)
    theta = np.arccos(np.clip(np.asarray(c, dtype=float), -1 + eps, 1 - eps))
    return np.cos(np.clip(theta + g_angle, eps, math.pi - eps)) - g_add


def unclipped_fraction(h: float = 0.333) -> float:
    """Fraction of a standard-normal batch with ``|z · h| < 1`` (not clipped): ``erf(1/(h√2))``.
    h = 0.333 → ``P(|z| < 3.003) = 0.9973`` (the "99.7%" of the paper)."""
    if h <= 0:
        raise ValueError(f"unclipped_fraction: h must be > 0, got {h}")
    return math.erf(1.0 / (h * math.sqrt(2.0)))


def plot_margin_map(*, m: float = 0.4, n: int = 201):
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
