"""Oracles and identities for ElasticFace (Arc, Cos, Arc+, Cos+), SFace and the cosine harmonic loss.

Each oracle is a naive per-sample float64 implementation written from the formulas in the papers (and, for the
ElasticFace+ assignment, from the official code's indexing), compared with the vectorised rule by
``oracle_utils.check_rule`` in float64 and float32.
"""
from __future__ import annotations

import math

import pytest
import torch

import fr
from fr.heads import create_rule
from fr.heads.elasticface import assign_plus_margins, rank_correlation
from fr.heads.sface import r_inter, r_intra
from oracle_utils import check_rule, make_ctx, random_case, softmax_ce

DTYPES = [torch.float64, torch.float32]
ELASTIC = {  # name -> (kind, plus, paper-config sigma, mean margin)
    "elastic_arc": ("arc", False, 0.05, 0.5),
    "elastic_arc_plus": ("arc", True, 0.0175, 0.5),
    "elastic_cos": ("cos", False, 0.05, 0.35),
    "elastic_cos_plus": ("cos", True, 0.02, 0.35),
}


# --- ElasticFace -------------------------------------------------------------------------------------

def naive_plus_assignment(margins: list[float], cos_y: list[float], mode: str) -> list[float]:
    """Per-row margin after the ElasticFace+ assignment, by plain Python sorting."""
    sorted_m = sorted(margins)
    by_cos_desc = sorted(range(len(cos_y)), key=lambda i: -cos_y[i])  # by_cos_desc[k]: row of k-th largest
    if mode == "official":  # fdbtrs/ElasticFace: row i receives margin[idx[i]]
        return [sorted_m[by_cos_desc[i]] for i in range(len(cos_y))]
    out = [0.0] * len(cos_y)
    for k, row in enumerate(by_cos_desc):  # the paper: k-th smallest margin to the k-th largest cos_y
        out[row] = sorted_m[k]
    return out


def oracle_elastic(kind, s, cos, labels, margins, plus_mode=None, th_mm=False):
    """Oracle for one batch: ``margins`` are the raw draws of the valid rows, in row order."""
    valid = [i for i in range(len(labels)) if int(labels[i]) >= 0]
    m_valid = [float(v) for v in margins]
    if plus_mode is not None:
        cos_y = [float(cos[i, int(labels[i])]) for i in valid]
        m_valid = naive_plus_assignment(m_valid, cos_y, plus_mode)
    row_margins = iter(m_valid)

    def target(cy, m):
        if kind == "cos":
            return cy - m
        if th_mm and cy <= math.cos(math.pi - m):
            return cy - math.sin(math.pi - m) * m
        return torch.cos(torch.acos(cy) + m)  # no fallback: the official ElasticFace target

    def f(c, y, a):
        m = next(row_margins)  # check_rule calls the oracle once per valid row, in row order
        return softmax_ce(torch.stack([s * target(c[j], m) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


def seeded_draws(seed, n, mean, sigma):
    torch.manual_seed(seed)
    return torch.normal(mean, sigma, size=(n,)).double()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ELASTIC))
def test_elastic_train_oracle_with_seeded_margins(name, dtype):
    kind, plus, sigma, mean = ELASTIC[name]
    # wide cosines: the arc variants reach theta_y + m > pi, where the official target has no fallback
    cos, labels, norms = random_case(batch=9, seed=11, lo=-0.999, hi=0.999)
    labels[4] = -1  # an ignored row takes no draw
    modes = ["official", "intended"] if plus else [None]
    for mode in modes:
        rule = create_rule(name, **({"plus_mode": mode} if plus else {})).train()
        draws = seeded_draws(7, 8, mean, sigma)
        torch.manual_seed(7)
        check_rule(rule, oracle_elastic(kind, 64.0, cos, labels, draws, mode), cos, labels, norms, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ELASTIC))
def test_elastic_eval_uses_the_mean_margin(name, dtype):
    kind, plus, sigma, mean = ELASTIC[name]
    cos, labels, norms = random_case(seed=3, lo=-0.999, hi=0.999)
    rule = create_rule(name).eval()
    state = torch.random.get_rng_state()
    check_rule(rule, oracle_elastic(kind, 64.0, cos, labels, [mean] * len(labels)), cos, labels, norms, dtype=dtype)
    assert torch.equal(torch.random.get_rng_state(), state), "eval mode must not consume random numbers"
    assert rule(cos, make_ctx(labels), norms).stats["margin_mean"] == mean


@pytest.mark.parametrize("dtype", DTYPES)
def test_elastic_arc_th_mm_option_matches_the_insightface_fallback(dtype):
    cos, labels, norms = random_case(seed=5, lo=-0.999, hi=0.999)
    draws = seeded_draws(2, 6, 0.5, 0.05)
    torch.manual_seed(2)
    check_rule(create_rule("elastic_arc", th_mm=True).train(),
               oracle_elastic("arc", 64.0, cos, labels, draws, th_mm=True), cos, labels, norms, dtype=dtype)


@pytest.mark.parametrize("training", [True, False])
def test_elastic_equals_arcface_and_cosface_without_spread(training):
    """sigma = 0 (train mode) and eval mode are ArcFace / CosFace with margin m."""
    wide = random_case(batch=12, seed=6, lo=-0.999, hi=0.999)
    inner = random_case(batch=12, seed=6, lo=-0.8, hi=0.8)  # away from ArcFace's th/mm region
    pairs = [("elastic_arc", dict(th_mm=True), "arcface", {}, wide),
             ("elastic_arc_plus", dict(th_mm=True, plus_mode="intended"), "arcface", {}, wide),
             ("elastic_arc", {}, "arcface", {}, inner),
             ("elastic_cos", {}, "cosface", {}, wide),
             ("elastic_cos_plus", {}, "cosface", {}, wide),
             ("elastic_cos", dict(m=0.4), "cosface", dict(m=0.4), wide)]
    for name, kw, ref_name, ref_kw, (cos, labels, norms) in pairs:
        rule = create_rule(name, sigma=0.0, **kw).train(training)
        ref = create_rule(ref_name, **ref_kw)
        c1, c2 = cos.clone().requires_grad_(True), cos.clone().requires_grad_(True)
        l1 = rule(c1, make_ctx(labels), norms).loss
        l2 = ref(c2, make_ctx(labels), norms).loss
        torch.testing.assert_close(l1, l2, msg=lambda m: f"{name} {kw}: {m}")
        torch.testing.assert_close(torch.autograd.grad(l1, c1)[0], torch.autograd.grad(l2, c2)[0])


def test_plus_assignment_on_a_hand_example():
    cos_y = torch.tensor([0.1, 0.9, 0.5, 0.3])  # rows by decreasing cos_y: 1, 2, 3, 0
    margins = torch.tensor([0.53, 0.47, 0.51, 0.49])  # sorted: 0.47 0.49 0.51 0.53
    intended = assign_plus_margins(margins, cos_y, "intended")
    torch.testing.assert_close(intended, torch.tensor([0.53, 0.47, 0.49, 0.51]))
    official = assign_plus_margins(margins, cos_y, "official")  # row i gets sorted[idx[i]], idx = [1, 2, 3, 0]
    torch.testing.assert_close(official, torch.tensor([0.49, 0.51, 0.53, 0.47]))
    with pytest.raises(ValueError, match="plus_mode"):
        assign_plus_margins(margins, cos_y, "paper")


def test_plus_rank_correlation_intended_is_minus_one_official_is_not():
    g = torch.Generator().manual_seed(0)
    official_corrs = []
    for trial in range(20):
        cos_y = torch.rand(64, generator=g, dtype=torch.float64) * 2 - 1
        margins = 0.5 + 0.05 * torch.randn(64, generator=g, dtype=torch.float64)
        assert float(rank_correlation(assign_plus_margins(margins, cos_y, "intended"), cos_y)) == pytest.approx(-1.0)
        official = assign_plus_margins(margins, cos_y, "official")
        assert sorted(official.tolist()) == sorted(margins.tolist()), "official must permute the draws"
        official_corrs.append(float(rank_correlation(official, cos_y)))
    assert max(official_corrs) < 0.9 and min(official_corrs) > -0.9, official_corrs
    assert abs(sum(official_corrs) / len(official_corrs)) < 0.15, "official assignment should be ~uncorrelated"


@pytest.mark.parametrize("name", ["elastic_arc_plus", "elastic_cos_plus"])
def test_plus_rule_records_its_rank_correlation(name):
    cos, labels, norms = random_case(batch=40, classes=9, seed=8)
    out = {}
    for mode in ("intended", "official"):
        torch.manual_seed(0)
        out[mode] = create_rule(name, plus_mode=mode).train()(cos, make_ctx(labels), norms).stats
    assert out["intended"]["margin_rank_corr"] == pytest.approx(-1.0)
    assert out["official"]["margin_rank_corr"] > -0.9
    # the same draws, only permuted
    for k in ("margin_mean", "margin_min", "margin_max"):
        assert out["intended"][k] == pytest.approx(out["official"][k])


def test_elastic_margin_statistics_follow_the_normal_law():
    cos, labels, norms = random_case(batch=4000, classes=3, seed=9)
    labels[:1000] = -1
    torch.manual_seed(1)
    stats = create_rule("elastic_cos", m=0.35, sigma=0.05).train()(cos, make_ctx(labels), norms).stats
    torch.manual_seed(1)
    draws = torch.normal(0.35, 0.05, size=(3000,))  # one draw per valid row
    assert stats["margin_mean"] == pytest.approx(float(draws.mean()), abs=1e-6)
    assert stats["margin_std"] == pytest.approx(float(draws.std()), abs=1e-6)
    assert stats["margin_min"] == pytest.approx(float(draws.min()), abs=1e-6)
    assert stats["margin_max"] == pytest.approx(float(draws.max()), abs=1e-6)
    assert abs(stats["margin_mean"] - 0.35) < 4 * 0.05 / math.sqrt(3000)
    assert abs(stats["margin_std"] - 0.05) < 0.005


def test_elastic_margins_are_fresh_each_step_and_reproducible():
    cos, labels, norms = random_case(seed=10)
    rule = create_rule("elastic_arc").train()
    torch.manual_seed(4)
    a, b = rule(cos, make_ctx(labels), norms).loss, rule(cos, make_ctx(labels), norms).loss
    torch.manual_seed(4)
    a2 = rule(cos, make_ctx(labels), norms).loss
    assert not torch.equal(a, b), "a new step must draw new margins"
    assert torch.equal(a, a2), "the global seed must reproduce the margins"


def test_elastic_defaults_and_errors():
    for name, (_, plus, sigma, mean) in ELASTIC.items():
        d = fr.heads.head_defaults(name)
        assert (d["s"], d["m"], d["sigma"]) == (64.0, mean, sigma), name
        assert ("plus_mode" in d) == plus and d.get("plus_mode", "official") == "official"
        assert fr.heads.head_info(name)["default_init"] == "normal"
    with pytest.raises(ValueError, match="sigma"):
        create_rule("elastic_cos", sigma=-0.1)
    with pytest.raises(ValueError, match="plus_mode"):
        create_rule("elastic_arc_plus", plus_mode="sorted")
    with pytest.raises(TypeError, match="known parameters"):
        create_rule("elastic_arc", plus_mode="intended")  # only the "+" variants have an assignment


# --- SFace ---------------------------------------------------------------------------------------------

def oracle_sface(s, k, a, b):
    def r_in(theta):
        return s / (1.0 + math.exp(-k * (theta - a)))

    def r_out(theta):
        return s / (1.0 + math.exp(k * (theta - b)))

    def f(c, y, norm):
        loss = -r_in(math.acos(float(c[y].detach()))) * c[y]  # the re-scales are constants: [.]_sg
        for j in range(c.shape[0]):
            if j != y:
                loss = loss + r_out(math.acos(float(c[j].detach()))) * c[j]
        return loss
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [{}, dict(a=0.87, b=1.2), dict(s=32.0, k=20.0, a=1.0, b=1.4)])
def test_sface_oracle(dtype, params):
    p = dict(s=64.0, k=80.0, a=0.8, b=1.23) | params
    # cosines spanning the angles where both sigmoids switch (theta in [0.6, 1.5])
    cos, labels, norms = random_case(batch=8, classes=9, seed=12, lo=0.07, hi=0.83)
    labels[2] = -1
    check_rule(create_rule("sface", **params), oracle_sface(**p), cos, labels, norms, dtype=dtype)
    cos, labels, norms = random_case(batch=8, classes=9, seed=13, lo=-1.0, hi=1.0)
    check_rule(create_rule("sface", **params), oracle_sface(**p), cos, labels, norms, dtype=dtype)


def test_sface_angle_gradients_are_the_rescaled_sines():
    """dL/dtheta_y = r_intra(theta_y) sin theta_y and dL/dtheta_j = -r_inter(theta_j) sin theta_j (per row)."""
    g = torch.Generator().manual_seed(14)
    theta = (0.3 + 1.4 * torch.rand(5, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    labels = torch.tensor([0, 3, 5, 1, 1])
    rule = create_rule("sface")
    loss = rule(torch.cos(theta), make_ctx(labels), torch.ones(5, dtype=torch.float64)).loss
    grad, = torch.autograd.grad(loss * 5, theta)  # undo the mean over rows
    th = theta.detach()
    onehot = torch.nn.functional.one_hot(labels, 6).bool()
    want = torch.where(onehot, r_intra(th, 64.0, 80.0, 0.8) * torch.sin(th),
                       -r_inter(th, 64.0, 80.0, 1.23) * torch.sin(th))
    torch.testing.assert_close(grad, want)


def test_sface_rescale_check_values():
    t = torch.tensor([0.8, 0.75, 0.85], dtype=torch.float64)
    torch.testing.assert_close(r_intra(t, 64.0, 80.0, 0.8), torch.tensor([32.0, 1.1512, 62.8488], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(r_inter(t + 0.43, 64.0, 80.0, 1.23),
                               torch.tensor([32.0, 62.8488, 1.1512], dtype=torch.float64), atol=1e-4, rtol=0)


def test_sface_logits_stats_and_init():
    cos, labels, norms = random_case(seed=15, lo=0.05, hi=0.95)  # positive cosines: the pull term is negative
    out = create_rule("sface")(cos, make_ctx(labels), norms)
    torch.testing.assert_close(out.logits, 64.0 * cos)
    assert out.stats["intra"] + out.stats["inter"] == pytest.approx(float(out.loss))
    assert out.stats["intra"] < 0 and out.stats["cos_y"] == pytest.approx(float(cos.gather(1, labels[:, None]).mean()))
    assert fr.heads.head_info("sface")["default_init"] == "xavier"
    assert fr.heads.head_defaults("sface") == dict(s=64.0, k=80.0, a=0.8, b=1.23)


# --- harmonic ------------------------------------------------------------------------------------------

def oracle_harmonic(n, eps, scale=1.0):
    """HarMax of the (scaled, min-normalised as in the repository) cosine distances, then -log p_y."""
    def f(c, y, norm):
        d = [scale * (1.0 - c[j] + eps) for j in range(c.shape[0])]
        dmin = min(float(v.detach()) for v in d)
        w = [(v / dmin) ** (-n) for v in d]
        return -torch.log(w[y] / sum(w))
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1.0, 3.5])
def test_harmonic_oracle(dtype, n):
    cos, labels, norms = random_case(seed=16, lo=-0.99, hi=0.99)
    check_rule(create_rule("harmonic", n=n), oracle_harmonic(n, 1e-4), cos, labels, norms, dtype=dtype)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e3])
def test_harmonic_is_scale_invariant(scale):
    """Scaling every distance by one constant (the repository's d / min d, for instance) leaves the loss."""
    cos, labels, norms = random_case(seed=17)
    check_rule(create_rule("harmonic"), oracle_harmonic(1.0, 1e-4, scale), cos, labels, norms)


def test_harmonic_at_unit_cosine_and_predictions():
    cos = torch.tensor([[1.0, 0.2, -1.0], [0.3, 0.9, 0.95]], dtype=torch.float64, requires_grad=True)
    rule = create_rule("harmonic", n=2.0)
    logits = rule(cos, make_ctx(torch.tensor([0, 1])), torch.ones(2)).logits
    torch.testing.assert_close(logits[0, 0], torch.tensor(-2.0 * math.log(1e-4), dtype=torch.float64))
    grad, = torch.autograd.grad(logits[0, 0], cos)
    assert float(grad[0, 0]) == pytest.approx(2.0 / 1e-4)  # n / (1 - c + eps) at c = 1
    assert logits.argmax(1).tolist() == cos.argmax(1).tolist()  # HarMax predicts the nearest centre
    with pytest.raises(ValueError, match="n must be > 0"):
        create_rule("harmonic", n=0.0)
    with pytest.raises(ValueError, match="eps"):
        create_rule("harmonic", eps=0.0)
