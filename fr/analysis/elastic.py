"""ElasticFace analysis: margin distributions, decision boundaries and the "+" assignment.

Source: ElasticFace (Boutros et al., CVPRW 2022) and the official code (fdbtrs/ElasticFace
``utils/losses.py``, ``config/config.py``).

Margins are drawn per sample per step, ``m_i ~ N(μ, σ²)``. In the "+" variants the intended rule gives
smaller margins to samples closer to their centre: the k-th largest ``c_y`` receives the k-th smallest
margin. The official code instead writes ``margin_sorted[idx]`` with ``idx = argsort(c_y, descending)``,
i.e. row ``i`` receives the ``idx[i]``-th smallest margin — the intended assignment only when ``idx`` is
an involution; in general it is unrelated to sample ``i``'s rank (rank correlation ≈ 0, not −1).

The assignment, the rank correlation and the ArcFace target are the heads' functions
(:mod:`fr.heads.elasticface`, :func:`fr.heads.base.arc_target`) on float64 tensors; (μ, σ) are the registered
heads' defaults.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..heads import head_defaults
from ..heads.base import arc_target
from ..heads.elasticface import assign_plus_margins, rank_correlation
from ._plot import new_figure
from ._tensor import array, tensor


def _mu_sigma(name: str) -> tuple[float, float]:
    d = head_defaults(name)
    return d["m"], d["sigma"]


#: (μ, σ) of the registered heads (the official configs), plus the official class constructors' default σ.
ELASTIC_CONFIGS = {
    "ElasticArcFace": _mu_sigma("elastic_arc"),
    "ElasticArcFace+": _mu_sigma("elastic_arc_plus"),
    "ElasticCosFace": _mu_sigma("elastic_cos"),
    "ElasticCosFace+": _mu_sigma("elastic_cos_plus"),
    "class default (arc)": (head_defaults("elastic_arc")["m"], 0.0125),
}
_ARC_TH_MM = head_defaults("elastic_arc")["th_mm"]


def margin_pdf(m, mu: float, sigma: float):
    """Normal density of the margin (:data:`scipy.stats.norm`)."""
    if sigma <= 0:
        raise ValueError(f"margin_pdf: sigma must be > 0, got {sigma}")
    return stats.norm.pdf(np.asarray(m, dtype=float), loc=mu, scale=sigma)


def tail_probability(k: float = 2.0) -> float:
    """``P(|m − μ| > kσ) = erfc(k/√2)`` for a normal margin (4.55% at k = 2) — independent of μ, σ."""
    return math.erfc(k / math.sqrt(2.0))


def boundary_arc(theta1, m: float):
    """Two-class ElasticFace-Arc decision boundary for class 1 at margin ``m``: the angle ``θ_2`` with
    ``cos θ_2`` equal to the head's target ``cos(θ_1 + m)`` (:func:`fr.heads.base.arc_target`, no th/mm
    fallback as registered), i.e. ``θ_2 = θ_1 + m`` up to ``π``; beyond it the official logit turns back up."""
    return np.arccos(np.clip(array(arc_target(tensor(np.cos(theta1)), m, th_mm=_ARC_TH_MM)), -1.0, 1.0))


def boundary_cos(theta1, m: float):
    """Two-class ElasticFace-Cos decision boundary for class 1: ``cos θ_2 = cos θ_1 − m`` (nan where undefined)."""
    v = np.cos(np.asarray(theta1, dtype=float)) - m
    return np.where(np.abs(v) <= 1, np.arccos(np.clip(v, -1, 1)), np.nan)


def plus_assignment(c_y, margins, mode: str = "intended"):
    """Assign a batch of sampled margins to rows in ElasticFace+: the head's
    :func:`fr.heads.elasticface.assign_plus_margins`.

    ``mode="intended"``: the row with the k-th largest ``c_y`` gets the k-th smallest margin (margin
    decreases with ``c_y``). ``mode="official"``: the released code's ``sorted_margin[idx]`` with
    ``idx = argsort(c_y, descending)``. Ties in ``c_y`` keep a stable order.
    """
    return array(assign_plus_margins(tensor(margins), tensor(c_y), mode))


def spearman(x, y) -> float:
    """Spearman rank correlation, as the "+" heads log it (:func:`fr.heads.elasticface.rank_correlation`)."""
    return float(rank_correlation(tensor(x), tensor(y)))


def sample_plus_batch(batch: int = 256, *, mu: float = ELASTIC_CONFIGS["ElasticArcFace+"][0],
                      sigma: float = ELASTIC_CONFIGS["ElasticArcFace+"][1], seed: int = 0):
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


def plot_decision_boundaries(*, arc=ELASTIC_CONFIGS["ElasticArcFace"], cos=ELASTIC_CONFIGS["ElasticCosFace"],
                             ks=(-2, -1, 0, 1, 2), n: int = 400):
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


def plot_plus_assignment(batch: int = 256, *, mu: float = ELASTIC_CONFIGS["ElasticArcFace+"][0],
                         sigma: float = ELASTIC_CONFIGS["ElasticArcFace+"][1], seed: int = 0):
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
