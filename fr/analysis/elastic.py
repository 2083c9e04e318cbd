"""ElasticFace analysis: margin distributions, decision boundaries and the "+" assignment.

Source: ElasticFace (Boutros et al., CVPRW 2022) and the official code (fdbtrs/ElasticFace
``utils/losses.py``, ``config/config.py``). Reference: ``heads.md`` §2.10, §4.4.

Margins are drawn per sample per step, ``m_i ~ N(μ, σ²)``. In the "+" variants the intended rule gives
smaller margins to samples closer to their centre: the k-th largest ``c_y`` receives the k-th smallest
margin. The official code instead writes ``margin_sorted[idx]`` with ``idx = argsort(c_y, descending)``,
i.e. row ``i`` receives the ``idx[i]``-th smallest margin — the intended assignment only when ``idx`` is
an involution; in general it is unrelated to sample ``i``'s rank (rank correlation ≈ 0, not −1).
"""
from __future__ import annotations

import math

import numpy as np

from ._plot import new_figure

#: (μ, σ) of the official configs, plus the class-constructor default σ.
ELASTIC_CONFIGS = {
    "ElasticArcFace": (0.50, 0.05),
    "ElasticArcFace+": (0.50, 0.0175),
    "ElasticCosFace": (0.35, 0.05),
    "ElasticCosFace+": (0.35, 0.02),
    "class default (arc)": (0.50, 0.0125),
}


def margin_pdf(m, mu: float, sigma: float):
    """Normal density ``exp(−(m−μ)²/(2σ²)) / (σ√(2π))``."""
    if sigma <= 0:
        raise ValueError(f"margin_pdf: sigma must be > 0, got {sigma}")
    z = (np.asarray(m, dtype=float) - mu) / sigma
    return np.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))


def tail_probability(k: float = 2.0) -> float:
    """``P(|m − μ| > kσ) = erfc(k/√2)`` for a normal margin (4.55% at k = 2) — independent of μ, σ."""
    return math.erfc(k / math.sqrt(2.0))


def boundary_arc(theta1, m: float):
    """Two-class ArcFace decision boundary for class 1: ``θ_2 = θ_1 + m`` (radians; nan beyond π)."""
    t2 = np.asarray(theta1, dtype=float) + m
    return np.where((t2 >= 0) & (t2 <= math.pi), t2, np.nan)


def boundary_cos(theta1, m: float):
    """Two-class CosFace decision boundary for class 1: ``cos θ_2 = cos θ_1 − m`` (nan where undefined)."""
    v = np.cos(np.asarray(theta1, dtype=float)) - m
    return np.where(np.abs(v) <= 1, np.arccos(np.clip(v, -1, 1)), np.nan)


def plus_assignment(c_y, margins, mode: str = "intended"):
    """Assign a batch of sampled margins to rows in ElasticFace+ (``heads.md`` §2.10).

    ``mode="intended"``: the row with the k-th largest ``c_y`` gets the k-th smallest margin (margin
    decreases with ``c_y``). ``mode="official"``: the released code's ``sorted_margin[idx]`` with
    ``idx = argsort(c_y, descending)``. Ties in ``c_y`` keep a stable order.
    """
    c_y = np.asarray(c_y, dtype=float)
    margins = np.asarray(margins, dtype=float)
    if c_y.shape != margins.shape or c_y.ndim != 1:
        raise ValueError(f"plus_assignment: c_y and margins must be 1-D of equal length, got {c_y.shape} "
                         f"and {margins.shape}")
    idx = np.argsort(-c_y, kind="stable")
    sorted_m = np.sort(margins)
    if mode == "official":
        return sorted_m[idx]
    if mode == "intended":
        out = np.empty_like(sorted_m)
        out[idx] = sorted_m
        return out
    raise ValueError(f"plus_assignment: mode must be 'intended' or 'official', got {mode!r}")


def spearman(x, y) -> float:
    """Spearman rank correlation (no tie correction; the inputs here are continuous)."""
    rx = np.argsort(np.argsort(np.asarray(x))).astype(float)
    ry = np.argsort(np.argsort(np.asarray(y))).astype(float)
    rx -= rx.mean()
    ry -= ry.mean()
    return float((rx * ry).sum() / math.sqrt((rx * rx).sum() * (ry * ry).sum()))


def sample_plus_batch(batch: int = 256, *, mu: float = 0.5, sigma: float = 0.0175, seed: int = 0):
    """A toy batch: ``c_y ~ U(−0.2, 0.9)`` and ``m ~ N(μ, σ²)``; returns ``(c_y, intended, official)``."""
    rng = np.random.default_rng(seed)
    c_y = rng.uniform(-0.2, 0.9, batch)
    m = rng.normal(mu, sigma, batch)
    return c_y, plus_assignment(c_y, m, "intended"), plus_assignment(c_y, m, "official")


def plot_margin_pdfs(configs=None, *, n: int = 600):
    """Densities of the sampled margin for each configuration (μ ± 2σ shaded: 95.45% of the mass)."""
    configs = ELASTIC_CONFIGS if configs is None else configs
    fig, ax = new_figure(1, 1, width=5.5)
    for i, (name, (mu, sd)) in enumerate(configs.items()):
        m = np.linspace(mu - 5 * sd, mu + 5 * sd, n)
        ax.plot(m, margin_pdf(m, mu, sd), color=f"C{i}", label=f"{name}: μ={mu:g}, σ={sd:g}")
        ax.axvspan(mu - 2 * sd, mu + 2 * sd, color=f"C{i}", alpha=0.06)
    ax.set_xlabel("margin m")
    ax.set_ylabel("density")
    ax.set_title(f"ElasticFace margins; P(|m−μ| > 2σ) = {100 * tail_probability(2):.2f}%", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_decision_boundaries(*, arc=(0.5, 0.05), cos=(0.35, 0.05), ks=(-2, -1, 0, 1, 2), n: int = 400):
    """Two-class decision boundaries in the (θ_1, θ_2) plane for ``m = μ + kσ``: ArcFace (left),
    CosFace (right); the line ``θ_2 = θ_1`` is the margin-free boundary."""
    th = np.linspace(0, math.pi, n)
    fig, axes = new_figure(1, 2, width=4.2)
    for ax, (mu, sd), fn, name in ((axes[0], arc, boundary_arc, "ElasticFace-Arc"),
                                   (axes[1], cos, boundary_cos, "ElasticFace-Cos")):
        ax.plot(th, th, color="grey", ls=":", label="no margin")
        for k in ks:
            ax.plot(th, fn(th, mu + k * sd), label=f"m = μ{k:+d}σ = {mu + k * sd:.3f}")
        ax.set_title(f"{name} (μ={mu:g}, σ={sd:g})", fontsize=9)
        ax.set_xlabel("θ_1 (rad)")
        ax.set_ylabel("θ_2 on the class-1 boundary (rad)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    return fig


def plot_plus_assignment(batch: int = 256, *, mu: float = 0.5, sigma: float = 0.0175, seed: int = 0):
    """ElasticFace+: assigned margin versus ``c_y`` for one sampled batch, intended (monotone decreasing)
    versus official (scrambled), with the Spearman correlation of each in the legend."""
    c_y, intended, official = sample_plus_batch(batch, mu=mu, sigma=sigma, seed=seed)
    fig, ax = new_figure(1, 1, width=5.5)
    ax.scatter(c_y, intended, s=8, label=f"intended (ρ = {spearman(c_y, intended):+.2f})")
    ax.scatter(c_y, official, s=8, marker="x", label=f"official code (ρ = {spearman(c_y, official):+.2f})")
    ax.set_xlabel("c_y = cos θ_y")
    ax.set_ylabel("assigned margin")
    ax.set_title(f"ElasticFace+ assignment, batch {batch}, μ={mu:g}, σ={sigma:g}", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
