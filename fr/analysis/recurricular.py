"""ReCurricularFace analysis: Figure 1 (N versus T), decision-boundary crossings and eq. 2–6.

Source: "ReCurricularFace: Revisiting CurricularFace for Hard Sample Mining" (no code released) —
§1 (eq. 1, Figure 1), §3 (eq. 2–6), §4.2 ("E ≈ 80", ``I = 1.1 cos θ_j + 0.4 t``).

Figure-1 geometry: the target and one non-target centre are 90° apart and the sample lies in their
plane, so ``θ_j = π/2 − θ_y`` and ``c_j = sin θ_y``. The target logit is ``T(θ_y) = cos(θ_y + m)``; the
non-target logit is ``N(t, c_j) = c_j · I(t, c_j)``:

* ArcFace: ``I = 1`` → ``N = c_j``;
* CurricularFace: ``I = t + c_j``;
* ReCurricularFace: ``I = a c_j + b t`` with ``(a, b) = (1.1, 0.4)`` (§4.2).

The crossing ``T = N`` is the "actual decision boundary"; the ideal (ArcFace) one is
``θ_y* = (π/2 − m)/2``. The alternative reading ``N = a c_j + b t`` (dropping the ``c_j ·`` factor) is
available as ``rule="recurricular_alt"`` to show why it is rejected (it is always inside the ideal).

``T``, ``N``, the hard-negative mask and eq. 6 are the heads' functions (:mod:`fr.heads.curricularface`,
:func:`fr.heads.base.arc_target`) on float64 tensors; ``m``, ``E`` and ``(a, b)`` the registered heads'.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from ..heads import head_defaults
from ..heads import curricularface as _heads_curricular
from ..heads.base import arc_target
from ._plot import new_figure
from ._tensor import array, tensor

_REC = head_defaults("recurricularface")
M_DEFAULT = _REC["m"]
E_DEFAULT = _REC["E"]
#: ReCurricularFace coefficients used in the paper's experiments (§4.2): I = 1.1 c_j + 0.4 t.
PAPER_COEFFS = _heads_curricular.PAPER_COEFFICIENTS
RULES = ("arcface", "curricular", "recurricular", "recurricular_alt")


def target_T(theta_y, m: float = M_DEFAULT):
    """``T(θ_y) = cos(θ_y + m)`` (eq. 1): the CurricularFace head's target, :func:`fr.heads.base.arc_target`
    (its th/mm fallback only acts beyond ``θ_y = π − m``, outside Figure 1's ``[0, π/2]``)."""
    return array(arc_target(tensor(theta_y).cos(), m))


def negative_N(c_j, t: float, rule: str = "recurricular", *, coeffs=PAPER_COEFFS):
    """Non-target logit ``N(t, c_j)`` (÷ s) for ``rule`` in :data:`RULES` (see module docstring): the heads'
    :func:`~fr.heads.curricularface.curricular_negative` and :func:`~fr.heads.curricularface.recurricular_negative`.

    ``coeffs = (a, b)`` of ReCurricularFace (eq. 6 gives ``a = 1/cos((E−m)/2)``,
    ``b = (1 − (E−m)/2)(E+m)/2``; the paper uses 1.1, 0.4)."""
    c = tensor(c_j)
    a, b = coeffs
    if rule == "arcface":
        return array(c)
    if rule == "curricular":
        return array(_heads_curricular.curricular_negative(c, t))
    if rule == "recurricular":
        return array(_heads_curricular.recurricular_negative(c, t, a, b))
    if rule == "recurricular_alt":
        return array(a * c + b * t)
    raise ValueError(f"negative_N: unknown rule {rule!r}; expected one of {RULES}")


def figure1_curves(theta_y, t: float, rule: str = "recurricular", *, m: float = M_DEFAULT,
                   masked: bool = False, coeffs=PAPER_COEFFS):
    """``(T, N)`` along Figure 1's geometry (``c_j = sin θ_y``).

    ``masked=True`` applies CurricularFace's hard-negative mask (the modified ``N`` only where
    ``c_j > cos(θ_y + m)``, :func:`fr.heads.curricularface.curricular_hard_threshold`; plain ``c_j``
    elsewhere), as the official code does; the figure applies ``N`` everywhere (``masked=False``)."""
    theta_y = np.asarray(theta_y, dtype=float)
    T = target_T(theta_y, m)
    c_j = np.sin(theta_y)
    N = negative_N(c_j, t, rule, coeffs=coeffs)
    if masked:
        threshold = array(_heads_curricular.curricular_hard_threshold(tensor(theta_y).cos(), m))
        N = np.where(c_j > threshold, N, c_j)
    return T, N


def crossing_angle(t: float, rule: str = "recurricular", *, m: float = M_DEFAULT, masked: bool = False,
                   coeffs=PAPER_COEFFS, tol: float = 1e-12, degrees: bool = True) -> float:
    """The angle ``θ_y ∈ [0, π/2]`` where ``T = N`` in Figure 1 (:func:`scipy.optimize.brentq` on ``T − N``).

    ``T − N`` is positive at θ_y = 0 and negative at π/2 for every rule and ``t ∈ [0, 1]`` (checked;
    a ``ValueError`` names the rule otherwise). With ``masked=True`` the difference is discontinuous and
    the bracketing search returns the switch point where the sign changes.
    Check values (degrees, m = 0.5): CurricularFace t = 0/.3/.5/.8/1 → 38.53/33.42/30.54/26.88/24.80;
    ReCurricularFace → 37.41/35.37/34.10/32.31/31.20.
    """
    def g(th):
        T, N = figure1_curves(np.array([th]), t, rule, m=m, masked=masked, coeffs=coeffs)
        return float(T[0] - N[0])

    lo, hi = 0.0, math.pi / 2
    glo, ghi = g(lo), g(hi)
    if not (glo > 0 > ghi):
        raise ValueError(f"crossing_angle: T − N does not change sign on [0, π/2] for rule={rule!r}, "
                         f"t={t}, m={m} (values {glo:.4g}, {ghi:.4g})")
    th = brentq(g, lo, hi, xtol=tol, rtol=4 * np.finfo(float).eps)
    return math.degrees(th) if degrees else th


def ideal_crossing(m: float = M_DEFAULT, *, degrees: bool = True) -> float:
    """Ideal (ArcFace) boundary of Figure 1: ``(π/2 − m)/2`` (30.68° for m = 0.5)."""
    th = (math.pi / 2 - m) / 2
    return math.degrees(th) if degrees else th


def crossing_table(ts=(0.0, 0.3, 0.5, 0.8, 1.0), rules=("curricular", "recurricular"), **kw) -> dict:
    """``{rule: [crossing in degrees for each t]}`` (keyword arguments go to :func:`crossing_angle`)."""
    return {r: [crossing_angle(t, r, **kw) for t in ts] for r in rules}


# ----------------------------------------------------------------------------------------------
# Eq. 2: expected minimum angle between n random class centres on S^{d-1}
# ----------------------------------------------------------------------------------------------
def expected_min_angle(n: int, d: int, *, degrees: bool = False) -> float:
    """Eq. 2: ``E[θ] ≈ n^{−2/(d−1)} Γ(1 + 1/(d−1)) (Γ(d/2) / (2√π (d−1) Γ((d−1)/2)))^{−1/(d−1)}``.

    The asymptotic (n → ∞, d fixed) mean of the minimum pairwise angle of n i.i.d. uniform points on
    ``S^{d−1}`` (the Weibull limit of Cai, Fan & Jiang 2013). Evaluated in log space (``math.lgamma``) so
    that d = 512 does not overflow. Check values (d = 512): n = 10,572 → 55.71°, 85,742 → 55.25°,
    205,990 → 55.06°; d = 128, n = 10,572 → 50.89°. The paper does not use this value (it takes
    E ≈ 80° "from ArcFace").
    """
    if n < 2 or d < 2:
        raise ValueError(f"expected_min_angle: need n >= 2 points and dimension d >= 2, got n={n}, d={d}")
    k = d - 1
    log_c = math.lgamma(d / 2) - math.log(2 * math.sqrt(math.pi) * k) - math.lgamma(k / 2)
    log_e = -2.0 / k * math.log(n) + math.lgamma(1 + 1.0 / k) - log_c / k
    e = math.exp(log_e)
    return math.degrees(e) if degrees else e


def min_angle_of_points(x) -> float:
    """Minimum pairwise angle (radians) between the rows of ``x`` (normalised inside).

    The angle of the closest pair is recomputed from the chord ``2 asin(|x_i − x_j|/2)``, which keeps
    precision for tiny angles where ``arccos`` of a dot product near 1 does not."""
    x = np.asarray(x, dtype=float)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    # For thin matrices (small d) a threaded BLAS call costs more in thread start-up than it computes
    # (20x slower on a busy 2-core machine); einsum without optimisation runs a single-threaded loop.
    g = np.einsum("ik,jk->ij", x, x) if x.shape[1] <= 32 else x @ x.T
    np.fill_diagonal(g, -np.inf)
    i, j = np.unravel_index(np.argmax(g), g.shape)
    chord = np.linalg.norm(x[i] - x[j])
    return 2.0 * math.asin(min(1.0, chord / 2.0))


def mc_min_angle(n: int, d: int, *, trials: int = 200, seed: int = 0):
    """Monte-Carlo estimate of ``E[min pairwise angle]`` of ``n`` uniform points on ``S^{d−1}``.

    Returns ``(mean, standard_error)`` in radians over ``trials`` independent draws (Gaussian
    directions, one ``numpy.random.default_rng(seed)`` stream). Used to check eq. 2 where sampling is
    cheap (small n, small d): with 200–300 trials, (n, d) = (400, 4) agrees with
    :func:`expected_min_angle` to −3.5% … +2.8% and (200, 8) to +1.1% … +2.7% over seeds 1–3 (standard
    errors 2.5% and 1.0%); eq. 2 is asymptotic, so a small finite-n bias remains."""
    rng = np.random.default_rng(seed)
    vals = np.array([min_angle_of_points(rng.standard_normal((n, d))) for _ in range(trials)])
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(trials))


# ----------------------------------------------------------------------------------------------
# Eq. 3–6 coefficients
# ----------------------------------------------------------------------------------------------
def recurricular_coefficients(E: float = E_DEFAULT, m: float = M_DEFAULT, *, degrees: bool = True):
    """``(a, α)`` of eq. 6: ``a = 1/cos((E−m)/2)`` (eq. 3) and ``α = (1 − (E−m)/2)(E+m)/2`` (eq. 5), as the
    ReCurricularFace head computes them (:func:`fr.heads.curricularface.recurricular_coefficients`).

    ``E`` is the expected minimum inter-centre angle (degrees by default; ``m`` always in radians).
    E = 80° → (1.1096, 0.5232): the paper rounds a to 1.1 but uses α = 0.4 (inconsistent with eq. 5);
    E = 55.71° (eq. 2, d = 512, CASIA) → (1.0286, 0.5623)."""
    return _heads_curricular.recurricular_coefficients(E if degrees else math.degrees(E), m)


def eq4_alpha_exact(E: float = E_DEFAULT, m: float = M_DEFAULT, *, t: float = 1.0, degrees: bool = True) -> float:
    """α solving eq. 4 exactly at ``θ_j = (E+m)/2``: ``α t = cos((E+m)/2) (1 − 1/cos((E−m)/2))``.
    For E = 80°, t = 1 this gives −0.064 (eq. 5's "≈" is not an approximation of eq. 4)."""
    e = math.radians(E) if degrees else E
    cp = math.cos((e + m) / 2)
    return (cp - cp / math.cos((e - m) / 2)) / t


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------
def plot_figure1(ts=(0.0, 0.3, 0.5, 0.8, 1.0), *, m: float = M_DEFAULT, rules=("curricular", "recurricular"),
                 masked: bool = False, n: int = 500):
    """Figure 1: ``T(θ_y)`` against ``N(t, sin θ_y)`` for each ``t``, one panel per rule, with the
    crossings marked and the ideal boundary ``(π/2 − m)/2`` as a vertical line."""
    theta = np.linspace(0, math.pi / 2, n)
    deg = np.degrees(theta)
    fig, axes = new_figure(1, len(rules), width=4.6, squeeze=False)
    for ax, rule in zip(axes[0], rules, strict=True):
        ax.plot(deg, target_T(theta, m), color="k", lw=2, label="T = cos(θ_y + m)")
        ax.plot(deg, np.sin(theta), color="grey", ls="--", label="ArcFace N = c_j")
        for t in ts:
            _, N = figure1_curves(theta, t, rule, m=m, masked=masked)
            (line,) = ax.plot(deg, N, label=f"t={t:g}")
            x = crossing_angle(t, rule, m=m, masked=masked)
            ax.plot([x], [float(target_T(math.radians(x), m))], "o", color=line.get_color(), ms=4)
        ax.axvline(ideal_crossing(m), color="gold", lw=2, label=f"ideal {ideal_crossing(m):.2f}°")
        a, b = PAPER_COEFFS
        ax.set_title({"curricular": "CurricularFace", "recurricular": f"ReCurricularFace ({a:g}, {b:g})",
                      "recurricular_alt": f"rejected reading N = {a:g}c + {b:g}t", "arcface": "ArcFace"}[rule],
                     fontsize=9)
        ax.set_xlabel("θ_y (degrees), c_j = sin θ_y")
        ax.set_ylabel("logit / s")
        ax.set_ylim(-0.6, 2.1)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    return fig


def plot_eq2(ns=None, *, dims=(128, 256, 512), mc=((400, 4), (300, 6)), trials: int = 100):
    """Eq. 2 versus the number of classes for several dimensions (left), and, on the right, eq. 2
    against Monte-Carlo estimates at small ``(n, d)`` (error bars = 2 standard errors)."""
    ns = np.unique(np.logspace(2, 6, 60).astype(int)) if ns is None else np.asarray(ns)
    fig, (a1, a2) = new_figure(1, 2, width=4.4)
    for d in dims:
        a1.plot(ns, [expected_min_angle(int(k), d, degrees=True) for k in ns], label=f"d={d}")
    for name, k in (("CASIA", 10572), ("MS1MV2", 85742), ("WF4M", 205990)):
        a1.axvline(k, color="grey", lw=0.6, ls=":")
        a1.text(k, a1.get_ylim()[0], name, rotation=90, fontsize=6, va="bottom")
    a1.axhline(80, color="r", lw=0.8, ls="--", label="paper's E ≈ 80°")
    a1.set_xscale("log")
    a1.set_xlabel("number of classes n")
    a1.set_ylabel("E[min angle] (degrees)")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    for n, d in mc:
        grid = np.unique(np.linspace(max(10, n // 8), n, 6).astype(int))
        est = [mc_min_angle(int(k), d, trials=trials, seed=int(k)) for k in grid]
        mean = np.degrees([e[0] for e in est])
        err = 2 * np.degrees([e[1] for e in est])
        (line,) = a2.plot(grid, [expected_min_angle(int(k), d, degrees=True) for k in grid], label=f"eq. 2, d={d}")
        a2.errorbar(grid, mean, yerr=err, fmt="o", ms=3, color=line.get_color(), label=f"Monte Carlo, d={d}")
    a2.set_xlabel("n")
    a2.set_ylabel("min angle (degrees)")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    return fig
