"""MagFace analysis: magnitude-aware margin ``m(a)``, regulariser ``g(a)``, the λ_g feasibility bound and
the optimal feature norm (no training).

Source: MagFace (Meng et al., CVPR 2021) and the official code (IrvingMeng/MagFace ``models/magface.py``,
``run/trainer.py``). Reference: ``heads.md`` §2.9, §4.5.

* ``m(a) = l_m + (u_m − l_m)(a − l_a)/(u_a − l_a)`` on ``a ∈ [l_a, u_a]`` (a = feature norm, clamped);
* ``g(a) = a/u_a² + 1/a`` (convex, minimum at ``a = u_a``), ``g'(a) = 1/u_a² − 1/a²``;
* the trainer's feasibility bound ``λ_g ≥ s k u_a² l_a² / (u_a² − l_a²)``, ``k = (u_m − l_m)/(u_a − l_a)``
  (22.59 for the defaults s = 64, 10, 110, 0.45, 0.8; 29.04 for Mag-CosFace's l_m = 0.35).
"""
from __future__ import annotations

import math

import numpy as np

from ._plot import new_figure

MAGFACE_DEFAULTS = dict(l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8)
MAGCOSFACE_DEFAULTS = dict(l_a=10.0, u_a=110.0, l_m=0.35, u_m=0.8)


def margin(a, *, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8):
    """``m(a)``, linear from ``l_m`` at ``l_a`` to ``u_m`` at ``u_a``; ``a`` is clamped to ``[l_a, u_a]``
    as in the official code."""
    a = np.clip(np.asarray(a, dtype=float), l_a, u_a)
    return (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m


def regulariser(a, *, u_a: float = 110.0):
    """``g(a) = a/u_a² + 1/a``."""
    a = np.asarray(a, dtype=float)
    return a / u_a**2 + 1.0 / a


def regulariser_grad(a, *, u_a: float = 110.0):
    """``g'(a) = 1/u_a² − 1/a²`` (negative below ``u_a``)."""
    a = np.asarray(a, dtype=float)
    return 1.0 / u_a**2 - 1.0 / a**2


def lambda_bound(*, s: float = 64.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45,
                 u_m: float = 0.8) -> float:
    """Feasibility bound printed by the official trainer: ``λ_g ≥ s k u_a² l_a² / (u_a² − l_a²)``,
    ``k = (u_m − l_m)/(u_a − l_a)``. Defaults → 22.59 (so the trainer default λ_g = 20 violates it and
    run.sh's 35 satisfies it); Mag-CosFace (l_m = 0.35) → 29.04."""
    k = (u_m - l_m) / (u_a - l_a)
    return s * k * u_a**2 * l_a**2 / (u_a**2 - l_a**2)


def _ce_and_grad(a, c_y, *, s, lam, kind, c_n, K, l_a, u_a, l_m, u_m):
    """Per-sample objective ``CE(a) + λ g(a)`` and its derivative in ``a`` (one class at ``c_n``, K times)."""
    m = margin(a, l_a=l_a, u_a=u_a, l_m=l_m, u_m=u_m)
    k = (u_m - l_m) / (u_a - l_a)
    theta = np.arccos(np.clip(c_y, -1, 1))
    if kind == "arc":
        f = s * np.cos(theta + m)
        df = -s * np.sin(theta + m) * k
    elif kind == "cos":
        f = s * (c_y - m)
        df = -s * k * np.ones_like(f)
    else:
        raise ValueError(f"magface: kind must be 'arc' (MagFace) or 'cos' (Mag-CosFace), got {kind!r}")
    z = s * c_n + math.log(K) - f  # CE = softplus(z)
    ce = np.logaddexp(0.0, z)
    one_minus_p = 0.5 * (1.0 + np.tanh(0.5 * z))  # σ(z) = 1 − p
    obj = ce + lam * regulariser(a, u_a=u_a)
    grad = -one_minus_p * df + lam * regulariser_grad(a, u_a=u_a)
    return obj, grad


def objective(a, c_y, *, s: float = 64.0, lam: float = 35.0, kind: str = "arc", c_n: float = 0.0,
              K: float = 1.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8):
    """Per-sample MagFace objective ``CE(a) + λ_g g(a)`` with target logit ``s cos(θ_y + m(a))`` (``kind="arc"``;
    ``"cos"``: ``s (c_y − m(a))``) against ``K`` classes at cosine ``c_n``. No easy-margin switch."""
    return _ce_and_grad(np.asarray(a, dtype=float), np.asarray(c_y, dtype=float), s=s, lam=lam, kind=kind,
                        c_n=c_n, K=K, l_a=l_a, u_a=u_a, l_m=l_m, u_m=u_m)[0]


def optimal_norm(c_y, *, s: float = 64.0, lam: float = 35.0, kind: str = "arc", c_n: float = 0.0,
                 K: float = 1.0, l_a: float = 10.0, u_a: float = 110.0, l_m: float = 0.45, u_m: float = 0.8,
                 iters: int = 80):
    """Norm ``a* ∈ [l_a, u_a]`` minimising :func:`objective` for each ``c_y`` (vectorised bisection on
    ``∂CE/∂a + λ_g g'(a) = 0``; an endpoint when the derivative does not change sign).

    MagFace's theorem: for ``λ_g`` above :func:`lambda_bound` the optimum is unique and increases with
    ``c_y`` (easier samples get larger norms). Its proof assumes ``θ_y + m(a) ≤ π/2``; in this
    two-class toy a* indeed increases with ``c_y`` there (``c_y ≥ sin u_m = 0.717``, and in practice
    from ``c_y ≈ 0.3``), while for very hard samples (``θ_y + m > π/2``, ``p ≈ 0``) a* drifts slightly
    DOWN as ``c_y`` grows, because ``sin(θ_y + m)`` then grows with ``c_y``. Outside the theorem's range
    the derivative need not be monotone and bisection returns a stationary point.
    """
    c_y = np.asarray(c_y, dtype=float)
    kw = dict(s=s, lam=lam, kind=kind, c_n=c_n, K=K, l_a=l_a, u_a=u_a, l_m=l_m, u_m=u_m)
    lo = np.full_like(c_y, l_a)
    hi = np.full_like(c_y, u_a)
    g_lo = _ce_and_grad(lo, c_y, **kw)[1]
    g_hi = _ce_and_grad(hi, c_y, **kw)[1]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        g = _ce_and_grad(mid, c_y, **kw)[1]
        right = g < 0  # still descending: optimum to the right
        lo = np.where(right, mid, lo)
        hi = np.where(right, hi, mid)
    a = 0.5 * (lo + hi)
    a = np.where(g_lo >= 0, l_a, a)
    a = np.where(g_hi <= 0, u_a, a)
    return a


def plot_magface(*, s: float = 64.0, lams=(20.0, 35.0), n: int = 400, **bounds):
    """Three panels: ``m(a)`` (MagFace and Mag-CosFace), ``g(a)``, and the optimal norm versus ``c_y``
    for each ``λ_g`` (with the feasibility bound in the legend)."""
    mb = {**MAGFACE_DEFAULTS, **bounds}
    a = np.linspace(mb["l_a"], mb["u_a"], n)
    fig, axes = new_figure(1, 3, width=4.0)
    axes[0].plot(a, margin(a, **mb), label="MagFace (0.45 → 0.8)")
    axes[0].plot(a, margin(a, **MAGCOSFACE_DEFAULTS), label="Mag-CosFace (0.35 → 0.8)")
    axes[0].set_title("m(a)", fontsize=9)
    axes[1].plot(a, regulariser(a, u_a=mb["u_a"]))
    axes[1].axvline(mb["u_a"], color="grey", ls=":")
    axes[1].set_title("g(a) = a/u_a² + 1/a", fontsize=9)
    c = np.linspace(-0.2, 0.99, n)
    bound = lambda_bound(s=s, **mb)
    for lam in lams:
        axes[2].plot(c, optimal_norm(c, s=s, lam=lam, **mb), label=f"λ_g={lam:g} (bound {bound:.2f})")
    axes[2].set_title("optimal norm a* (one competitor at c=0)", fontsize=9)
    axes[2].set_xlabel("c_y")
    for ax in axes[:2]:
        ax.set_xlabel("feature norm a")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    return fig
