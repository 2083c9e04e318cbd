"""Confidence intervals and paired tests: exact values, references, and calibration sanity."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fr.eval.stats import (betainc, binom_cdf_half, bootstrap_accuracy_ci, compare, fold_ci, mcnemar_test,
                           paired_bootstrap, t_cdf, t_quantile)

# two-sided 95% and 99% critical values of Student's t (standard printed tables, 3 decimals)
T_TABLE = {(1, 0.975): 12.706, (2, 0.975): 4.303, (5, 0.975): 2.571, (9, 0.975): 2.262, (9, 0.995): 3.250,
           (30, 0.975): 2.042, (120, 0.975): 1.980, (4, 0.95): 2.132}


@pytest.mark.parametrize("key", sorted(T_TABLE))
def test_t_quantile_matches_table(key):
    df, p = key
    assert t_quantile(p, df) == pytest.approx(T_TABLE[key], abs=6e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df), abs=1e-12)


def test_t_quantile_exact_cases_and_normal_limit():
    # df=1 is Cauchy: q = tan(pi (p - 1/2)); df=2 has q = (2p-1) / sqrt(2 p (1-p))
    for p in (0.6, 0.9, 0.975, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)
    assert t_cdf(0.0, 7) == 0.5 and t_quantile(0.5, 3) == 0.0


def test_t_against_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    for df in (1, 2.5, 3, 9, 29, 200):
        for p in (0.55, 0.8, 0.95, 0.975, 0.995, 0.9999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8, abs=1e-10)
    for a, b, x in [(0.5, 0.5, 0.3), (4.5, 0.5, 0.9), (10, 3, 0.2), (0.7, 20, 0.05)]:
        assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10)


def test_fold_ci():
    accs = np.array([0.99, 0.995, 0.985, 1.0, 0.99, 0.995, 0.98, 0.99, 1.0, 0.995])
    ci = fold_ci(accs)
    half = 2.2621571627409915 * accs.std(ddof=1) / math.sqrt(10)
    assert ci.estimate == pytest.approx(accs.mean())
    assert (ci.low, ci.high) == pytest.approx((accs.mean() - half, accs.mean() + half), rel=1e-9)
    assert fold_ci(accs, level=0.99).high > ci.high
    with pytest.raises(ValueError, match="at least 2"):
        fold_ci([0.9])


def test_bootstrap_ci_deterministic_and_calibrated():
    rng = np.random.default_rng(0)
    correct = rng.random(6000) < 0.97
    a = bootstrap_accuracy_ci(correct, seed=1)
    assert a == bootstrap_accuracy_ci(correct, seed=1)
    assert a != bootstrap_accuracy_ci(correct, seed=2)
    p = correct.mean()
    se = math.sqrt(p * (1 - p) / correct.size)          # the normal approximation must agree closely
    assert a.low == pytest.approx(p - 1.96 * se, abs=0.25 * se)
    assert a.high == pytest.approx(p + 1.96 * se, abs=0.25 * se)
    assert bootstrap_accuracy_ci(np.ones(100, bool)).low == 1.0


def test_count_bootstrap_equals_index_resampling_in_distribution():
    """Drawing counts (binomial/multinomial) is the same bootstrap as resampling pair indices."""
    rng = np.random.default_rng(3)
    a = rng.random(500) < 0.9
    b = np.where(rng.random(500) < 0.1, ~a, a)
    idx = rng.integers(0, 500, size=(20000, 500))
    naive = (a[idx].mean(1) - b[idx].mean(1))
    ours = paired_bootstrap(a, b, n_boot=20000, seed=4)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    assert ours.ci_low == pytest.approx(lo, abs=0.003) and ours.ci_high == pytest.approx(hi, abs=0.003)


def test_mcnemar_exact_values():
    assert binom_cdf_half(0, 5) == 1 / 32
    assert binom_cdf_half(2, 4) == 11 / 16
    # 10 pairs both right, 5 pairs only A right: p = 2 * P[Bin(5, .5) <= 0] = 2/32
    a = np.r_[np.ones(10, bool), np.ones(5, bool)]
    b = np.r_[np.ones(10, bool), np.zeros(5, bool)]
    t = mcnemar_test(a, b)
    assert (t.a_only, t.b_only) == (5, 0)
    assert t.p_value == pytest.approx(2 / 32)
    assert t.diff == pytest.approx(5 / 15)
    # 3 vs 7 discordant: p = 2 * P[Bin(10, .5) <= 3] = 2 * 176/1024
    a = np.r_[np.ones(3, bool), np.zeros(7, bool)]
    assert mcnemar_test(a, ~a).p_value == pytest.approx(2 * 176 / 1024)
    assert mcnemar_test(np.r_[a, np.ones(5000, bool)], np.r_[~a, np.ones(5000, bool)]).p_value \
        == pytest.approx(2 * 176 / 1024)        # concordant pairs do not matter


def test_mcnemar_against_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for n01, n10 in [(1, 9), (20, 31), (140, 170), (2000, 2100)]:
        a = np.r_[np.ones(n01, bool), np.zeros(n10, bool), rng.random(50) < 0.5]
        b = np.r_[np.zeros(n01, bool), np.ones(n10, bool), a[n01 + n10:]]
        ref = stats.binomtest(n01, n01 + n10, 0.5).pvalue
        assert mcnemar_test(a, b).p_value == pytest.approx(ref, rel=1e-9)


def test_identical_models_give_p_one():
    correct = np.random.default_rng(0).random(6000) < 0.98
    assert mcnemar_test(correct, correct).p_value == 1.0
    pb = paired_bootstrap(correct, correct)
    assert pb.p_value == 1.0 and pb.diff == 0.0 and pb.ci_low == pb.ci_high == 0.0


def test_clearly_different_models_give_small_p_and_tiny_gaps_do_not():
    rng = np.random.default_rng(1)
    b = rng.random(6000) < 0.95
    a = b.copy()
    fix = np.flatnonzero(~a)[:150]          # A fixes 150 of B's errors: +2.5 points
    a[fix] = True
    for t in (mcnemar_test(a, b), paired_bootstrap(a, b)):
        assert t.p_value < 1e-6 if t.method.startswith("McNemar") else t.p_value < 1e-3
        assert t.diff == pytest.approx(0.025)
    # a 0.05% gap on 6000 pairs (3 pairs, with 20 pairs swapping each way) is noise
    c = b.copy()
    wrong, right = np.flatnonzero(~c), np.flatnonzero(c)
    c[wrong[:23]] = True
    c[right[:20]] = False
    t = mcnemar_test(c, b)
    assert t.diff == pytest.approx(3 / 6000) and t.p_value > 0.5
    pb = paired_bootstrap(c, b, seed=0)
    assert pb.p_value > 0.5 and pb.ci_low < 0 < pb.ci_high


def test_compare_checks_same_pairs():
    class R:
        def __init__(self, correct, sha):
            self.correct, self.sha256 = correct, sha

    c = np.ones(10, bool)
    out = compare(R(c, "a" * 64), R(c, "a" * 64), n_boot=100)
    assert out["mcnemar"].p_value == 1.0 and out["bootstrap"].p_value == 1.0
    with pytest.raises(ValueError, match="sha256"):
        compare(R(c, "a" * 64), R(c, "b" * 64))
    with pytest.raises(ValueError, match="same pairs"):
        mcnemar_test(c, np.ones(11, bool))
