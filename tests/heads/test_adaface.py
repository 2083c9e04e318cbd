"""AdaFace (fr/heads/adaface.py): oracle with set norm statistics, the EMA of the norm statistics, and the CosFace
(h = 0) and ArcFace (z = -1) limits."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule, head_defaults, head_info
from fr.heads.adaface import adaface_margins
from oracles import DTYPES, check_rule, make_ctx, oracle_adaface, random_case, set_norm_stats


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("h,mu,sigma", [(0.333, 20.0, 100.0), (0.333, 20.0, 8.0), (1.0, 22.0, 4.0)])
def test_adaface_oracle(dtype, seed, h, mu, sigma):
    # cosines up to +-0.9995 reach the +-(1 - 1e-3) clamp and the [eps, pi - eps] angle clip
    cos, labels, norms = random_case(seed=seed, lo=-0.9995, hi=0.9995, norm_range=(1e-4, 130.0))
    rule = set_norm_stats(create_rule("adaface", h=h), mu, sigma)
    check_rule(rule, oracle_adaface(h=h, mu=mu, sigma=sigma), cos, labels, norms, dtype=dtype)


def test_adaface_defaults_and_metadata():
    assert head_defaults("adaface") == dict(s=64.0, m=0.4, h=0.333, t_alpha=0.01)
    info = head_info("adaface")
    assert info["default_init"] == "unit_uniform" and "mk-minchul/AdaFace" in info["official"]
    rule = create_rule("adaface")
    assert float(rule.batch_mean) == 20.0 and float(rule.batch_std) == 100.0


def test_adaface_ema_updates_before_use_over_valid_rows_only():
    cos, labels, norms = random_case(batch=9, seed=5, norm_range=(5.0, 140.0))
    labels[[2, 6]] = -1
    rule = create_rule("adaface", t_alpha=0.3).double().train()
    out = rule(cos, make_ctx(labels), norms)
    a = norms.clamp(0.001, 100.0)[labels >= 0]  # clipped before the statistics, as the official code
    mu = 0.3 * float(a.mean()) + 0.7 * 20.0
    sigma = 0.3 * float(a.std(unbiased=True)) + 0.7 * 100.0
    assert float(rule.batch_mean) == pytest.approx(mu, rel=1e-12)
    assert float(rule.batch_std) == pytest.approx(sigma, rel=1e-12)
    # the loss of this very step already uses the updated statistics
    keep = labels >= 0
    want = torch.stack([oracle_adaface(mu=mu, sigma=sigma)(cos[i], int(labels[i]), norms[i])
                        for i in range(9) if keep[i]]).mean()
    torch.testing.assert_close(out.loss, want)
    assert float(out.stats["batch_mean"]) == pytest.approx(mu) and "zhat_mean" in out.stats


def test_adaface_ema_skips_std_with_one_valid_row_and_everything_with_none():
    cos, labels, norms = random_case(batch=3, seed=6)
    rule = create_rule("adaface").double().train()
    rule(cos, make_ctx(torch.tensor([-1, 2, -1])), norms)
    assert float(rule.batch_mean) == pytest.approx(0.01 * float(norms[1]) + 0.99 * 20.0)
    assert float(rule.batch_std) == 100.0  # an unbiased std of one value is NaN: not used
    before = rule.batch_mean.clone()
    out = rule(cos, make_ctx(torch.full((3,), -1)), norms)
    assert torch.equal(rule.batch_mean, before) and torch.isfinite(out.loss)


def test_adaface_state_only_in_training_and_round_trips():
    cos, labels, norms = random_case(seed=7)
    rule = create_rule("adaface").double()
    rule.eval()
    rule(cos, make_ctx(labels), norms)
    assert float(rule.batch_mean) == 20.0 and float(rule.batch_std) == 100.0
    rule.train()
    for _ in range(3):
        rule(cos, make_ctx(labels), norms)
    assert float(rule.batch_mean) != 20.0 and float(rule.batch_std) != 100.0
    assert set(rule.state_dict()) == {"batch_mean", "batch_std"}
    fresh = create_rule("adaface").double()
    fresh.load_state_dict(rule.state_dict())
    rule.eval(), fresh.eval()
    torch.testing.assert_close(fresh(cos, make_ctx(labels), norms).loss, rule(cos, make_ctx(labels), norms).loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaface_h0_is_cosface(dtype):
    cos, labels, norms = random_case(seed=8, lo=-0.99, hi=0.99)
    ctx = make_ctx(labels)
    c1, c2 = cos.to(dtype).requires_grad_(True), cos.to(dtype).requires_grad_(True)
    ada = create_rule("adaface", h=0.0).to(dtype).train()
    l1 = ada(c1, ctx, norms.to(dtype)).loss
    l2 = create_rule("cosface", m=0.4)(c2, ctx, norms.to(dtype)).loss
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(torch.autograd.grad(l1, c1)[0], torch.autograd.grad(l2, c2)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaface_zhat_minus_one_is_arcface(dtype):
    """Norms far below the running mean clip to z = -1: ArcFace(m) exactly, away from ArcFace's th/mm region
    (cos(pi - 0.4) = -0.921) and from AdaFace's clamps."""
    cos, labels, norms = random_case(seed=9, lo=-0.9, hi=0.9)
    ada = set_norm_stats(create_rule("adaface").to(dtype), 1000.0, 1.0)
    ctx = make_ctx(labels)
    c1, c2 = cos.to(dtype).requires_grad_(True), cos.to(dtype).requires_grad_(True)
    out = ada(c1, ctx, norms.to(dtype))
    assert float(out.stats["zhat_mean"]) == -1.0 and float(out.stats["zhat_clipped"]) == 1.0
    l2 = create_rule("arcface", m=0.4)(c2, ctx, norms.to(dtype)).loss
    torch.testing.assert_close(out.loss, l2)
    torch.testing.assert_close(torch.autograd.grad(out.loss, c1)[0], torch.autograd.grad(l2, c2)[0])


def test_adaface_margin_map():
    z = torch.tensor([-1.0, 0.0, 1.0])
    g_angle, g_add = adaface_margins(z, 0.4)
    torch.testing.assert_close(g_angle, torch.tensor([0.4, 0.0, -0.4]))
    torch.testing.assert_close(g_add, torch.tensor([0.0, 0.4, 0.8]))


def test_adaface_norm_has_no_gradient_and_bad_parameters_fail():
    cos, labels, norms = random_case(seed=10)
    n = norms.clone().requires_grad_(True)
    out = create_rule("adaface").double()(cos.clone().requires_grad_(True), make_ctx(labels), n)
    assert out.loss.grad_fn is not None
    assert torch.autograd.grad(out.loss, n, allow_unused=True)[0] is None
    with pytest.raises(ValueError, match="t_alpha"):
        create_rule("adaface", t_alpha=0.0)
    with pytest.raises(ValueError, match="h must be"):
        create_rule("adaface", h=-1.0)
