"""Minimum detectable difference of a seed-paired t-test, checked against a simulation and known values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fr.power import min_detectable_difference, paired_t_power, summarise_seeds


def test_power_at_the_mdd_is_the_requested_power_and_grows_with_the_difference():
    for n in (3, 5, 10):
        mdd = min_detectable_difference(1.0, n)
        assert paired_t_power(mdd, 1.0, n) == pytest.approx(0.8, abs=1e-8)
        assert paired_t_power(mdd / 2, 1.0, n) < 0.8 < paired_t_power(2 * mdd, 1.0, n)
    assert paired_t_power(0.0, 1.0, 5) == pytest.approx(0.05, abs=1e-12)  # no effect: the test's level


def test_mdd_matches_a_monte_carlo_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(0)
    n, sd = 5, 0.7
    mdd = min_detectable_difference(sd, n)
    d = rng.normal(mdd, sd, size=(40_000, n))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    assert (p < 0.05).mean() == pytest.approx(0.8, abs=0.01)


def test_mdd_scales_with_the_spread_shrinks_with_seeds_and_beats_the_normal_approximation_honestly():
    assert min_detectable_difference(2.0, 5) == pytest.approx(2 * min_detectable_difference(1.0, 5))
    assert min_detectable_difference(1.0, 3) > min_detectable_difference(1.0, 5) > min_detectable_difference(1.0, 30)
    # for many seeds it approaches the normal approximation (z_.975 + z_.8) * sd / sqrt(n) from above
    normal = (1.959964 + 0.841621) / math.sqrt(200)
    assert normal < min_detectable_difference(1.0, 200) < 1.01 * normal
    assert math.isnan(min_detectable_difference(float("nan"), 5))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        min_detectable_difference(1.0, 1)


def test_seed_summary_uses_the_sample_std_and_drops_missing_values():
    s = summarise_seeds([1.0, 2.0, 3.0, float("nan")])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert math.isnan(summarise_seeds([4.0]).std) and summarise_seeds([]).n == 0
