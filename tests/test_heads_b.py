"""Oracles and identities for AdaFace, the SMAFace family, MagFace / Mag-CosFace and LH2Face (reconstruction).

Each oracle is a naive per-row float64 implementation written from the paper's equation (or, where the paper is
silent, from the official code's semantics as recorded in the heads reference), compared with the vectorised rule
on the loss and on the gradients with respect to the cosines and the feature norms (``oracle_utils.check_rule``).
Stateful rules are put in eval mode with their buffers set, so that the oracle sees known statistics.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import fr
from fr.heads import create_rule, head_defaults, head_info
from fr.heads.adaface import NormAdaptiveMargin, adaface_margins
from fr.heads.lh2face import proxy_pair_loss
from fr.heads.magface import magface_lambda_bound
from fr.heads.smaface import mining_weight, mining_weight_grad, star_factor
from oracle_utils import check_rule, make_ctx, random_case, softmax_ce

DTYPES = [torch.float64, torch.float32]
EPS = 1e-3  # AdaFace's stability constant


# --- oracles ---------------------------------------------------------------------------------------------------

def _zhat(a, mu, sigma, h):
    """AdaFace's norm score from a (detached) norm: clip to [0.001, 100], normalise, scale by h, clip to [-1, 1]."""
    a = min(max(float(a.detach()), 0.001), 100.0)
    return max(-1.0, min(1.0, (a - mu) / (sigma + EPS) * h))


def _adaface_logits(c, y, a, *, s, m, h, mu, sigma, angular=True):
    z = _zhat(a, mu, sigma, h)
    out = []
    for j in range(c.shape[0]):
        cj = c[j].clamp(-1 + EPS, 1 - EPS) if angular else c[j]
        if j != y:
            out.append(s * cj)
        elif angular:  # cos(clip(theta - m z, eps, pi - eps)) - (m z + m)
            theta_m = (torch.acos(cj) - m * z).clamp(EPS, math.pi - EPS)
            out.append(s * (torch.cos(theta_m) - (m * z + m)))
        else:
            out.append(s * (cj - (m * z + m)))
    return torch.stack(out)


def oracle_adaface(s=64.0, m=0.4, h=0.333, mu=20.0, sigma=100.0):
    def f(c, y, a):
        return softmax_ce(_adaface_logits(c, y, a, s=s, m=m, h=h, mu=mu, sigma=sigma), y)
    return f


def _indicator(p, alpha, p0=0.6, star=False, variant="standard", beta=1.0, alpha0=1.0):
    """SMAFace eq. 3 / 38 / 39 / 40 written out: 1 + a (1/(1 + e^{x}) - 0.5) with x the (modified) exponent."""
    x = p - p0
    amp = alpha
    if variant == "weak":
        x = torch.minimum(x, torch.zeros_like(x))
    elif variant == "strong":
        x = torch.maximum(x, torch.zeros_like(x))
    elif variant == "beta":
        x, amp = beta * x, alpha0
    w = 1 + amp * (1 / (1 + torch.exp(x)) - 0.5)
    return w * abs(7 / (7 + alpha)) if star else w


def oracle_smaface(s=64.0, m=0.4, h=0.333, mu=20.0, sigma=100.0, angular=True, detach_weight=False, **ind):
    def f(c, y, a):
        log_p = -softmax_ce(_adaface_logits(c, y, a, s=s, m=m, h=h, mu=mu, sigma=sigma, angular=angular), y)
        p = torch.exp(log_p)
        w = _indicator(p.detach() if detach_weight else p, **ind)
        return -w * log_p
    return f


def oracle_magface(s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lam=35.0, easy_margin=True, cos_form=False):
    def f(c, y, a):
        a = a.clamp(l_a, u_a)  # keeps the gradient inside the band
        mg = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
        cy = c[y]
        if cos_form:
            t = cy - mg
        else:
            phi = torch.cos(torch.acos(cy) + mg)
            if easy_margin:
                t = phi if cy > 0 else cy
            else:
                t = phi if cy > torch.cos(math.pi - mg) else cy - torch.sin(math.pi - mg) * mg
        logits = torch.stack([s * t if j == y else s * c[j] for j in range(c.shape[0])])
        return softmax_ce(logits, y) + lam * (a / u_a ** 2 + 1 / a)
    return f


def oracle_lh2face(mu, ratio=0.35, detach_kappa=False, lam_pps=1.0, lam_pns=1.0, s_p=32.0, delta=0.2):
    def f(c, y, a):
        k = a.detach() if detach_kappa else a
        logits = torch.stack([k * c[j] - ratio * mu if j == y else k * c[j] for j in range(c.shape[0])])
        pns = torch.log(1 + sum(torch.exp(s_p * (c[j] - delta)) for j in range(c.shape[0]) if j != y))
        return softmax_ce(logits, y) + lam_pps * (1 - c[y]) + lam_pns * pns
    return f


def _set_stats(rule, mu, sigma):
    with torch.no_grad():
        rule.batch_mean.fill_(mu)
        rule.batch_std.fill_(sigma)
    return rule.eval()


# --- AdaFace ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("h,mu,sigma", [(0.333, 20.0, 100.0), (0.333, 20.0, 8.0), (1.0, 22.0, 4.0)])
def test_adaface_oracle(dtype, seed, h, mu, sigma):
    # cosines up to +-0.9995 reach the +-(1 - 1e-3) clamp and the [eps, pi - eps] angle clip
    cos, labels, norms = random_case(seed=seed, lo=-0.9995, hi=0.9995, norm_range=(1e-4, 130.0))
    rule = _set_stats(create_rule("adaface", h=h), mu, sigma)
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
    assert out.stats["batch_mean"] == pytest.approx(mu) and "zhat_mean" in out.stats


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
    ada = _set_stats(create_rule("adaface").to(dtype), 1000.0, 1.0)
    ctx = make_ctx(labels)
    c1, c2 = cos.to(dtype).requires_grad_(True), cos.to(dtype).requires_grad_(True)
    out = ada(c1, ctx, norms.to(dtype))
    assert out.stats["zhat_mean"] == -1.0 and out.stats["zhat_clipped"] == 1.0
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


# --- SMAFace family: the mining weight ---------------------------------------------------------------------------

def test_indicator_check_values_from_the_reference():
    """heads.md §4.1 item 6 (p0 = 0.6)."""
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


def test_scaling_term_check_values_from_the_reference():
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
    want = _indicator(p, -3.0, 0.6, star, variant, **kw)
    torch.testing.assert_close(got, want)
    grad, = torch.autograd.grad(want.sum(), p)
    torch.testing.assert_close(mining_weight_grad(p.detach(), -3.0, 0.6, variant, star, **kw), grad)


def test_weak_and_strong_are_flat_on_one_side():
    p = torch.tensor([0.0, 0.3, 0.59, 0.61, 0.9, 1.0], dtype=torch.float64)
    weak, strong = mining_weight(p, 2.0, variant="weak"), mining_weight(p, 2.0, variant="strong")
    assert bool((weak[p >= 0.6] == 1.0).all()) and bool((weak[p < 0.6] > 1.0).all())
    assert bool((strong[p <= 0.6] == 1.0).all()) and bool((strong[p > 0.6] < 1.0).all())


# --- SMAFace family: the rules ------------------------------------------------------------------------------------

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
    rule = _set_stats(create_rule(name, s=16.0), 20.0, 8.0)
    check_rule(rule, oracle_smaface(s=16.0, mu=20.0, sigma=8.0, angular=angular, **ind), cos, labels, norms,
               dtype=dtype)


@pytest.mark.parametrize("variant", ["weak", "strong", "beta"])
@pytest.mark.parametrize("detach_weight", [False, True])
def test_smaface_variants_and_detached_weight_oracle(variant, detach_weight):
    cos, labels, norms = random_case(seed=12, norm_range=(5.0, 40.0))
    kw = dict(beta=4.0, alpha0=1.0) if variant == "beta" else {}
    rule = _set_stats(create_rule("nsmaface_star", s=16.0, alpha=-4.0, variant=variant,
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
    rule = _set_stats(create_rule("sm_cosface", s=s, alpha=alpha, detach_weight=detach_weight), 20.0, 8.0).double()
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


# --- MagFace -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("easy", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_magface_oracle(dtype, easy, seed):
    # norms on both sides of [l_a, u_a]: the clamp must cut the norm gradient there, as the official code
    cos, labels, norms = random_case(seed=seed, lo=-0.99, hi=0.99, norm_range=(3.0, 130.0))
    check_rule(create_rule("magface", easy_margin=easy), oracle_magface(easy_margin=easy), cos, labels, norms,
               dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mag_cosface_oracle(dtype):
    cos, labels, norms = random_case(seed=2, lo=-0.99, hi=0.99, norm_range=(3.0, 130.0))
    check_rule(create_rule("mag_cosface"), oracle_magface(l_m=0.35, lam=150.0, cos_form=True), cos, labels, norms,
               dtype=dtype)


def test_magface_bound_defaults_and_warning():
    assert magface_lambda_bound() == pytest.approx(22.587, abs=1e-3)
    assert magface_lambda_bound(l_m=0.35) == pytest.approx(29.04, abs=1e-2)
    assert head_defaults("magface") == dict(s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lambda_g=35.0,
                                            easy_margin=True)
    assert head_defaults("mag_cosface")["l_m"] == 0.35 and head_defaults("mag_cosface")["lambda_g"] == 150.0
    with pytest.warns(UserWarning, match="below the feasibility bound 22.59"):
        create_rule("magface", lambda_g=20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_rule("magface"), create_rule("mag_cosface")
    with pytest.raises(ValueError, match="l_a < u_a"):
        create_rule("magface", l_a=120.0)


def test_magface_reports_its_loss_components():
    cos, labels, norms = random_case(seed=3, norm_range=(10.0, 110.0))
    out = create_rule("magface").double()(cos, make_ctx(labels), norms)
    assert out.loss.item() == pytest.approx(out.stats["loss_ce"] + 35.0 * out.stats["loss_g"], rel=1e-12)
    assert out.stats["loss_g"] == pytest.approx(float((norms / 110 ** 2 + 1 / norms).mean()), rel=1e-12)
    assert 0.45 <= out.stats["mean_margin"] <= 0.8


# --- LH2Face (reconstruction) ------------------------------------------------------------------------------------

def _lh2_rule(mu, **kw):
    rule = create_rule("lh2face", **{"lambda_pp": 0.0, **kw})
    with torch.no_grad():
        rule.mean_norm.fill_(mu)
        rule.num_updates.fill_(1)
    return rule.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("detach_kappa", [False, True])
def test_lh2face_oracle(dtype, detach_kappa):
    cos, labels, norms = random_case(seed=4, norm_range=(2.0, 30.0))
    rule = _lh2_rule(15.0, detach_kappa=detach_kappa)
    check_rule(rule, oracle_lh2face(15.0, detach_kappa=detach_kappa), cos, labels, norms, dtype=dtype)


def test_lh2face_margin_is_cosface_at_the_mean_norm():
    """A row whose norm equals mu sees CosFace(s = mu, m = 0.35) (without the proxy terms)."""
    cos, labels, _ = random_case(seed=5)
    norms = torch.full((cos.shape[0],), 25.0, dtype=torch.float64)
    rule = _lh2_rule(25.0, lambda_pps=0.0, lambda_pns=0.0)
    want = create_rule("cosface", s=25.0, m=0.35)(cos, make_ctx(labels), norms).loss
    torch.testing.assert_close(rule(cos, make_ctx(labels), norms).loss, want)


def test_lh2face_norm_statistic():
    cos, labels, norms = random_case(batch=6, seed=6)
    labels[0] = -1
    valid_mean = float(norms[1:].mean())
    rule = create_rule("lh2face", lambda_pp=0.0, t_alpha=0.5).double()
    out = rule.eval()(cos, make_ctx(labels), norms)  # never trained: the batch mean, nothing stored
    assert out.stats["mean_norm"] == pytest.approx(valid_mean) and int(rule.num_updates) == 0
    rule.train()(cos, make_ctx(labels), norms)  # the first training batch sets the EMA
    assert float(rule.mean_norm) == pytest.approx(valid_mean) and int(rule.num_updates) == 1
    rule(cos, make_ctx(labels), norms * 3)
    assert float(rule.mean_norm) == pytest.approx(0.5 * 3 * valid_mean + 0.5 * valid_mean)
    out = rule.eval()(cos, make_ctx(labels), norms * 100)
    assert out.stats["mean_norm"] == pytest.approx(2 * valid_mean) and out.stats["margin"] == pytest.approx(
        0.35 * 2 * valid_mean)
    batch = create_rule("lh2face", lambda_pp=0.0, norm_stat="batch").double().train()
    assert batch(cos, make_ctx(labels), norms).stats["mean_norm"] == pytest.approx(valid_mean)
    assert int(batch.num_updates) == 0
    with pytest.raises(ValueError, match="norm_stat"):
        create_rule("lh2face", norm_stat="median")


def test_lh2face_proxy_pair_term_with_centres():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64)
    wn = w / w.norm(dim=1, keepdim=True)
    naive = [max(float(wn[a] @ wn[b]) - 0.1, 0.0) for a in range(5) for b in range(5) if a != b]
    assert proxy_pair_loss(w, 0.1).item() == pytest.approx(sum(naive) / len(naive))
    assert proxy_pair_loss(w[:1]).item() == 0.0

    x = torch.nn.functional.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 2, 2, 4, 0, -1])
    centres = wn.clone().requires_grad_(True)
    cos = x @ centres.t()
    ctx = make_ctx(labels)
    ctx.centres = centres  # the hook a head would set
    rule = _lh2_rule(1.0, lambda_pp=2.0)
    out = rule(cos, ctx, torch.ones(6, dtype=torch.float64))
    want_pp = proxy_pair_loss(wn[[0, 2, 4]], 0.2)
    assert out.stats["loss_pp"] == pytest.approx(want_pp.item())
    base = _lh2_rule(1.0)(cos, make_ctx(labels), torch.ones(6, dtype=torch.float64)).loss
    torch.testing.assert_close(out.loss, base + 2.0 * want_pp)
    grad, = torch.autograd.grad(out.loss, centres)
    assert torch.isfinite(grad).all()


def test_lh2face_without_centres_warns_and_skips_the_pair_term():
    cos, labels, norms = random_case(seed=8)
    with pytest.warns(UserWarning, match="L_pp"):
        out = create_rule("lh2face").double()(cos, make_ctx(labels), norms)
    assert "loss_pp" not in out.stats


def test_lh2face_is_marked_as_a_reconstruction():
    info = head_info("lh2face")
    assert info["reconstructed"] and info["summary"].startswith("Reconstruction:")
    assert info["official"] == "none public"


# --- through the full head ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["adaface", "smaface", "magface", "lh2face"])
def test_heads_train_end_to_end_on_a_separable_toy(name):
    """A few steps of SGD on embeddings and centres lower the loss (a sanity check that the gradients point the
    right way through the whole head, norms included)."""
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=4, embedding_size=8, **({"lambda_pp": 0.0} if name == "lh2face" else {}))
    head.train()
    labels = torch.arange(16) % 4
    emb = (torch.randn(16, 8) * 4 + 20 * torch.eye(4, 8)[labels]).requires_grad_(True)
    opt = torch.optim.SGD([emb, *head.parameters()], lr=0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = head(emb, labels)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0], f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"
