"""SMAFace analysis: mining weights, scaling terms and the paper's figures (no training).

Source: "SMAFace: sample mining guided adaptive loss for face recognition" (no code released) — eq. 2–5 (loss, mining weight ``I(p)``, margin
functions), eq. 6–9 (gradient scaling term "GST" and its normalised form "st"), appendix C–D
(eq. 29–34), G (eq. 35–37, HM-Softmax and F-Softmax), H (eq. 38–40, weak/strong/β variants) and
Figures 2–12.

Every formula that a head implements is taken from the head itself, evaluated on float64 tensors: margins and
targets from :mod:`fr.heads.adaface` (with the official AdaFace guards), :mod:`fr.heads.magface` and
:func:`fr.heads.base.arc_target`, the mining weight from :mod:`fr.heads.smaface`; defaults (s, m, p0, each
rule's α, the MagFace bounds) come from the registry (:func:`fr.heads.head_defaults`). So the figures follow
the heads that are trained. What is left here is the paper's own analysis: the probability model, the
scaling terms built from those functions, and the baselines that are not heads (HM-Softmax, focal loss).

Notation: ``c = cos θ_y`` (target cosine, x-axis of every figure), ``q = ẑ ∈ [-1, 1]``
(the AdaFace normalised feature norm, "image quality", y-axis of the heatmaps), ``s`` scale, ``m``
margin, ``p`` the softmax probability of the true class.

* Margins (eq. 4/5 = AdaFace): ``m_angle = -m q``, ``m_add = m q + m``.
* Mining weight (eq. 3/33): ``I(p) = 1 + α (σ(p0 - p) - 0.5)``; ``I*(p) = |7/(7+α)| I(p)`` (eq. 38).
* Scaling term (eq. 8/32): ``st = I'(p) p ln p + I(p)`` — the GST ``g`` divided by the common factor
  ``(p - 1) s`` — times ``∂f/∂c / s`` for an angular margin (eq. 9, 27).

The paper never states how ``p`` was obtained for its heatmaps (it only says p "jumps" from 0 to 1 at the
decision boundary, with a transition width ∝ 1/s). :func:`probability` makes that explicit with one
competing class at cosine ``c_n`` counted ``K`` times: ``p = 1 / (1 + K exp(s (c_n − f̃)))``. Both
``c_n`` and ``K`` are arguments so that the reader can see how much of each figure is this choice.

Paper inconsistencies handled here (recorded in the docstrings where they matter):
eq. 35 prints the HM-Softmax indicator inverted (we use hard = 1, as §3.1 and Fig. 9's text say);
eq. 37 prints ``+γ(1-p)^{γ-1} p ln p`` where the derivative of ``(1-p)^γ`` gives ``−γ…``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..heads import head_defaults
from ..heads import smaface as _heads_smaface
from ..heads.adaface import adaface_margins, adaface_target
from ..heads.base import arc_target
from ..heads.magface import magface_margin, magface_target
from ..heads.smaface import star_factor  # noqa: F401  (re-exported: |7/(7+alpha)| of eq. 38)
from ._plot import heatmap, new_figure
from ._tensor import array, derivative, tensor

_SMA = head_defaults("smaface")
_MAG = head_defaults("magface")
_ARC = head_defaults("arcface")
#: s, m and p0 of the registered SMAFace head (64, 0.4, 0.6).
S_DEFAULT, M_DEFAULT, P0_DEFAULT = _SMA["s"], _SMA["m"], _SMA["p0"]
#: MagFace (l_a, u_a, l_m, u_m) of the registered head, for its Figure-2 panel (10, 110, 0.45, 0.8).
MAGFACE_DEFAULTS = (_MAG["l_a"], _MAG["u_a"], _MAG["l_m"], _MAG["u_m"])
#: The registered head whose ``alpha`` is the default α of each mining method (star comes from the name).
#: "nsmaface" (NSMAFace without the star, no registered head) takes NSMAFace*'s α.
MINING_HEADS = {"sm-cosface": "sm_cosface", "sm-cosface*": "sm_cosface_star", "nsm-cosface*": "nsm_cosface_star",
                "smaface": "smaface", "smaface*": "smaface_star", "nsmaface*": "nsmaface_star",
                "nsmaface": "nsmaface_star"}
_EPS = 1e-12


def sigmoid(x):
    """Logistic function ``σ(x) = 1/(1+e^{-x})`` (elementwise; :func:`scipy.special.expit`)."""
    return expit(np.asarray(x, dtype=float))


def default_alpha(method: str) -> float:
    """α of ``method`` (a key of :data:`MINING_HEADS`) as its registered head sets it (Tables 1-2)."""
    return float(head_defaults(MINING_HEADS[method.lower()])["alpha"])


# ----------------------------------------------------------------------------------------------
# Margins and target logits (eq. 4, 5): the heads' functions
# ----------------------------------------------------------------------------------------------
def margins(q, m: float = M_DEFAULT):
    """AdaFace/SMAFace margins (eq. 4/5; AdaFace eq. 10/11): returns ``(m_angle, m_add)`` with
    ``m_angle = −m q`` and ``m_add = m q + m`` (:func:`fr.heads.adaface.adaface_margins`). ``q = −1`` →
    ArcFace(m), ``0`` → CosFace(m), ``+1`` → angular ``−m`` plus additive ``2m``."""
    m_angle, m_add = adaface_margins(tensor(q), m)
    return array(m_angle), array(m_add)


def target_logit(c, q=0.0, *, m: float = M_DEFAULT, kind: str = "smaface"):
    """Target logit divided by ``s`` (``f̃``), computed by the head of ``kind``:

      * ``"smaface"`` / ``"adaface"`` (eq. 5): :func:`fr.heads.adaface.adaface_target`, angular form
        ``cos(θ + m_angle) − m_add`` with the official guards (cosine clamped to ``±(1 − 1e−3)``, ``θ + m_angle``
        clipped to ``[1e−3, π − 1e−3]``);
      * ``"sm-cosface"`` (eq. 4): the same function's cosine form ``c − m_add``;
      * ``"arcface"``: the ArcFace head's exact-mode target :func:`fr.heads.base.arc_target` (``cos(θ + m)``,
        insightface's ``c − m sin m`` below ``cos(π − m)``; ``q`` ignored);
      * ``"cosface"``: ``c − m`` (``q`` ignored);
      * ``"softmax"``: ``c`` (no margin; the logit of eq. 36–37, HM-/F-Softmax).
    ``c`` is clipped to ``[−1, 1]`` first, as the classifier does.
    """
    c_t = tensor(c).clamp(-1.0, 1.0)
    q_t = tensor(q)
    kind = kind.lower()
    if kind in ("smaface", "adaface", "sm-cosface"):
        return array(adaface_target(c_t, q_t, m, angular=kind != "sm-cosface"))
    if kind == "arcface":
        f = arc_target(c_t, m, easy_margin=_ARC["easy_margin"])
    elif kind == "cosface":
        f = c_t - m
    elif kind == "softmax":
        f = c_t
    else:
        raise ValueError(f"target_logit: unknown kind {kind!r}; expected one of "
                         "'smaface', 'adaface', 'sm-cosface', 'arcface', 'cosface', 'softmax'")
    return array(f + 0.0 * q_t)


def probability(f_tilde, *, s: float = S_DEFAULT, c_n: float = 0.0, K: float = 1.0):
    """Probability model used for the heatmaps (NOT stated in the paper).

    ``p = 1 / (1 + K exp(s (c_n − f̃)))``: the true class competes with ``K`` classes at cosine
    ``c_n``. Default ``c_n = 0`` (random centres are nearly orthogonal in 512-D) and ``K = 1``; with
    ``K = C − 1`` the boundary moves by ``ln(K)/s`` (0.177 for C = 85,742, s = 64).
    """
    if K <= 0:
        raise ValueError(f"probability: K must be > 0 (number of competing classes), got {K}")
    f_tilde = np.asarray(f_tilde, dtype=float)
    return sigmoid(s * (f_tilde - c_n) - math.log(K))


def decision_boundary(q, *, m: float = M_DEFAULT, kind: str = "smaface", s: float = S_DEFAULT,
                      c_n: float = 0.0, K: float = 1.0):
    """Target cosine ``c`` at which ``p = 0.5`` under :func:`probability`, for each ``q``.

    Solves ``f̃(c, q) = c_n + ln(K)/s`` in closed form with the head's margins (``nan`` where no
    ``c ∈ [−1, 1]`` solves it); the tests check that :func:`target_logit` gives ``p = 0.5`` there.
    With the defaults (``c_n = 0``, ``K = 1``, m = 0.4) the SMAFace boundary passes (0.389, −1),
    (0.4, 0), (0.503, 1); the SM-CosFace boundary is the line ``c = m (q + 1)``.
    """
    q = np.asarray(q, dtype=float)
    b = c_n + math.log(K) / s
    kind = kind.lower()
    if kind in ("smaface", "adaface"):
        m_angle, m_add = margins(q, m)
        v = b + m_add
        ok = np.abs(v) <= 1
        theta = np.arccos(np.clip(v, -1, 1)) - m_angle
        ok &= (theta >= 0) & (theta <= math.pi)
        return np.where(ok, np.cos(np.clip(theta, 0, math.pi)), np.nan)
    if kind == "sm-cosface":
        _, m_add = margins(q, m)
        c = b + m_add
        return np.where(np.abs(c) <= 1, c, np.nan)
    raise ValueError(f"decision_boundary: kind must be 'smaface', 'adaface' or 'sm-cosface', got {kind!r}")


# ----------------------------------------------------------------------------------------------
# Mining weights (eq. 3, 33, 34, 38–40) and the baselines (eq. 35)
# ----------------------------------------------------------------------------------------------
def mining_weight(p, alpha: float = _SMA["alpha"], p0: float = P0_DEFAULT, variant: str = _SMA["variant"],
                  star: bool = False, *, beta: float = _SMA["beta"], alpha0: float | None = _SMA["alpha0"]):
    """SMAFace mining weight ``I(p)`` (eq. 3 = eq. 33) and its variants, for array-like ``p``: the training
    head's own :func:`fr.heads.smaface.mining_weight` (see there for the variants), so that the figures and the
    loss cannot drift apart.

    ``I(p) = [|7/(7+α)| if star] · (1 + a (σ(β (p0 − p)) − 0.5))``. Check values (p0 = 0.6): α = 1 →
    I(0), I(0.6), I(1) = 1.1457, 1, 0.9013.
    """
    return array(_heads_smaface.mining_weight(tensor(p), alpha, p0, variant, star, beta=beta, alpha0=alpha0))


def mining_weight_grad(p, alpha: float = _SMA["alpha"], p0: float = P0_DEFAULT, variant: str = _SMA["variant"],
                       star: bool = False, *, beta: float = _SMA["beta"], alpha0: float | None = _SMA["alpha0"]):
    """``dI/dp`` of :func:`mining_weight` (eq. 34: ``α σ(p0 − p)(σ(p0 − p) − 1)`` for the standard
    variant; zero on the flat side of weak/strong; times ``β`` for the β-variant; times the star factor):
    :func:`fr.heads.smaface.mining_weight_grad`."""
    return array(_heads_smaface.mining_weight_grad(tensor(p), alpha, p0, variant, star, beta=beta, alpha0=alpha0))


def hm_indicator(p, threshold: float = 0.5):
    """HM-Softmax indicator: 1 for hard samples (``p < 0.5``), 0 for easy ones.

    §3.1 and the text of Fig. 9 say hard = 1; appendix eq. 35/36 print the opposite (a misprint)."""
    return (np.asarray(p, dtype=float) < threshold).astype(float)


def focal_indicator(p, gamma: float = 2.0):
    """F-Softmax (focal loss) indicator ``(1 − p)^γ`` (eq. 35)."""
    return (1.0 - np.asarray(p, dtype=float)) ** gamma


# ----------------------------------------------------------------------------------------------
# Scaling terms (eq. 8, 9, 27, 36, 37)
# ----------------------------------------------------------------------------------------------
def _plogp(p):
    p = np.asarray(p, dtype=float)
    return np.where(p > 0, p * np.log(np.maximum(p, _EPS)), 0.0)


def st_from_indicator(p, weight, weight_grad):
    """Generic mining scaling term ``I'(p) p ln p + I(p)`` (eq. 8 and 32, any indicator)."""
    return np.asarray(weight_grad) * _plogp(p) + np.asarray(weight)


def st_sm_cosface(p, alpha: float = _SMA["alpha"], p0: float = P0_DEFAULT, variant: str = _SMA["variant"],
                  star: bool = False, *, beta: float = _SMA["beta"], alpha0: float | None = _SMA["alpha0"]):
    """``st_SM-CosFace = I'(p) p ln p + I(p)`` (eq. 8); ``star=True`` gives SM-CosFace* (×|7/(7+α)|).

    Differentiates THROUGH ``I(p)`` as the paper's analysis does (eq. 29–32). Check (α = 1, p0 = 0.6):
    p = 0.1 / 0.5 / 0.9 / 0.99 → 1.1766 / 1.1114 / 0.9487 / 0.9061.
    """
    kw = dict(alpha=alpha, p0=p0, variant=variant, star=star, beta=beta, alpha0=alpha0)
    return st_from_indicator(p, mining_weight(p, **kw), mining_weight_grad(p, **kw))


def st_angular(c, m_angle):
    """Angular-margin factor ``∂f/∂c / s = cos m + c sin m / sqrt(1 − c²)`` (eq. 27/28, eq. 9).

    The slope of ``cos(θ + m_angle)`` computed by autograd through :func:`fr.heads.base.arc_target` (the cos/sin
    expansion the ArcFace-type heads use, without its th/mm fallback); ``m_angle`` may be an array (AdaFace:
    ``−m q``; MagFace: ``m(a)``). It grows without bound towards ``c = ±1``, where the expansion's radicand
    clamp (``1 − c² ≥ 1e−7``) leaves ``cos m``. Written as in the paper, i.e. without the zero gradient that
    AdaFace's guards (cosine clamped to ``±(1 − 1e−3)``, ``θ + m`` clipped to ``[1e−3, π − 1e−3]``) give in
    those bands.
    """
    return derivative(lambda x, m: arc_target(x, m, th_mm=False), np.clip(np.asarray(c, dtype=float), -1, 1),
                      m_angle)


def st_arcface(c, m: float = M_DEFAULT):
    """``st_ArcFace`` (eq. 8/28): the slope of the ArcFace head's target (exact mode) by autograd,
    ``cos m + c sin m / sqrt(1 − c²)``, and 1 below ``cos(π − m)`` where insightface's fallback ``c − m sin m``
    takes over. ``m`` may be an array. Check (m = 0.4): c = −0.9 / 0 / 0.5 / 0.9 → 0.1170 / 0.9211 / 1.1459 /
    1.7251."""
    return derivative(lambda x, m: arc_target(x, m, easy_margin=_ARC["easy_margin"]),
                      np.clip(np.asarray(c, dtype=float), -1, 1), m)


def st_adaface(c, q, m: float = M_DEFAULT):
    """AdaFace scaling term: :func:`st_angular` with ``m_angle = −m q`` (first factor of eq. 9)."""
    return st_angular(c, margins(q, m)[0])


def magface_margin_of_q(q, magface=MAGFACE_DEFAULTS):
    """MagFace panel of Fig. 2: the y-axis ``q ∈ [−1, 1]`` is mapped linearly onto ``a ∈ [l_a, u_a]``; returns
    ``(a, m(a))`` with the head's :func:`fr.heads.magface.magface_margin`."""
    l_a, u_a, l_m, u_m = magface
    a = l_a + (np.asarray(q, dtype=float) + 1.0) / 2.0 * (u_a - l_a)
    return a, array(magface_margin(tensor(a), l_a, u_a, l_m, u_m))


def magface_target_logit(c, m_a):
    """MagFace's target logit ÷ s for margins ``m_a``: the registered head's target
    (:func:`fr.heads.magface.magface_target`, with its easy margin: no margin where ``c <= 0``)."""
    c_t, m_t = (tensor(x) for x in (np.clip(np.asarray(c, dtype=float), -1, 1), m_a))
    return array(magface_target(c_t, m_t, easy_margin=_MAG["easy_margin"]))


def st_magface(c, m_a):
    """Slope of :func:`magface_target_logit` in ``c`` by autograd: :func:`st_angular` where ``c > 0``, 1 where
    the easy margin keeps the plain cosine."""
    return derivative(lambda x, m: magface_target(x, m, easy_margin=_MAG["easy_margin"]),
                      np.clip(np.asarray(c, dtype=float), -1, 1), m_a)


def st_hm(p):
    """``st_HM-Softmax = I_HM(p)`` (eq. 36; its derivative is zero almost everywhere)."""
    return hm_indicator(p)


def st_focal(p, gamma: float = 2.0):
    """``st_F-Softmax = −γ (1 − p)^{γ−1} p ln p + (1 − p)^γ``.

    Eq. 37 prints ``+γ…``; the derivative of ``(1 − p)^γ`` is ``−γ (1 − p)^{γ−1}``, so the paper's sign
    is a misprint. Check (γ = 2): p = 0.1 / 0.5 / 0.9 → 1.2245 / 0.5966 / 0.0290.
    """
    p = np.asarray(p, dtype=float)
    return st_from_indicator(p, focal_indicator(p, gamma), -gamma * (1.0 - p) ** (gamma - 1.0))


# ----------------------------------------------------------------------------------------------
# One entry point for every method of Figures 2 and 9
# ----------------------------------------------------------------------------------------------
#: Methods of Figure 2 (ten panels; list inferred from §3.3 — the figure has no legend text).
FIGURE2_METHODS = ("arcface", "adaface", "magface", "hm-softmax", "f-softmax", "hm-softmax+adaface",
                   "f-softmax+adaface", "sm-cosface", "smaface*", "nsmaface*")
#: Methods of Figure 9 (caption).
FIGURE9_METHODS = ("hm-softmax", "f-softmax", "adaface", "sm-cosface", "smaface*", "nsmaface*")

_TITLES = {"arcface": "ArcFace", "adaface": "AdaFace", "magface": "MagFace", "hm-softmax": "HM-Softmax",
           "f-softmax": "F-Softmax", "hm-softmax+adaface": "HM-Softmax + AdaFace",
           "f-softmax+adaface": "F-Softmax + AdaFace", "sm-cosface": "SM-CosFace", "smaface": "SMAFace",
           "smaface*": "SMAFace*", "nsmaface": "NSMAFace", "nsmaface*": "NSMAFace*", "cosface": "CosFace",
           "softmax": "Softmax"}


def method_title(method: str, alpha: float | None = None) -> str:
    """Human-readable panel title for a method name of :func:`scaling_term`."""
    t = _TITLES.get(method.lower(), method)
    return f"{t} (α={alpha:g})" if alpha is not None and "smaface" in method.lower() else t


@dataclass
class STResult:
    """Scaling term of one method on a grid: ``st``, the model probability ``p``, the target logit
    ``f_tilde`` (÷ s) and ``correct = p > 0.5`` (the region the paper paints blue)."""

    st: np.ndarray
    p: np.ndarray
    f_tilde: np.ndarray
    correct: np.ndarray


def scaling_term(method: str, c, q=0.0, *, s: float = S_DEFAULT, m: float = M_DEFAULT, c_n: float = 0.0,
                 K: float = 1.0, alpha: float | None = None, p0: float = P0_DEFAULT, gamma: float = 2.0,
                 variant: str = _SMA["variant"], beta: float = _SMA["beta"], alpha0: float | None = _SMA["alpha0"],
                 magface=MAGFACE_DEFAULTS) -> STResult:
    """Scaling term ``st`` of ``method`` at target cosine ``c`` and quality ``q`` (broadcast).

    ``p`` comes from :func:`probability` applied to the method's own target logit (:func:`target_logit`, the
    heads' functions). Methods: ``softmax``/``cosface`` (st = 1), ``arcface`` (eq. 28), ``adaface`` (eq. 9
    first factor), ``magface`` (the MagFace head's target with ``m(a)``, ``q`` mapped to ``a``),
    ``hm-softmax`` / ``f-softmax`` (eq. 36/37 with the plain logit ``s c``), ``hm-softmax+adaface`` /
    ``f-softmax+adaface`` (AdaFace logit, product of the two factors), ``sm-cosface`` (eq. 8 with the logit of
    eq. 4), ``smaface`` / ``smaface*`` / ``nsmaface`` / ``nsmaface*`` (eq. 9, ``*`` = ×|7/(7+α)|). Default α:
    the registered head's (:data:`MINING_HEADS`): 1 for ``sm-cosface``/``smaface``, 2 for ``sm-cosface*`` /
    ``smaface*``, −1 for ``nsm-cosface*``, −2 for ``nsmaface*``/``nsmaface`` (Tables 1-2).
    """
    method = method.lower()
    c = np.asarray(c, dtype=float)
    q = np.asarray(q, dtype=float)
    mining_kw = dict(p0=p0, variant=variant, beta=beta, alpha0=alpha0)

    def _p(kind):
        f = target_logit(c, q, m=m, kind=kind)
        return f, probability(f, s=s, c_n=c_n, K=K)

    if method in ("softmax", "cosface"):
        f, p = _p(method)
        st = np.ones_like(f)
    elif method == "arcface":
        f, p = _p("arcface")
        st = st_arcface(c, m) + 0 * q
    elif method == "adaface":
        f, p = _p("adaface")
        st = st_adaface(c, q, m)
    elif method == "magface":
        _, m_a = magface_margin_of_q(q, magface)
        f = magface_target_logit(c, m_a)
        p = probability(f, s=s, c_n=c_n, K=K)
        st = st_magface(c, m_a)
    elif method in ("hm-softmax", "f-softmax"):
        f, p = _p("softmax")
        st = st_hm(p) if method == "hm-softmax" else st_focal(p, gamma)
    elif method in ("hm-softmax+adaface", "f-softmax+adaface"):
        f, p = _p("adaface")
        base = st_hm(p) if method.startswith("hm") else st_focal(p, gamma)
        st = base * st_adaface(c, q, m)
    elif method in MINING_HEADS:
        a = default_alpha(method) if alpha is None else alpha
        angular = "smaface" in method
        f, p = _p("smaface" if angular else "sm-cosface")
        st = st_sm_cosface(p, a, star=method.endswith("*"), **mining_kw)
        if angular:
            st = st_adaface(c, q, m) * st
    else:
        raise ValueError(f"scaling_term: unknown method {method!r}; known: "
                         f"{sorted(set(FIGURE2_METHODS) | set(MINING_HEADS) | {'softmax', 'cosface'})}")
    st, p, f = np.broadcast_arrays(st, p, f)
    return STResult(st=np.array(st), p=np.array(p), f_tilde=np.array(f), correct=np.array(p) > 0.5)


def st_grid(method: str, *, n_c: int = 201, n_q: int = 101, c_range=(-1.0, 1.0), q_range=(-1.0, 1.0), **kw):
    """Heatmap grid for Fig. 2/9: returns ``(c, q, STResult)`` with ``STResult`` arrays of shape
    ``(n_q, n_c)`` (rows = q, the paper's y-axis). Keyword arguments go to :func:`scaling_term`."""
    c = np.linspace(*c_range, n_c)
    q = np.linspace(*q_range, n_q)
    return c, q, scaling_term(method, c[None, :], q[:, None], **kw)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def plot_figure2(methods=FIGURE2_METHODS, *, n_c: int = 201, n_q: int = 101, ncols: int = 5,
                 y_axis: str = "q", alphas: dict | None = None, **kw):
    """Figure 2 (and, with ``methods=FIGURE9_METHODS, y_axis="m_angle"``, Figure 9): heatmaps of ``st``
    over ``(c, q)``; the correctly classified region (``p > 0.5``) is painted blue as in the paper.

    ``alphas`` maps a method to its α (default: the registered head's, SMAFace* 2, NSMAFace* −2; the paper does
    not state the α of its panels). ``y_axis="m_angle"`` relabels the y-axis as ``m_angle = −m q``. Colour limits are
    the 1st/99th percentiles of the un-masked region (``st`` diverges at ``c = ±1`` for angular margins).
    """
    alphas = alphas or {}
    n = len(methods)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, min(ncols, n), width=3.2, height=2.6, squeeze=False)
    m = kw.get("m", M_DEFAULT)
    for ax, method in zip(axes.ravel(), methods, strict=False):  # spare axes are hidden below
        c, q, r = st_grid(method, n_c=n_c, n_q=n_q, alpha=alphas.get(method), **kw)
        y = q if y_axis == "q" else -m * q
        if y_axis != "q":  # -m q decreases with q: flip rows so that y increases upwards
            y, st, mask = y[::-1], r.st[::-1], r.correct[::-1]
        else:
            st, mask = r.st, r.correct
        heatmap(ax, c, y, st, mask=mask, title=method_title(method, alphas.get(method)),
                xlabel="cos θ_y", ylabel="ẑ (quality)" if y_axis == "q" else "m_angle")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig


def plot_figure3(*, p0_values=(0.4, 0.5, 0.6, 0.7, 0.8), alpha_values=(0.5, 1, 2, 4), n: int = 400):
    """Figure 3: ``st_SM-CosFace`` versus ``p`` — left α = 1 with ``p0`` swept, right p0 = 0.6 with α
    swept (eq. 8)."""
    p = np.linspace(1e-4, 1 - 1e-4, n)
    fig, (a1, a2) = new_figure(1, 2)
    for p0 in p0_values:
        a1.plot(p, st_sm_cosface(p, 1.0, p0), label=f"p0={p0:g}")
    for a in alpha_values:
        a2.plot(p, st_sm_cosface(p, a, P0_DEFAULT), label=f"α={a:g}")
    a1.set_title("st_SM-CosFace, α = 1", fontsize=9)
    a2.set_title("st_SM-CosFace, p0 = 0.6", fontsize=9)
    for ax in (a1, a2):
        ax.set_xlabel("p_y")
        ax.set_ylabel("st")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig


def plot_figure4(*, m: float = M_DEFAULT, alpha: float | None = None, p0: float = P0_DEFAULT, s: float = S_DEFAULT,
                 c_n: float = 0.0, K: float = 1.0, n: int = 801):
    """Figure 4: ``st_ArcFace(c)`` (m = 0.4) against ``st_SM-CosFace(c)`` (p0 = 0.6, α = 1, m = 0.4,
    s = 64, q = 0; ``p`` from :func:`probability`); ``alpha=None`` is the SM-CosFace head's α (1)."""
    alpha = default_alpha("sm-cosface") if alpha is None else alpha
    c = np.linspace(-0.99, 0.99, n)
    fig, ax = new_figure(1, 1, width=5)
    ax.plot(c, st_arcface(c, m), label=f"ArcFace (m={m:g})")
    r = scaling_term("sm-cosface", c, 0.0, s=s, m=m, alpha=alpha, p0=p0, c_n=c_n, K=K)
    ax.plot(c, r.st, label=f"SM-CosFace (α={alpha:g}, p0={p0:g})")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":", label="softmax / CosFace")
    ax.set_xlabel("cos θ_y")
    ax.set_ylabel("st")
    ax.set_ylim(-1, 4)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_figure5(*, alpha: float = 2.0, p0: float = P0_DEFAULT, s: float = S_DEFAULT, c_n: float = 0.0,
                 K: float = 1.0, n: int = 201):
    """Figure 5: ``st`` over ``(m, c) ∈ [−1, 1]²`` at q = 0 — ``st_ArcFace(c; m)`` (left; the sign of m
    flips its effect) and ``st_SM-CosFace`` with ``p`` from the logit ``c − m`` (right; m only moves the
    boundary). p0 = 0.6, α = 2, s = 64."""
    c = np.linspace(-0.99, 0.99, n)
    mm = np.linspace(-1, 1, n)
    C, M = np.meshgrid(c, mm)
    arc = st_arcface(C, M)
    p = probability(C - M, s=s, c_n=c_n, K=K)  # the CosFace logit c - m for every margin of the grid
    sm = st_sm_cosface(p, alpha, p0)
    fig, (a1, a2) = new_figure(1, 2, width=4.2)
    heatmap(a1, c, mm, arc, vmin=-3, vmax=3, cmap="coolwarm", title="st_ArcFace", xlabel="cos θ_y", ylabel="m")
    heatmap(a2, c, mm, sm, title=f"st_SM-CosFace (α={alpha:g}, p0={p0:g})", xlabel="cos θ_y", ylabel="m")
    return fig


def plot_st_curves(alphas, *, method: str = "nsmaface*", variants=("standard",), x: str = "c", m: float = M_DEFAULT,
                   s: float = S_DEFAULT, p0: float = P0_DEFAULT, c_n: float = 0.0, K: float = 1.0,
                   beta: float = _SMA["beta"], alpha0: float | None = _SMA["alpha0"], ax=None, n: int = 801,
                   title: str | None = None):
    """Curves of ``st`` at q = 0 (Figures 6–8, 10–12) for each α (and each mining variant).

    ``x="c"`` plots against ``cos θ_y`` (``p`` from :func:`probability`), ``x="p"`` against ``p``.
    At q = 0 the AdaFace factor is 1, so SMAFace* equals SM-CosFace* with ``m_add = m``.
    Note: §F says Fig. 6's "leftmost st even becomes positive" for α = −16; in the eq. 38 formula it
    becomes NEGATIVE there (``I*(0) = |7/9| (1 − 16·0.1457) < 0``) — the text's sign is not reproducible.
    """
    if ax is None:
        fig, ax = new_figure(1, 1, width=5)
    else:
        fig = ax.figure
    star = method.endswith("*")
    for a in alphas:
        for v in variants:
            if x == "c":
                grid = np.linspace(-0.99, 0.99, n)
                p = probability(target_logit(grid, 0.0, m=m, kind="sm-cosface"), s=s, c_n=c_n, K=K)
            elif x == "p":
                grid = p = np.linspace(1e-4, 1 - 1e-4, n)
            else:
                raise ValueError(f"plot_st_curves: x must be 'c' or 'p', got {x!r}")
            st = st_sm_cosface(p, a, p0, v, star, beta=beta, alpha0=alpha0)
            lab = f"α={a:g}" + ("" if v == "standard" else f" {v}")
            ax.plot(grid, st, label=lab)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("cos θ_y" if x == "c" else "p_y")
    ax.set_ylabel("st")
    ax.set_title(title or method_title(method), fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_figures_6_to_8(*, x: str = "c", **kw):
    """Figures 6–8 side by side: NSMAFace* for α ∈ {−1, −2, −4, −8, −16, −32} (Fig. 6), SMAFace* for
    α ∈ {1, 2, 4, 8, 16} (Fig. 7) and NSMAFace* / NSMAFace for α → −7 (Fig. 8)."""
    fig, axes = new_figure(1, 4, width=3.6)
    plot_st_curves((-1, -2, -4, -8, -16, -32), method="nsmaface*", x=x, ax=axes[0], title="Fig. 6: NSMAFace*", **kw)
    plot_st_curves((1, 2, 4, 8, 16), method="smaface*", x=x, ax=axes[1], title="Fig. 7: SMAFace*", **kw)
    near = (-6.0, -6.5, -6.9, -6.99)
    plot_st_curves(near, method="nsmaface*", x=x, ax=axes[2], title="Fig. 8: NSMAFace*, α → −7", **kw)
    plot_st_curves(near, method="nsmaface", x=x, ax=axes[3], title="Fig. 8: NSMAFace, α → −7", **kw)
    return fig


def plot_figure10(*, alphas=(2.0, -4.0), x: str = "c", **kw):
    """Figure 10: standard / strong / weak ``I*`` (eq. 38–39) for α = 2 (left) and α = −4 (right)."""
    fig, axes = new_figure(1, len(alphas), width=4.5)
    for ax, a in zip(np.atleast_1d(axes), alphas, strict=True):
        method = "smaface*" if a > 0 else "nsmaface*"
        plot_st_curves((a,), method=method, variants=("standard", "strong", "weak"), x=x, ax=ax,
                       title=f"{method_title(method)} α={a:g}: standard / strong / weak", **kw)
    return fig


def plot_figure11(*, betas=(1, 2, 4, 8), alpha0: float = 1.0, prefactor_alpha: float = 0.0, x: str = "c", **kw):
    """Figures 11/12 (identical at q = 0): the β-variant (eq. 40) with the weak exponent, ``α0 = 1``.

    Positive β gives the SM-CosFace*_weak family, negative β the "N" family. The prefactor
    ``|7/(7+α)|`` of eq. 40 names an α the caption never fixes; ``prefactor_alpha = 0`` (factor 1)."""
    fig, axes = new_figure(1, 2, width=4.5)
    for ax, sign, name in ((axes[0], 1, "SM-CosFace*_weak"), (axes[1], -1, "NSM-CosFace*_weak")):
        for b in betas:
            star = prefactor_alpha != 0.0
            m = kw.get("m", M_DEFAULT)
            grid = np.linspace(-0.99, 0.99, 801) if x == "c" else np.linspace(1e-4, 1 - 1e-4, 801)
            p = (probability(target_logit(grid, 0.0, m=m, kind="sm-cosface"), s=kw.get("s", S_DEFAULT),
                             c_n=kw.get("c_n", 0.0), K=kw.get("K", 1.0)) if x == "c" else grid)
            st = st_sm_cosface(p, prefactor_alpha, kw.get("p0", P0_DEFAULT), "weak", star,
                               beta=sign * b, alpha0=alpha0)
            ax.plot(grid, st, label=f"β={sign * b:g}")
        ax.set_title(f"{name} (α0={alpha0:g})", fontsize=9)
        ax.set_xlabel("cos θ_y" if x == "c" else "p_y")
        ax.set_ylabel("st")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig
