"""Check values of the analytic figures (fr.analysis) and smoke tests of the plotting functions."""
import io
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from fr.analysis import adaface, elastic, harmonic, magface, recurricular, sface, smaface, sphereface
from fr.heads import create_rule
from fr.heads.base import ShardContext
from fr.heads.magface import magface_lambda_bound
from fr.heads.sface import r_intra


def close(actual, expected, tol):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), atol=tol, rtol=0)


# ----------------------------------------------------------------------------------------------
# 4.1 SMAFace
# ----------------------------------------------------------------------------------------------
def test_sigmoid_offset():
    close(smaface.sigmoid(0.6) - 0.5, 0.14566, 5e-6)


@pytest.mark.parametrize("alpha, I_vals, Istar_vals", [
    (1.0, (1.1457, 1.0, 0.9013), (1.0024, 0.7886)),
    (2.0, (1.2913, 1.0, 0.8026), (1.0044, 0.6243)),
    (-2.0, (0.7087, 1.0, 1.1974), (0.9922, 1.6763)),
])
def test_mining_weight_tables(alpha, I_vals, Istar_vals):
    close(smaface.mining_weight(np.array([0.0, 0.6, 1.0]), alpha), I_vals, 5e-5)
    close(smaface.mining_weight(np.array([0.0, 1.0]), alpha, star=True), Istar_vals, 5e-5)


def test_st_tables():
    p = np.array([0.1, 0.5, 0.9, 0.99])
    close(smaface.st_sm_cosface(p, 1.0), (1.1766, 1.1114, 0.9487, 0.9061), 5e-5)
    close(smaface.st_sm_cosface(p, 2.0, star=True), (1.0524, 0.9511, 0.6980, 0.6317), 5e-5)
    close(smaface.st_sm_cosface(p, -2.0, star=True), (0.9056, 1.0881, 1.5435, 1.6629), 5e-5)
    close(smaface.st_arcface(np.array([-0.9, 0.0, 0.5, 0.9]), 0.4), (0.1170, 0.9211, 1.1459, 1.7251), 5e-5)
    close(smaface.st_focal(np.array([0.1, 0.5, 0.9]), 2.0), (1.2245, 0.5966, 0.0290), 5e-5)


def test_smaface_boundary_points():
    q = np.array([-1.0, 0.0, 1.0])
    close(smaface.decision_boundary(q), (0.389, 0.4, 0.503), 5e-4)
    # SM-CosFace with c_n = 0 is the line c = m (q + 1); with c_n = 0.4 it passes (0.4, -1).
    close(smaface.decision_boundary(q, kind="sm-cosface"), (0.0, 0.4, 0.8), 1e-12)
    close(smaface.decision_boundary(np.array([-1.0]), kind="sm-cosface", c_n=0.4), (0.4,), 1e-12)
    # K = C - 1 shifts the boundary by ln(K)/s (0.177 for MS1MV2).
    close(smaface.decision_boundary(np.array([0.0]), K=85741) - 0.4, (0.177,), 5e-4)
    # The boundary is where the model probability is one half.
    c_b = smaface.decision_boundary(np.linspace(-1, 1, 7))
    r = smaface.scaling_term("smaface", c_b, np.linspace(-1, 1, 7))
    close(r.p, np.full(7, 0.5), 1e-9)


@pytest.mark.parametrize("variant", ["standard", "weak", "strong", "beta"])
@pytest.mark.parametrize("alpha, star, beta, alpha0", [(1.0, False, 1.0, None), (-3.0, True, 1.0, None),
                                                      (2.0, True, -4.0, 1.0)])
def test_mining_weight_grad_matches_finite_difference(variant, alpha, star, beta, alpha0):
    p = np.array([0.05, 0.3, 0.55, 0.65, 0.9])  # away from the kink at p0 = 0.6
    h = 1e-6
    kw = dict(alpha=alpha, variant=variant, star=star, beta=beta, alpha0=alpha0)
    fd = (smaface.mining_weight(p + h, **kw) - smaface.mining_weight(p - h, **kw)) / (2 * h)
    close(smaface.mining_weight_grad(p, **kw), fd, 1e-7)


def test_weak_strong_flat_sides():
    p = np.array([0.1, 0.3, 0.8, 0.95])
    weak = smaface.mining_weight(p, 2.0, variant="weak")
    strong = smaface.mining_weight(p, 2.0, variant="strong")
    std = smaface.mining_weight(p, 2.0)
    close(weak[2:], 1.0, 1e-12)  # easy side flat
    close(weak[:2], std[:2], 1e-12)
    close(strong[:2], 1.0, 1e-12)  # hard side flat
    close(strong[2:], std[2:], 1e-12)
    # eq. 40 (beta variant): amplitude alpha0 = 1, slope beta; alpha only in the star prefactor
    close(smaface.mining_weight(p, 3.0, variant="beta", beta=2.0),
          1 + (1 / (1 + np.exp(2.0 * (p - 0.6))) - 0.5), 1e-12)
    with pytest.raises(ValueError, match="alpha = -7"):
        smaface.mining_weight(p, -7.0, star=True)


def _autograd_scaling(method, c, q, *, s=64.0, m=0.4, alpha=1.0, p0=0.6, gamma=2.0, star=False):
    """dL/dc of the paper's per-sample loss (two-class model, competitor at cosine 0), divided by (p-1)s."""
    c_t = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    theta = torch.acos(c_t)
    if method == "sm-cosface":
        f = c_t - (m * q + m)
    elif method == "smaface":
        f = torch.cos(theta - m * q) - (m * q + m)
    else:  # focal on the plain logit
        f = c_t
    p = torch.sigmoid(s * f)
    if method == "focal":
        w = (1 - p) ** gamma
    else:
        w = 1 + alpha * (torch.sigmoid(p0 - p) - 0.5)
        if star:
            w = w * abs(7 / (7 + alpha))
    loss = -(w * torch.log(p)).sum()
    (g,) = torch.autograd.grad(loss, c_t)
    return (g / ((p - 1) * s)).detach().numpy()


@pytest.mark.parametrize("method, q, alpha, star", [("sm-cosface", 0.0, 1.0, False), ("smaface", 0.5, 2.0, True),
                                                   ("smaface", -0.7, -3.0, True), ("focal", 0.0, None, False)])
def test_scaling_terms_equal_autograd_gradient(method, q, alpha, star):
    """eq. 7-9/32: st is the exact gradient of -I(p) log p divided by (p-1)s; also confirms the sign of the
    focal term (eq. 37 misprints it)."""
    # across the boundary (c = 0 for the plain logit, 0.2..0.7 with margins), where 0 < p < 1
    c = np.linspace(-0.05, 0.05, 11) if method == "focal" else np.linspace(0.2, 0.7, 11)
    auto = _autograd_scaling(method, c, q, alpha=alpha, star=star)
    if method == "focal":
        ours = smaface.scaling_term("f-softmax", c, q).st
    else:
        name = method + ("*" if star else "")
        ours = smaface.scaling_term(name, c, q, alpha=alpha).st
    close(ours, auto, 1e-8)


def test_heatmap_grid_shapes_and_region():
    c, q, r = smaface.st_grid("smaface*", n_c=41, n_q=21)
    assert r.st.shape == r.p.shape == r.correct.shape == (21, 41)
    # correctly classified region is on the right of the boundary in every row
    bnd = smaface.decision_boundary(q)
    for i in range(len(q)):
        close(r.correct[i], c > bnd[i], 0)
    # at q = 0 the AdaFace factor is 1: SMAFace* equals SM-CosFace* (Fig. 7 note)
    r0 = smaface.scaling_term("smaface*", c, 0.0, alpha=2.0).st
    r1 = smaface.scaling_term("sm-cosface*", c, 0.0, alpha=2.0).st
    close(r0, r1, 1e-12)
    # HM-Softmax ignores the easy side completely (the paper's criticism)
    hm = smaface.scaling_term("hm-softmax", c, 0.0)
    assert np.all(hm.st[hm.p > 0.5] == 0) and np.all(hm.st[hm.p < 0.5] == 1)


# ----------------------------------------------------------------------------------------------
# 4.2 ReCurricularFace
# ----------------------------------------------------------------------------------------------
TS = (0.0, 0.3, 0.5, 0.8, 1.0)


def test_recurricular_crossing_tables():
    table = recurricular.crossing_table(TS)
    close(table["curricular"], (38.53, 33.42, 30.54, 26.88, 24.80), 6e-3)
    close(table["recurricular"], (37.41, 35.37, 34.10, 32.31, 31.20), 6e-3)
    close(recurricular.ideal_crossing(0.5), 30.68, 5e-3)
    alt = recurricular.crossing_table((0.0, 1.0), rules=("recurricular_alt",))["recurricular_alt"]
    close(alt, (29.06, 16.27), 6e-3)
    # with the CurricularFace mask the crossing sticks to the switch point (= ideal) for t >= 0.5
    masked = recurricular.crossing_table((0.5, 0.8, 1.0), rules=("curricular",), masked=True)["curricular"]
    close(masked, [recurricular.ideal_crossing(0.5)] * 3, 1e-6)
    # at the crossing T equals N
    th = math.radians(table["recurricular"][2])
    T, N = recurricular.figure1_curves(np.array([th]), 0.5, "recurricular")
    close(T, N, 1e-10)


def test_eq2_values_and_coefficients():
    e = recurricular.expected_min_angle
    close(e(10572, 512), 0.9723, 5e-5)
    close([e(10572, 512, degrees=True), e(85742, 512, degrees=True), e(205990, 512, degrees=True)],
          (55.71, 55.25, 55.06), 6e-3)
    close(e(10572, 128, degrees=True), 50.89, 6e-3)
    close(recurricular.recurricular_coefficients(80.0), (1.1096, 0.5232), 5e-5)
    # 1.0286 / 0.5623 for E = 55.71 deg, rounded; the exact value of a is 1.02855 (a rounding of the 5th digit)
    close(recurricular.recurricular_coefficients(55.71), (1.0286, 0.5623), 1e-4)
    close(recurricular.eq4_alpha_exact(80.0), -0.064, 5e-4)
    with pytest.raises(ValueError, match="n >= 2"):
        e(1, 512)


@pytest.mark.parametrize("n, d, trials", [(400, 4, 200), (200, 8, 300)])
def test_eq2_against_monte_carlo(n, d, trials):
    """Eq. 2 is asymptotic (n -> inf); at these small (n, d) the Monte-Carlo mean of the minimum pairwise
    angle agrees within 6% (measured over seeds 1-3: -3.5% .. +2.8% for (400, 4), +1.1% .. +2.7% for
    (200, 8) with 300 trials; standard errors 2.5% and 1.0%)."""
    mean, se = recurricular.mc_min_angle(n, d, trials=trials, seed=1)
    ref = recurricular.expected_min_angle(n, d)
    assert abs(mean / ref - 1) < 0.06, (mean, se, ref)
    assert se / mean < 0.03  # the estimate itself is precise enough for the 6% statement


def test_min_angle_of_points_exact():
    pts = np.array([[1.0, 0, 0], [math.cos(1e-4), math.sin(1e-4), 0], [0, 0, 1.0]])
    close(recurricular.min_angle_of_points(pts), 1e-4, 1e-12)


# ----------------------------------------------------------------------------------------------
# 4.3 - 4.8
# ----------------------------------------------------------------------------------------------
def test_sface_rescale():
    for a, b in sface.SFACE_SETTINGS.values():
        close(sface.r_intra(a, a=a), 32.0, 1e-12)
        close(sface.r_inter(b, b=b), 32.0, 1e-12)
    close(sface.r_intra(np.array([0.85, 0.75]), a=0.8), (62.85, 1.15), 5e-3)
    close(sface.r_inter(np.array([1.18, 1.28]), b=1.23), (62.85, 1.15), 5e-3)
    th = np.linspace(0.1, 3.0, 7)
    close(sface.intra_grad_magnitude(th), sface.r_intra(th) * np.sin(th), 1e-12)


def test_elastic_values_and_plus_assignment():
    close(elastic.tail_probability(2.0), 0.0455, 5e-5)
    m = np.linspace(0.0, 1.0, 20001)
    close(np.trapezoid(elastic.margin_pdf(m, 0.5, 0.05), m), 1.0, 1e-6)
    close(elastic.boundary_arc(np.array([0.3]), 0.5), (0.8,), 1e-12)
    close(np.cos(elastic.boundary_cos(np.array([0.3]), 0.35)), (math.cos(0.3) - 0.35,), 1e-12)

    c_y, intended, official = elastic.sample_plus_batch(256, seed=3)
    assert elastic.spearman(c_y, intended) == pytest.approx(-1.0)
    assert abs(elastic.spearman(c_y, official)) < 0.2
    assert np.allclose(np.sort(intended), np.sort(official))  # same multiset of margins

    # 'official' mode equals the released code's torch ops
    rng = np.random.default_rng(0)
    cy, mg = rng.uniform(-1, 1, 64), rng.normal(0.5, 0.02, 64)
    margin_sorted, _ = torch.sort(torch.tensor(mg), dim=0)
    _, idx = torch.sort(torch.tensor(cy), descending=True)
    m_hot = torch.zeros(64, 3, dtype=torch.float64)
    m_hot.scatter_(1, torch.zeros(64, 1, dtype=torch.long), margin_sorted[idx][:, None])
    close(elastic.plus_assignment(cy, mg, "official"), m_hot[:, 0].numpy(), 0)
    # both readings coincide when c_y is already in descending order (idx is the identity)
    cs = np.sort(cy)[::-1]
    close(elastic.plus_assignment(cs, mg, "official"), elastic.plus_assignment(cs, mg, "intended"), 0)


def test_magface_bound_and_optimal_norm():
    close(magface.lambda_bound(), 22.59, 5e-3)
    close(magface.lambda_bound(**magface.MAGCOSFACE_DEFAULTS), 29.04, 5e-3)
    close(magface.margin(np.array([0.0, 10.0, 60.0, 110.0, 200.0])), (0.45, 0.45, 0.625, 0.8, 0.8), 1e-12)
    a = np.linspace(10, 110, 100001)
    close(a[np.argmin(magface.regulariser(a))], 110.0, 1e-9)
    # bisection agrees with a brute-force minimisation of CE + lambda g
    for cy in (0.1, 0.5, 0.75, 0.85):
        brute = a[np.argmin(magface.objective(a, cy, lam=35.0))]
        close(magface.optimal_norm(np.array([cy]), lam=35.0), (brute,), 2e-3)
    # MagFace's monotonicity (theta_y + m(a) <= pi/2, i.e. c_y >= sin(u_m))
    cy = np.linspace(math.sin(0.8), 0.99, 30)
    assert np.all(np.diff(magface.optimal_norm(cy, lam=35.0)) >= -1e-6)


def test_adaface_margins_and_fraction():
    ga, gd = adaface.margins(np.array([-1.0, 0.0, 1.0]), 0.4)
    close(ga, (0.4, 0.0, -0.4), 1e-12)
    close(gd, (0.0, 0.4, 0.8), 1e-12)
    assert round(100 * adaface.unclipped_fraction(0.333), 1) == 99.7
    close(adaface.z_hat(np.array([20.0, 80.0, -50.0]), 20.0, 3.0, h=0.333), (0.0, 1.0, -1.0), 1e-12)


def test_sphereface_psi_and_lambda():
    th = np.linspace(0, math.pi, 2001)
    ps = sphereface.psi(th, 4)
    close(ps[[0, -1]], (1.0, -7.0), 1e-12)
    assert np.all(np.diff(ps) < 0)
    k = np.arange(1, 4) * math.pi / 4  # continuous at the segment joints
    close(sphereface.psi(k - 1e-9), sphereface.psi(k + 1e-9), 1e-6)
    close(sphereface.iteration_reaching_min(), 1658.33, 5e-3)
    lam = sphereface.lambda_schedule(np.array([0, 1658, 1659, 10000]))
    assert lam[0] == 1000 and lam[1] > 5 and lam[2] == 5 and lam[3] == 5


def test_harmonic_probabilities():
    c = np.linspace(-0.9, 0.95, 9)
    for n in (1, 4, 16):
        close(harmonic.harmonic_prob(c, n=n, scale=7.3), harmonic.harmonic_prob(c, n=n), 1e-12)
    close(harmonic.harmonic_prob(np.array([0.0]), n=4, num_classes=10), (0.1,), 1e-12)
    close(harmonic.harmonic_prob(np.array([0.5]), n=1, eps=0.0), (2 / 3,), 1e-12)
    close(harmonic.softmax_prob(np.array([0.0]), num_classes=2), (0.5,), 1e-12)


# ----------------------------------------------------------------------------------------------
# The figures are the heads': analysis values against the registered rules' forward and gradient
# ----------------------------------------------------------------------------------------------
def _two_class(c, other=0.0):
    """One row per target cosine ``c``: cosines ``[c, other]``, label 0 (the analyses' two-class toy)."""
    c = torch.as_tensor(np.asarray(c, dtype=float))
    cos = torch.stack([c, torch.full_like(c, other)], 1)
    labels = torch.zeros(len(c), dtype=torch.long)
    return cos, ShardContext(labels, labels.clone())  # one process: local labels are the global ones


@pytest.mark.parametrize("method, head", [("smaface*", "smaface_star"), ("nsmaface*", "nsmaface_star"),
                                          ("sm-cosface", "sm_cosface"), ("smaface", "smaface")])
@pytest.mark.parametrize("q", [-0.7, 0.0, 0.5])
def test_smaface_figures_are_the_heads_logit_and_gradient(method, head, q):
    """f̃ is the registered head's target logit / s and st its per-row gradient, dL/dc_y = s (p - 1) st (eq. 7),
    with the head's default alpha, p0 and s (two classes, the competitor at cosine 0, i.e. c_n = 0, K = 1)."""
    c = np.linspace(0.2, 0.7, 11)
    rule = create_rule(head).double().eval()
    cos, ctx = _two_class(c)
    cos.requires_grad_(True)
    logits = rule.margin_logits(cos, ctx, torch.full((len(c),), q, dtype=torch.float64))
    loss = rule.loss(logits, cos, ctx, torch.ones(len(c), dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss, cos)
    p = torch.softmax(logits.detach(), 1)[:, 0].numpy()
    r = smaface.scaling_term(method, c, q)
    close(r.f_tilde, logits.detach()[:, 0].numpy() / rule.s, 1e-12)
    close(r.p, p, 1e-12)
    np.testing.assert_allclose(rule.s * (p - 1) * r.st, grad[:, 0].numpy() * len(c), rtol=1e-9, atol=1e-12)


def test_magface_objective_is_the_heads_loss():
    c, a = np.linspace(-0.3, 0.9, 9), np.linspace(12.0, 105.0, 9)
    rule = create_rule("magface").double().eval()
    cos, ctx = _two_class(c)
    for i in range(len(c)):
        row = ShardContext(ctx.labels[i:i + 1], ctx.local_labels[i:i + 1])
        norms = torch.tensor([a[i]], dtype=torch.float64)
        loss = rule(cos[i:i + 1], row, norms).loss
        # the head's lambda_g, s and easy margin
        np.testing.assert_allclose(magface.objective(a[i], c[i]), float(loss), rtol=1e-12)
    close(magface.lambda_bound(), magface_lambda_bound(), 0)


def test_other_analyses_are_the_heads():
    c = np.linspace(-0.9, 0.95, 9)
    cos, ctx = _two_class(c, other=0.2)
    for n in (1.0, 4.0):
        out = create_rule("harmonic", n=n).double()(cos, ctx, torch.ones(len(c), dtype=torch.float64))
        p = torch.softmax(out.logits, 1)[:, 0].numpy()
        close(harmonic.harmonic_prob(c, n=n, c_other=0.2), p, 1e-12)
    rule = create_rule("sphereface")
    its = np.array([0, 1, 10, 1658, 1659, 5000])
    close(sphereface.lambda_schedule(its), rule.lambda_at(torch.as_tensor(its)).numpy(), 0)
    rec = create_rule("recurricularface").double()
    t = torch.tensor(0.3, dtype=torch.float64)
    close(recurricular.negative_N(c, 0.3), rec.negative_logit(torch.as_tensor(c), t).numpy(), 0)
    sf = create_rule("sface")
    th = np.linspace(0.1, 3.0, 7)
    close(sface.r_intra(th), r_intra(torch.as_tensor(th), sf.s, sf.k, sf.a).numpy(), 0)


# ----------------------------------------------------------------------------------------------
# Plot smoke tests
# ----------------------------------------------------------------------------------------------
PLOTS = [
    lambda: smaface.plot_figure2(n_c=21, n_q=11),
    lambda: smaface.plot_figure2(smaface.FIGURE9_METHODS, n_c=21, n_q=11, ncols=3, y_axis="m_angle"),
    lambda: smaface.plot_figure3(n=50),
    lambda: smaface.plot_figure4(n=50),
    lambda: smaface.plot_figure5(n=21),
    lambda: smaface.plot_figures_6_to_8(n=50),
    lambda: smaface.plot_figure10(n=50),
    lambda: smaface.plot_figure11(),
    lambda: recurricular.plot_figure1(n=50),
    lambda: recurricular.plot_eq2(np.array([100, 1000, 10000]), mc=((100, 4),), trials=5),
    lambda: sface.plot_rescale(n=50),
    lambda: elastic.plot_margin_pdfs(n=50),
    lambda: elastic.plot_decision_boundaries(n=50),
    lambda: elastic.plot_plus_assignment(64),
    lambda: magface.plot_magface(n=30),
    lambda: adaface.plot_margin_map(n=21),
    lambda: sphereface.plot_sphereface(n=50, iters=100),
    lambda: harmonic.plot_probabilities(m=50),
]


@pytest.mark.parametrize("i", range(len(PLOTS)))
def test_plot_returns_figure(i):
    fig = PLOTS[i]()
    assert isinstance(fig, Figure) and fig.axes
    # every visible panel (colour bars aside) carries data; rendering is left out to keep the suite fast
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert panels and all(ax.lines or ax.images or ax.collections for ax in panels)


def test_one_figure_renders():
    fig = smaface.plot_figure2(("arcface", "smaface*"), n_c=11, n_q=7, ncols=2)
    fig.savefig(io.BytesIO(), format="png", dpi=20)
