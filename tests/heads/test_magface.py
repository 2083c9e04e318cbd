"""MagFace and Mag-CosFace (fr/heads/magface.py)."""
from __future__ import annotations

import warnings

import pytest

from fr.heads import create_rule, head_defaults
from fr.heads.magface import magface_lambda_bound
from oracles import DTYPES, check_rule, make_ctx, oracle_magface, random_case


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
    assert out.loss.item() == pytest.approx(float(out.stats["loss_ce"]) + 35.0 * float(out.stats["loss_g"]), rel=1e-12)
    assert float(out.stats["loss_g"]) == pytest.approx(float((norms / 110 ** 2 + 1 / norms).mean()), rel=1e-12)
    assert 0.45 <= float(out.stats["mean_margin"]) <= 0.8
