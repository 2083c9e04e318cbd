"""The verdict rule (fr.verdict): each branch, the t interval and the MDD it rests on, and direction "less"."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fr import verdict as V
from fr.eval.stats import mcnemar_test, paired_bootstrap
from fr.power import min_detectable_difference, paired_t_power


def test_interval_above_zero_confirms_with_the_t_interval_and_the_mdd():
    d = [1.0, 1.4, 0.8, 1.1]
    v = V.decide(d)
    assert v.verdict == V.CONFIRMED and v.n == 4
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(d), scale=stats.sem(d))
    assert (v.ci_low, v.ci_high) == pytest.approx((lo, hi))
    assert v.mean == pytest.approx(np.mean(d)) and v.sd == pytest.approx(np.std(d, ddof=1))
    assert v.mdd == pytest.approx(min_detectable_difference(np.std(d, ddof=1), 4))
    assert paired_t_power(v.mdd, v.sd, 4) == pytest.approx(0.8, abs=1e-6)
    assert v.describe().startswith("confirmed: +1.08 pp, 95% CI [+0.68, +1.47], n=4 seeds") and "could have detected ≥" in v.describe()


def test_interval_below_zero_contradicts():
    v = V.decide([-0.9, -1.2, -1.0])
    assert v.verdict == V.CONTRADICTED and v.ci_high < 0


def test_interval_across_zero_is_not_distinguishable_and_carries_the_mdd():
    v = V.decide([0.5, -0.3, 0.2, 0.1, -0.4])
    assert v.verdict == V.NOT_DISTINGUISHABLE
    assert v.ci_low < 0 < v.ci_high
    assert math.isfinite(v.mdd) and v.mdd > abs(v.mean)
    assert "not distinguishable at this scale" in v.describe() and f"{v.mdd:.2f} pp" in v.describe()


def test_a_consistent_but_small_effect_over_two_seeds_is_not_distinguishable():
    # two seeds: t_{0.975,1} = 12.7, so only a very steady difference clears 0
    assert V.decide([0.3, 0.1]).verdict == V.NOT_DISTINGUISHABLE
    assert V.decide([0.30, 0.31]).verdict == V.CONFIRMED


@pytest.mark.parametrize("diffs", [[], [0.7]])
def test_fewer_than_two_paired_seeds_is_not_run(diffs):
    v = V.decide(diffs)
    assert v.verdict == V.NOT_RUN and v.n == len(diffs)
    assert math.isnan(v.mdd) and math.isnan(v.ci_low)
    assert v.describe().startswith("not run")


def test_identical_differences_have_no_mdd():
    v = V.decide([0.0, 0.0, 0.0])
    assert v.verdict == V.NOT_DISTINGUISHABLE and math.isnan(v.mdd)
    assert "MDD not defined" in v.describe()


def test_non_finite_differences_are_refused():
    with pytest.raises(ValueError, match="finite"):
        V.decide([0.1, float("nan")])


def test_paired_differences_keep_shared_seeds_in_points_and_flip_for_less():
    t = {0: 0.80, 1: 0.82, 2: 0.85, 4: float("nan")}
    b = {0: 0.78, 1: 0.83, 3: 0.90, 4: 0.5}
    assert V.paired_differences(t, b) == pytest.approx({0: 2.0, 1: -1.0})
    assert V.paired_differences(t, b, direction="less") == pytest.approx({0: -2.0, 1: 1.0})
    with pytest.raises(ValueError, match="direction"):
        V.paired_differences(t, b, direction="more")


def test_direction_less_confirms_a_treatment_that_is_lower():
    t = {s: 0.90 - 0.01 * (1 + 0.1 * s) for s in range(3)}
    b = {s: 0.90 for s in range(3)}
    assert V.decide(list(V.paired_differences(t, b, direction="less").values())).verdict == V.CONFIRMED
    assert V.decide(list(V.paired_differences(t, b).values())).verdict == V.CONTRADICTED


def test_seed_test_is_mcnemar_and_the_paired_bootstrap_in_points():
    rng = np.random.default_rng(0)
    a = rng.random(600) < 0.85
    b = rng.random(600) < 0.80
    st = V.seed_test(a, b)
    assert st.mcnemar_p == pytest.approx(mcnemar_test(a, b).p_value)
    pb = paired_bootstrap(a, b)
    assert st.diff == pytest.approx(100 * (a.mean() - b.mean()))
    assert (st.ci_low, st.ci_high) == pytest.approx((100 * pb.ci_low, 100 * pb.ci_high))
    less = V.seed_test(a, b, direction="less")
    assert less.diff == pytest.approx(-st.diff) and (less.ci_low, less.ci_high) == pytest.approx(
        (-st.ci_high, -st.ci_low))
    assert less.mcnemar_p == st.mcnemar_p and less.discordant == st.discordant
