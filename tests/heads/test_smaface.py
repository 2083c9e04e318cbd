"""The SMAFace family (fr/heads/smaface.py): the mining weight and scaling term against SMAFace's equations and check
values, the rules against their oracles, and the alpha = 0 identities with AdaFace."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fr.heads import create_rule, head_defaults, head_info
from fr.heads.adaface import NormAdaptiveMargin
from fr.heads.smaface import mining_weight, mining_weight_grad, star_factor
from oracles import DTYPES, check_rule, make_ctx, mining_indicator, oracle_smaface, random_case, set_norm_stats


# --- the mining weight --------------------------------------------------------------------------------------

def test_mining_weight_check_values():
    """SMAFace Eq. 3 and Eq. 38 (p0 = 0.6): I and I* at p = 0, 0.6, 1 for alpha = 1, 2, -2."""
    assert 1 / (1 + math.exp(-0.6)) - 0.5 == pytest.approx(0.14566, abs=1e-5)
    p = torch.tensor([0.0, 0.6, 1.0], dtype=torch.float64)
    for alpha, want in [(1, [1.1457, 1, 0.9013]), (2, [1.2913, 1, 0.8026]), (-2, [0.7087, 1, 1.1974])]:
        np.testing.assert_allclose(mining_weight(p, alpha), want, atol=1e-4)
    for alpha, i0, i1 in [(1, 1.0024, 0.7886), (2, 1.0044, 0.6243), (-2, 0.9922, 1.6763)]:
        np.testing.assert_allclose(mining_weight(p[[0, 2]], alpha, star=True), [i0, i1], atol=1e-4)
    assert star_factor(2.0) == pytest.approx(7 / 9) and star_factor(-2.0) == pytest.approx(1.4)


def _st(p, alpha, star=False):
    """The SM-CosFace scaling term (eq. 8): I'(p) p log p + I(p)."""
    return mining_weight_grad(p, alpha, star=star) * p * torch.log(p) + mining_weight(p, alpha, star=star)


def test_scaling_term_check_values():
    p = torch.tensor([0.1, 0.5, 0.9, 0.99], dtype=torch.float64)
    np.testing.assert_allclose(_st(p, 1.0), [1.1766, 1.1114, 0.9487, 0.9061], atol=1e-4)
    np.testing.assert_allclose(_st(p, 2.0, star=True), [1.0524, 0.9511, 0.6980, 0.6317], atol=1e-4)
    np.testing.assert_allclose(_st(p, -2.0, star=True), [0.9056, 1.0881, 1.5435, 1.6629], atol=1e-4)


@pytest.mark.parametrize("variant", ["standard", "weak", "strong", "beta"])
@pytest.mark.parametrize("star", [False, True])
def test_mining_weight_matches_the_equations(variant, star):
    p = torch.linspace(0.003, 0.997, 41, dtype=torch.float64).requires_grad_(True)
    kw = dict(beta=3.0, alpha0=1.5) if variant == "beta" else {}
    got = mining_weight(p, -3.0, 0.6, variant, star, **kw)
    want = mining_indicator(p, -3.0, 0.6, star, variant, **kw)
    torch.testing.assert_close(got, want)
    grad, = torch.autograd.grad(want.sum(), p)
    torch.testing.assert_close(mining_weight_grad(p.detach(), -3.0, 0.6, variant, star, **kw), grad)


def test_weak_and_strong_are_flat_on_one_side():
    p = torch.tensor([0.0, 0.3, 0.59, 0.61, 0.9, 1.0], dtype=torch.float64)
    weak, strong = mining_weight(p, 2.0, variant="weak"), mining_weight(p, 2.0, variant="strong")
    assert bool((weak[p >= 0.6] == 1.0).all()) and bool((weak[p < 0.6] > 1.0).all())
    assert bool((strong[p <= 0.6] == 1.0).all()) and bool((strong[p > 0.6] < 1.0).all())


# --- the rules ----------------------------------------------------------------------------------------------

SMA_CASES = [
    ("smaface", True, dict(alpha=1.0, star=False)),
    ("smaface_star", True, dict(alpha=2.0, star=True)),
    ("nsmaface_star", True, dict(alpha=-2.0, star=True)),
    ("sm_cosface", False, dict(alpha=1.0, star=False)),
    ("sm_cosface_star", False, dict(alpha=2.0, star=True)),
    ("nsm_cosface_star", False, dict(alpha=-1.0, star=True)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,angular,ind", SMA_CASES)
def test_smaface_family_oracle(dtype, name, angular, ind):
    # s = 16 keeps p away from 0 and 1 so that the mining weight varies across rows
    cos, labels, norms = random_case(seed=11, lo=-0.9995, hi=0.9995, norm_range=(5.0, 40.0))
    rule = set_norm_stats(create_rule(name, s=16.0), 20.0, 8.0)
    check_rule(rule, oracle_smaface(s=16.0, mu=20.0, sigma=8.0, angular=angular, **ind), cos, labels, norms,
               dtype=dtype)


@pytest.mark.parametrize("variant", ["weak", "strong", "beta"])
@pytest.mark.parametrize("detach_weight", [False, True])
def test_smaface_variants_and_detached_weight_oracle(variant, detach_weight):
    cos, labels, norms = random_case(seed=12, norm_range=(5.0, 40.0))
    kw = dict(beta=4.0, alpha0=1.0) if variant == "beta" else {}
    rule = set_norm_stats(create_rule("nsmaface_star", s=16.0, alpha=-4.0, variant=variant,
                                  detach_weight=detach_weight, **kw), 20.0, 8.0)
    oracle = oracle_smaface(s=16.0, mu=20.0, sigma=8.0, detach_weight=detach_weight, alpha=-4.0, star=True,
                            variant=variant, **kw)
    check_rule(rule, oracle, cos, labels, norms)


@pytest.mark.parametrize("detach_weight", [False, True])
def test_sm_cosface_target_gradient_is_the_papers_scaling_term(detach_weight):
    """Eq. 7: dL/dc_y = s (p - 1) st with st = I'(p) p log p + I(p) when the weight is differentiated (the
    paper's analysis), and st = I(p) when it is detached."""
    s, alpha = 16.0, 2.0
    cos, labels, norms = random_case(batch=5, seed=13)
    rule = set_norm_stats(create_rule("sm_cosface", s=s, alpha=alpha, detach_weight=detach_weight), 20.0, 8.0).double()
    c = cos.clone().requires_grad_(True)
    out = rule(c, make_ctx(labels), norms)
    grad, = torch.autograd.grad(out.loss, c)
    p = torch.softmax(out.logits.detach(), 1).gather(1, labels[:, None]).squeeze(1)
    st = mining_weight(p, alpha) if detach_weight else _st(p, alpha)
    g_y = grad.gather(1, labels[:, None]).squeeze(1) * len(labels)
    np.testing.assert_allclose(g_y.numpy(), (s * (p - 1) * st).numpy(), rtol=1e-10)


@pytest.mark.parametrize("training", [False, True])
def test_smaface_alpha0_equals_adaface_exactly(training):
    cos, labels, norms = random_case(seed=14, lo=-0.9995, hi=0.9995)
    ctx = make_ctx(labels)
    for star in (False, True):
        torch.manual_seed(0)
        ada, sma = create_rule("adaface").train(training), create_rule("smaface", alpha=0.0, star=star).train(training)
        c1, c2 = cos.float().requires_grad_(True), cos.float().requires_grad_(True)
        l1, l2 = ada(c1, ctx, norms.float()).loss, sma(c2, ctx, norms.float()).loss
        assert torch.equal(l1, l2)
        torch.testing.assert_close(torch.autograd.grad(l2, c2)[0], torch.autograd.grad(l1, c1)[0], rtol=0, atol=1e-7)
        for k in ("batch_mean", "batch_std"):
            assert torch.equal(getattr(ada, k), getattr(sma, k))


class _AdaFaceCosineForm(NormAdaptiveMargin):
    """AdaFace's margin with the additive part only and plain cross-entropy (the SM-CosFace margin)."""

    angular = False


def test_sm_cosface_alpha0_equals_the_adaface_cosine_form():
    cos, labels, norms = random_case(seed=15, lo=-1.0, hi=1.0)
    ctx = make_ctx(labels)
    ref = _AdaFaceCosineForm().train()
    sm = create_rule("sm_cosface", alpha=0.0).train()
    assert torch.equal(ref(cos.float(), ctx, norms.float()).loss, sm(cos.float(), ctx, norms.float()).loss)
    # and with h = 0 that is CosFace(m) for every cosine (no clamp in the cosine form)
    sm0 = create_rule("sm_cosface", alpha=0.0, h=0.0)
    torch.testing.assert_close(sm0(cos, ctx, norms).loss, create_rule("cosface", m=0.4)(cos, ctx, norms).loss)


def test_smaface_registrations_and_errors():
    assert head_defaults("smaface")["alpha"] == 1.0 and not head_defaults("smaface")["star"]
    assert head_defaults("smaface_star")["alpha"] == 2.0 and head_defaults("smaface_star")["star"]
    assert head_defaults("nsmaface_star")["alpha"] == -2.0 and head_defaults("nsmaface_star")["star"]
    assert head_defaults("smaface")["p0"] == 0.6 and head_defaults("smaface")["detach_weight"] is False
    for name in ("sm_cosface", "smaface", "smaface_star", "nsmaface_star"):
        assert "Eq." in head_info(name)["equation"] and head_info(name)["default_init"] == "unit_uniform"
    with pytest.raises(ValueError, match="alpha must be > -7"):
        create_rule("nsmaface_star", alpha=-7.0)
    with pytest.raises(ValueError, match="alpha must be > -7"):
        create_rule("sm_cosface", alpha=-9.0)
    with pytest.raises(ValueError, match="variant"):
        create_rule("smaface", variant="medium")
    with pytest.raises(ValueError, match="alpha = -7"):
        star_factor(-7.0)


def test_smaface_state_only_in_training():
    cos, labels, norms = random_case(seed=16)
    rule = create_rule("smaface_star").double().eval()
    rule(cos, make_ctx(labels), norms)
    assert float(rule.batch_mean) == 20.0
    rule.train()(cos, make_ctx(labels), norms)
    assert float(rule.batch_mean) == pytest.approx(0.01 * float(norms.clamp(0.001, 100).mean()) + 0.99 * 20.0)
