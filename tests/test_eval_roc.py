"""ROC and TAR@FAR against scikit-learn and against insightface's IJB reading, re-implemented naively."""
from __future__ import annotations

import numpy as np
import pytest

from fr.eval.roc import auc, far_key, far_resolution, roc_curve, tar_at_far

sk_metrics = pytest.importorskip("sklearn.metrics")


def _data(seed, n=400, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    s = rng.normal(size=n) + 1.5 * y
    if ties:
        s = np.round(s, 1)          # many tied scores with mixed labels
    return y, s


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_matches_sklearn(seed, ties, drop):
    y, s = _data(seed, ties=ties)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=drop)
    rf, rt, rth = sk_metrics.roc_curve(y, s, drop_intermediate=drop)
    np.testing.assert_array_equal(fpr, rf)
    np.testing.assert_array_equal(tpr, rt)
    np.testing.assert_array_equal(thr, rth)


def _insightface_nearest(y, s, fars):
    """eval_ijbc.py: roc_curve, np.flipud both, then min(zip(|fpr - x|, range)) per target."""
    fpr, tpr, _ = sk_metrics.roc_curve(y, s)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    out = []
    for x in fars:
        _, i = min(zip(abs(fpr - x), range(len(fpr)), strict=True))
        out.append(tpr[i])
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_nearest_matches_insightface_reading(seed, ties):
    y, s = _data(seed, n=3000, ties=ties)
    fars = (1e-4, 1e-3, 3e-3, 1e-2, 0.05, 1e-1, 0.5)
    got = tar_at_far(y, s, fars, method="nearest")
    assert list(got.values()) == pytest.approx(_insightface_nearest(y, s, fars), abs=0)


def test_tar_methods_hand_computed():
    # 4 impostors (scores 0.9, 0.5, 0.3, 0.1), 4 genuine (0.95, 0.8, 0.6, 0.2)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    s = np.array([0.9, 0.5, 0.3, 0.1, 0.95, 0.8, 0.6, 0.2])
    # full ROC: (0,0) (0,.25) (.25,.25) (.25,.5) (.25,.75) (.5,.75) (.75,.75) (.75,1) (1,1)
    floor = tar_at_far(y, s, (0.1, 0.25, 0.4, 1.0), method="floor")
    assert list(floor.values()) == [0.25, 0.75, 0.75, 1.0]
    interp = tar_at_far(y, s, (0.1, 0.25, 0.4), method="interp")
    # at 0.1: between (0, .25) and (.25, .25) -> .25; at 0.25: top of the vertical -> .75; 0.4: flat at .75
    assert list(interp.values()) == pytest.approx([0.25, 0.75, 0.75])
    # nearest to 0.1 is FPR 0 (top of that column = 0.25); to 0.2 is FPR 0.25 (top = 0.75)
    near = tar_at_far(y, s, (0.1, 0.2), method="nearest")
    assert list(near.values()) == [0.25, 0.75]
    assert far_resolution(y) == 0.25


def test_interp_on_diagonal_segment():
    # tied scores with one genuine and one impostor make a diagonal ROC segment: interp follows it
    y = np.array([1, 0, 1, 0], dtype=bool)
    s = np.array([0.9, 0.5, 0.5, 0.1])
    # ROC: (0,0) (0,.5) (.5,1) (1,1)
    assert tar_at_far(y, s, (0.25,), method="interp")[far_key(0.25)] == pytest.approx(0.75)
    assert tar_at_far(y, s, (0.25,), method="floor")[far_key(0.25)] == 0.5


@pytest.mark.parametrize("seed", range(3))
def test_auc_matches_sklearn(seed):
    y, s = _data(seed, ties=True)
    assert auc(y, s) == pytest.approx(sk_metrics.roc_auc_score(y, s), rel=1e-12)


def test_keys_and_errors():
    assert far_key(1e-3) == "1e-03" and far_key(0.1) == "1e-01"
    y, s = _data(0)
    with pytest.raises(ValueError, match="method"):
        tar_at_far(y, s, method="closest")
    with pytest.raises(ValueError, match="FAR"):
        tar_at_far(y, s, (0.0,))
    with pytest.raises(ValueError, match="genuine and impostor"):
        roc_curve(np.ones(4, bool), np.arange(4.0))
    with pytest.raises(ValueError, match="non-finite"):
        roc_curve(np.array([1, 0]), np.array([np.nan, 0.0]))
