"""SphereFace (A-Softmax) analysis: the monotone angular function ψ(θ) and the λ annealing schedule.

Source: SphereFace (Liu et al., CVPR 2017) eq. 7 and the official Caffe prototxt (wy1iu/sphereface
``train/code/sphereface_model.prototxt``: m = 4, base = 1000, gamma = 0.12, power = 1, lambda_min = 5).

* ``ψ(θ) = (−1)^k cos(mθ) − 2k`` for ``θ ∈ [kπ/m, (k+1)π/m]``, ``k = floor(mθ/π)``: decreasing from 1 to
  ``1 − 2m`` (−7 for m = 4) on ``[0, π]``.
* target logit ``‖x‖ (λ cos θ + ψ(θ))/(1 + λ)`` with ``λ = max(λ_min, base (1 + γ·iter)^(−power))``.

ψ, the target and the schedule are the SphereFace head's functions (:mod:`fr.heads.sphereface`) on float64
tensors, and the defaults its registered ones.
"""
from __future__ import annotations

import math

import numpy as np

from ..heads import head_defaults
from ..heads.sphereface import a_softmax_psi, sphereface_lambda, sphereface_target
from ._plot import new_figure
from ._tensor import array, tensor

_SPH = head_defaults("sphereface")


def _cos(theta):
    """``cos θ`` of array-like angles as a float64 tensor (the head takes cosines)."""
    return tensor(theta).cos()


def psi(theta, m: int = _SPH["m"]):
    """``ψ(θ) = (−1)^k cos(mθ) − 2k``, ``k = floor(mθ/π)`` clipped to ``m − 1`` (so ψ(π) = 1 − 2m):
    :func:`fr.heads.sphereface.a_softmax_psi` of ``cos θ``."""
    return array(a_softmax_psi(_cos(theta), m))


def annealed_target(theta, lam, m: int = _SPH["m"]):
    """Normalised target logit ``(λ cos θ + ψ(θ))/(1 + λ)`` (multiply by ‖x‖ for the official logit;
    :func:`fr.heads.sphereface.sphereface_target`)."""
    return array(sphereface_target(_cos(theta), lam, m))


def lambda_schedule(iteration, *, base: float = _SPH["base"], gamma: float = _SPH["gamma"],
                    power: float = _SPH["power"], lambda_min: float = _SPH["lambda_min"]):
    """``λ = max(λ_min, base (1 + γ·iter)^(−power))`` (:func:`fr.heads.sphereface.sphereface_lambda`)."""
    return array(sphereface_lambda(tensor(iteration), base, gamma, power, lambda_min))


def iteration_reaching_min(*, base: float = _SPH["base"], gamma: float = _SPH["gamma"],
                           power: float = _SPH["power"], lambda_min: float = _SPH["lambda_min"]) -> float:
    """Iteration (continuous) where ``base (1 + γ·iter)^(−power) = λ_min``: ≈ 1658.3 for the defaults."""
    return ((base / lambda_min) ** (1.0 / power) - 1.0) / gamma


def plot_sphereface(*, m: int = _SPH["m"], lambdas=(0.0, 5.0, 20.0, 1000.0), iters: int = 4000, n: int = 600):
    """Left: ψ(θ) and the annealed target ``(λ cos θ + ψ)/(1 + λ)`` for several λ. Right: λ(iter)."""
    th = np.linspace(0, math.pi, n)
    fig, (a1, a2) = new_figure(1, 2, width=4.4)
    a1.plot(th, np.cos(th), color="grey", ls=":", label="cos θ")
    for lam in lambdas:
        a1.plot(th, annealed_target(th, lam, m), label=f"λ={lam:g}" + (" (ψ)" if lam == 0 else ""))
    a1.set_xlabel("θ (rad)")
    a1.set_title(f"SphereFace target, m={m}", fontsize=9)
    a1.legend(fontsize=7)
    it = np.arange(iters)
    a2.plot(it, lambda_schedule(it))
    a2.axvline(iteration_reaching_min(), color="grey", ls=":",
               label=f"λ={_SPH['lambda_min']:g} at {iteration_reaching_min():.0f}")
    a2.set_yscale("log")
    a2.set_xlabel("iteration")
    a2.set_title("λ schedule", fontsize=9)
    a2.legend(fontsize=7)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    return fig
