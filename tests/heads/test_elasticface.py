"""ElasticFace-Arc, -Cos and their "+" variants (fr/heads/elasticface.py): oracles with seeded margins, the "+"
assignment (official and intended), eval mode, margin statistics."""
from __future__ import annotations

import math

import pytest
import torch

import fr
from fr.heads import create_rule
from fr.heads.elasticface import assign_plus_margins, rank_correlation
from oracles import DTYPES, check_rule, make_ctx, oracle_elastic, random_case, seeded_draws


ELASTIC = {  # name -> (kind, plus, paper-config sigma, mean margin)
    "elastic_arc": ("arc", False, 0.05, 0.5),
    "elastic_arc_plus": ("arc", True, 0.0175, 0.5),
    "elastic_cos": ("cos", False, 0.05, 0.35),
    "elastic_cos_plus": ("cos", True, 0.02, 0.35),
}


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
        torch.testing.assert_close(l1, l2, msg=lambda m, name=name, kw=kw: f"{name} {kw}: {m}")
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
    for _ in range(20):
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
