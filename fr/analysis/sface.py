"""SFace analysis: re-scale curves and effective gradient magnitudes (no training).

Source: SFace, "Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition" (Zhong et al., TIP 2021)
and the official torch code (zhongyy/SFace ``SFace_torch/head/metrics.py``).

``L = −[r_intra(θ_y)]_sg c_y + Σ_{j≠y} [r_inter(θ_j)]_sg c_j`` with stop-gradient re-scale functions

* ``r_intra(θ) = s / (1 + e^{−k(θ − a)})`` (pull towards the own centre fades once ``θ_y < a``),
* ``r_inter(θ) = s / (1 + e^{k(θ − b)})`` (push from other centres fades once ``θ_j > b``),

so the gradients w.r.t. the angles have magnitudes ``r_intra(θ_y) sin θ_y`` and ``r_inter(θ_j) sin θ_j``.
Angles are in radians. The re-scales are the SFace head's functions (:mod:`fr.heads.sface`) and the ArcFace
comparison uses the ArcFace head's target (:func:`fr.heads.base.arc_target`), with gradients by autograd;
defaults (s = 64, k = 80, a = 0.80, b = 1.23; ArcFace m = 0.5) are the registered heads'.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..heads import head_defaults
from ..heads import sface as _heads_sface
from ..heads.base import arc_target
from ._plot import new_figure
from ._tensor import array, derivative, tensor

_SF = head_defaults("sface")
_ARC = head_defaults("arcface")

#: (a, b) settings: the registered head's (the torch class default) and the documented per-dataset values
#: (k = 80 throughout).
SFACE_SETTINGS = {
    "default (torch class)": (_SF["a"], _SF["b"]),
    "CASIA-WebFace R50": (0.87, 1.20),
    "VGGFace2 R50": (0.88, 1.25),
    "MS1MV2 R100": (0.90, 1.20),
}


def r_intra(theta, *, s: float = _SF["s"], k: float = _SF["k"], a: float = _SF["a"]):
    """``r_intra(θ) = s σ(k (θ − a))`` (:func:`fr.heads.sface.r_intra`); ``r_intra(a) = s/2`` (32 for s = 64) and
    ``r_intra(a ± 0.05) = 62.85 / 1.15`` for k = 80 (``σ(±4)``)."""
    return array(_heads_sface.r_intra(tensor(theta), s, k, a))


def r_inter(theta, *, s: float = _SF["s"], k: float = _SF["k"], b: float = _SF["b"]):
    """``r_inter(θ) = s σ(−k (θ − b))`` (:func:`fr.heads.sface.r_inter`); ``r_inter(b) = s/2``."""
    return array(_heads_sface.r_inter(tensor(theta), s, k, b))


def intra_grad_magnitude(theta_y, **kw):
    """``|∂L/∂θ_y| = r_intra(θ_y) sin θ_y`` (the re-scale factor is stop-gradient)."""
    theta_y = np.asarray(theta_y, dtype=float)
    return r_intra(theta_y, **kw) * np.sin(theta_y)


def inter_grad_magnitude(theta_j, **kw):
    """``|∂L/∂θ_j| = r_inter(θ_j) sin θ_j``."""
    theta_j = np.asarray(theta_j, dtype=float)
    return r_inter(theta_j, **kw) * np.sin(theta_j)


def _arc_logit(theta: torch.Tensor, m: float) -> torch.Tensor:
    """The ArcFace head's target cosine (exact mode) as a function of the target angle."""
    return arc_target(torch.cos(theta), m, easy_margin=_ARC["easy_margin"])


def arcface_target_grad_magnitude(theta_y, *, s: float = _ARC["s"], m: float = _ARC["m"],
                                  theta_n: float = math.pi / 2, K: float = 1.0):
    """For comparison: ``|∂L/∂θ_y|`` of ArcFace's cross-entropy, by autograd through the ArcFace head's target
    (``s (1 − p) sin(θ_y + m)``, and ``s (1 − p) sin θ_y`` where its th/mm fallback holds; m = 0 → normalised
    softmax), with ``p`` from ``K`` competing classes at angle ``theta_n`` (default 90°, i.e. cosine 0)."""
    def loss(theta):
        return F.softplus(s * math.cos(theta_n) + math.log(K) - s * _arc_logit(theta, m))

    return np.abs(derivative(loss, theta_y))


def arcface_nontarget_grad_magnitude(theta_j, *, s: float = _ARC["s"], m: float = _ARC["m"],
                                     theta_y: float = _SF["a"]):
    """For comparison: ``|∂L/∂θ_j| = s p_j sin θ_j`` of ArcFace in a two-class toy (target at ``theta_y``,
    target logit ``s cos(θ_y + m)`` from the ArcFace head), by autograd."""
    target = float(_arc_logit(torch.tensor(float(theta_y), dtype=torch.float64), m))

    def loss(theta):
        return F.softplus(s * torch.cos(theta) - s * target)

    return np.abs(derivative(loss, theta_j))


def plot_rescale(settings=None, *, s: float = _SF["s"], k: float = _SF["k"], m: float = _ARC["m"], n: int = 600):
    """Three panels: ``r_intra``/``r_inter`` for each (a, b) setting; the intra gradient magnitude against
    ArcFace's target-gradient magnitude (competitor at 90°); the inter gradient magnitude against ArcFace's
    non-target magnitude (target at θ_y = a)."""
    settings = SFACE_SETTINGS if settings is None else settings
    th = np.linspace(0, math.pi, n)
    fig, axes = new_figure(1, 3, width=4.0)
    for i, (name, (a, b)) in enumerate(settings.items()):
        col = f"C{i}"
        axes[0].plot(th, r_intra(th, s=s, k=k, a=a), color=col, label=f"{name}: a={a:g}, b={b:g}")
        axes[0].plot(th, r_inter(th, s=s, k=k, b=b), color=col, ls="--")
        axes[1].plot(th, intra_grad_magnitude(th, s=s, k=k, a=a), color=col, label=f"SFace a={a:g}")
        axes[2].plot(th, inter_grad_magnitude(th, s=s, k=k, b=b), color=col, label=f"SFace b={b:g}")
    a0, b0 = next(iter(settings.values()))
    axes[1].plot(th, arcface_target_grad_magnitude(th, s=s, m=m), color="k", ls=":", label=f"ArcFace m={m:g}")
    axes[1].plot(th, arcface_target_grad_magnitude(th, s=s, m=0.0), color="grey", ls=":", label="softmax")
    axes[2].plot(th, arcface_nontarget_grad_magnitude(th, s=s, m=m, theta_y=a0), color="k", ls=":",
                 label=f"ArcFace m={m:g}, θ_y={a0:g}")
    axes[0].set_title("re-scale: r_intra (solid), r_inter (dashed)", fontsize=9)
    axes[1].set_title("|∂L/∂θ_y|", fontsize=9)
    axes[2].set_title("|∂L/∂θ_j|", fontsize=9)
    for ax in axes:
        ax.set_xlabel("θ (rad)")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    return fig
