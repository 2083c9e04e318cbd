"""MagFace analysis: magnitude-aware margin ``m(a)``, regulariser ``g(a)``, the λ_g feasibility bound and
the optimal feature norm (no training).

Source: MagFace (Meng et al., CVPR 2021) and the official code (IrvingMeng/MagFace ``models/magface.py``,
``run/trainer.py``).

* ``m(a) = l_m + (u_m − l_m)(a − l_a)/(u_a − l_a)`` on ``a ∈ [l_a, u_a]`` (a = feature norm, clamped);
* ``g(a) = a/u_a² + 1/a`` (convex, minimum at ``a = u_a``), ``g'(a) = 1/u_a² − 1/a²``;
* the trainer's feasibility bound ``λ_g ≥ s k u_a² l_a² / (u_a² − l_a²)``, ``k = (u_m − l_m)/(u_a − l_a)``
  (22.59 for the defaults s = 64, 10, 110, 0.45, 0.8; 29.04 for Mag-CosFace's l_m = 0.35).

Margin, regulariser, bound and targets are the heads' functions (:mod:`fr.heads.magface`) on float64 tensors,
derivatives are taken by autograd through them, and the defaults are the registered heads'.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..heads import head_defaults
from ..heads.magface import (mag_cosface_target, magface_lambda_bound, magface_margin, magface_regulariser,
                             magface_target)
from ._plot import new_figure
from ._tensor import array, tensor

_MAG = head_defaults("magface")
_BOUNDS = ("l_a", "u_a", "l_m", "u_m")
#: (l_a, u_a, l_m, u_m) of the registered MagFace and Mag-CosFace heads.
MAGFACE_DEFAULTS = {k: _MAG[k] for k in _BOUNDS}
MAGCOSFACE_DEFAULTS = {k: head_defaults("mag_cosface")[k] for k in _BOUNDS}


def margin(a, *, l_a: float = _MAG["l_a"], u_a: float = _MAG["u_a"], l_m: float = _MAG["l_m"],
           u_m: float = _MAG["u_m"]):
    """``m(a)``, linear from ``l_m`` at ``l_a`` to ``u_m`` at ``u_a``, with ``a`` clamped to ``[l_a, u_a]`` as the
    head does (:func:`fr.heads.magface.magface_margin`)."""
    return array(magface_margin(tensor(a).clamp(l_a, u_a), l_a, u_a, l_m, u_m))


def regulariser(a, *, u_a: float = _MAG["u_a"]):
    """``g(a) = a/u_a² + 1/a`` (:func:`fr.heads.magface.magface_regulariser`)."""
    return array(magface_regulariser(tensor(a), u_a))


def lambda_bound(*, s: float = _MAG["s"], l_a: float = _MAG["l_a"], u_a: float = _MAG["u_a"],
                 l_m: float = _MAG["l_m"], u_m: float = _MAG["u_m"]) -> float:
    """Feasibility bound printed by the official trainer (:func:`fr.heads.magface.magface_lambda_bound`):
    ``λ_g ≥ s k u_a² l_a² / (u_a² − l_a²)``, ``k = (u_m − l_m)/(u_a − l_a)``. Defaults → 22.59 (so the trainer
    default λ_g = 20 violates it and run.sh's 35 satisfies it); Mag-CosFace (l_m = 0.35) → 29.04."""
    return magface_lambda_bound(s, l_a, u_a, l_m, u_m)


def _objective(a: torch.Tensor, c_y: torch.Tensor, *, s, lam, kind, easy_margin, c_n, K, l_a, u_a, l_m, u_m):
    """Per-sample ``CE(a) + λ g(a)`` on tensors: the head's target for margin ``m(a)`` against ``K`` classes at
    cosine ``c_n``, ``CE = softplus(s c_n + log K − s f)``."""
    m = magface_margin(a.clamp(l_a, u_a), l_a, u_a, l_m, u_m)
    if kind == "arc":
        f = magface_target(c_y, m, easy_margin=easy_margin)
    elif kind == "cos":
        f = mag_cosface_target(c_y, m)
    else:
        raise ValueError(f"magface: kind must be 'arc' (MagFace) or 'cos' (Mag-CosFace), got {kind!r}")
    return torch.nn.functional.softplus(s * c_n + math.log(K) - s * f) + lam * magface_regulariser(a, u_a)


def _objective_and_grad(a, c_y, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    a = a.detach().clone().requires_grad_(True)
    obj = _objective(a, c_y, **kw)
    (grad,) = torch.autograd.grad(obj.sum(), a)
    return obj.detach(), grad


def objective(a, c_y, *, s: float = _MAG["s"], lam: float = _MAG["lambda_g"], kind: str = "arc",
              easy_margin: bool = _MAG["easy_margin"], c_n: float = 0.0, K: float = 1.0, l_a: float = _MAG["l_a"],
              u_a: float = _MAG["u_a"], l_m: float = _MAG["l_m"], u_m: float = _MAG["u_m"]):
    """Per-sample MagFace objective ``CE(a) + λ_g g(a)`` with the MagFace head's target ``s cos(θ_y + m(a))``
    (``kind="arc"``, with its easy margin: no margin where ``c_y <= 0``; ``"cos"``: Mag-CosFace's
    ``s (c_y − m(a))``) against ``K`` classes at cosine ``c_n``."""
    a_t, c_t = torch.broadcast_tensors(tensor(a), tensor(c_y))
    return array(_objective(a_t, c_t, s=s, lam=lam, kind=kind, easy_margin=easy_margin, c_n=c_n, K=K, l_a=l_a,
                            u_a=u_a, l_m=l_m, u_m=u_m))


def optimal_norm(c_y, *, s: float = _MAG["s"], lam: float = _MAG["lambda_g"], kind: str = "arc",
                 easy_margin: bool = _MAG["easy_margin"], c_n: float = 0.0, K: float = 1.0,
                 l_a: float = _MAG["l_a"], u_a: float = _MAG["u_a"], l_m: float = _MAG["l_m"],
                 u_m: float = _MAG["u_m"], iters: int = 80):
    """Norm ``a* ∈ [l_a, u_a]`` minimising :func:`objective` for each ``c_y`` (vectorised bisection on
    ``∂CE/∂a + λ_g g'(a) = 0``, the derivative by autograd; an endpoint when it does not change sign).

    MagFace's theorem: for ``λ_g`` above :func:`lambda_bound` the optimum is unique and increases with
    ``c_y`` (easier samples get larger norms). Its proof assumes ``θ_y + m(a) ≤ π/2``; in this
    two-class toy a* indeed increases with ``c_y`` there (``c_y ≥ sin u_m = 0.717``, and in practice
    from ``c_y ≈ 0.3``), while for very hard samples (``θ_y + m > π/2``, ``p ≈ 0``) a* drifts slightly
    DOWN as ``c_y`` grows, because ``sin(θ_y + m)`` then grows with ``c_y``. Outside the theorem's range
    the derivative need not be monotone and bisection returns a stationary point. Where the easy margin
    applies (``c_y <= 0``) the cross-entropy does not depend on ``a`` and a* is ``u_a``, the regulariser's minimum.
    """
    c_t = tensor(c_y)
    kw = dict(s=s, lam=lam, kind=kind, easy_margin=easy_margin, c_n=c_n, K=K, l_a=l_a, u_a=u_a, l_m=l_m, u_m=u_m)
    lo = torch.full_like(c_t, l_a)
    hi = torch.full_like(c_t, u_a)
    g_lo = _objective_and_grad(lo, c_t, **kw)[1]
    g_hi = _objective_and_grad(hi, c_t, **kw)[1]
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        right = _objective_and_grad(mid, c_t, **kw)[1] < 0  # still descending: optimum to the right
        lo = torch.where(right, mid, lo)
        hi = torch.where(right, hi, mid)
    a = 0.5 * (lo + hi)
    a = torch.where(g_lo >= 0, torch.full_like(a, l_a), a)
    a = torch.where(g_hi <= 0, torch.full_like(a, u_a), a)
    return array(a)


def plot_magface(*, s: float = _MAG["s"], lams=(20.0, _MAG["lambda_g"]), n: int = 400, **bounds):
    """Three panels: ``m(a)`` (MagFace and Mag-CosFace), ``g(a)``, and the optimal norm versus ``c_y``
    for each ``λ_g`` (with the feasibility bound in the legend). The default ``λ_g`` are the official trainer's
    default (20) and the registered head's (35, run.sh)."""
    mb = {**MAGFACE_DEFAULTS, **bounds}
    a = np.linspace(mb["l_a"], mb["u_a"], n)
    fig, axes = new_figure(1, 3, width=4.0)
    for name, bnd in (("MagFace", mb), ("Mag-CosFace", MAGCOSFACE_DEFAULTS)):
        axes[0].plot(a, margin(a, **bnd), label=f"{name} ({bnd['l_m']:g} → {bnd['u_m']:g})")
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
