"""All-pairs pooled TAR@FAR: the block-wise two-pass scan against sklearn's ROC (and fr.eval.roc) on the same
scores materialised, with ties, caps, cross sets, block sizes and bin counts that stress the bookkeeping; and,
data-marked, a pretrained-free feature (down-sampled pixels) on real LFW faces, block-wise against brute force."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fr.eval.allpairs import ALLPAIRS_FARS, all_pairs_verification, allowed_false_accepts
from fr.eval.roc import tar_at_far

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_self(x, ids, eligible=None):
    """All pairs i < j materialised: (scores, labels) with ineligible same-identity pairs left out."""
    e = _unit(np.asarray(x, dtype=np.float64))
    i, j = np.triu_indices(len(e), 1)
    s = np.einsum("ij,ij->i", e[i], e[j])
    same = ids[i] == ids[j]
    if eligible is None:
        return s, same
    keep = ~same | (eligible[i] & eligible[j])
    return s[keep], same[keep]


def _sklearn_tar(labels, scores, fars, method):
    """TAR read from sklearn.metrics.roc_curve on the full curve (no thinning)."""
    fpr, tpr, _ = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    out = {}
    for f in fars:
        if f < 1 / np.count_nonzero(~labels):
            out[f"{f:.0e}"] = None
            continue
        j = int(np.searchsorted(fpr, f, side="right"))
        if method == "floor" or fpr[j - 1] == f or j == fpr.size:
            out[f"{f:.0e}"] = float(tpr[j - 1])
        else:
            out[f"{f:.0e}"] = float(tpr[j - 1] + (f - fpr[j - 1]) / (fpr[j] - fpr[j - 1]) * (tpr[j] - tpr[j - 1]))
    return out


def _clustered(n=600, d=12, k=50, seed=0, spread=0.9):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, k, n)
    x = rng.normal(size=(k, d))[ids] * spread + rng.normal(size=(n, d))
    return x, ids


@pytest.mark.parametrize("method", ["floor", "interp"])
@pytest.mark.parametrize("block, n_bins", [(64, 32), (97, 4096), (10_000, 2)])
def test_matches_sklearn_roc_on_the_same_scores(method, block, n_bins):
    x, ids = _clustered()
    eligible = np.random.default_rng(1).random(len(ids)) < 0.8
    fars = (1e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.5, 1.0)
    r = all_pairs_verification(x, ids, genuine_eligible=eligible, fars=fars, method=method, block=block,
                               n_bins=n_bins)
    s, y = _brute_self(x, ids, eligible)
    assert (r.n_genuine, r.n_impostor) == (int(y.sum()), int((~y).sum()))
    ref = _sklearn_tar(y, s, fars, method)
    assert r.tar_at_far.keys() == ref.keys()
    for k, v in ref.items():
        assert (r.tar_at_far[k] is None) == (v is None), k
        if v is not None:
            assert r.tar_at_far[k] == pytest.approx(v, abs=1e-12), k
    # fr.eval.roc reads the same curve
    mine = tar_at_far(y, s, [f for f in fars if f >= 1 / (~y).sum()], method=method)
    assert all(r.tar_at_far[k] == pytest.approx(v, abs=1e-12) for k, v in mine.items())
    # what each FAR rests on, and the operating point really is at or below the target
    n = r.n_impostor
    for f in fars:
        k = f"{f:.0e}"
        if r.tar_at_far[k] is None:
            assert f < 1 / n and r.impostors_at_far[k] == 0
        else:
            assert r.impostors_at_far[k] == allowed_false_accepts(f, n)
            assert r.achieved_far[k] <= f
            if r.threshold_at_far[k] is not None:
                t, eps = r.threshold_at_far[k], 1e-12   # brute-force dot products differ in the last bits
                assert np.count_nonzero(s[~y] > t + eps) / n == r.achieved_far[k]
                assert np.count_nonzero(s[~y] >= t - eps) / n > f  # accepting the threshold itself overshoots
                if method == "floor":
                    assert np.count_nonzero(s[y] > t + eps) / r.n_genuine == r.tar_at_far[k]
    assert r.n_passes in (2, 3)


def test_ties_are_exact():
    """Features with few distinct cosines (0, 1/2, 1): thresholds fall inside runs of tied scores."""
    rng = np.random.default_rng(3)
    x = np.zeros((300, 6))
    for row in x:
        row[rng.choice(6, 2, replace=False)] = 1.0
    ids = (x @ (2.0 ** np.arange(6))).astype(int) % 7   # identities correlated with the pattern
    s, y = _brute_self(x, ids)
    fars = (1e-3, 1e-2, 0.05, 0.1, 0.3)
    for method in ("floor", "interp"):
        r = all_pairs_verification(x, ids, fars=fars, method=method, block=41, n_bins=8)
        ref = _sklearn_tar(y, s, fars, method)
        assert r.tar_at_far == pytest.approx(ref, abs=1e-12)
    assert r.tar_at_far["3e-01"] != _sklearn_tar(y, s, fars, "floor")["3e-01"]  # interp differs inside a tie


def test_cross_sets_match_brute_force():
    x, ids = _clustered(n=500, seed=4)
    a, ia, b, ib = x[:320], ids[:320], x[320:], ids[320:]
    r = all_pairs_verification(a, ia, b, ib, block=70, n_bins=128)
    s = (_unit(a) @ _unit(b).T).ravel()
    y = (ia[:, None] == ib[None, :]).ravel()
    assert r.n_genuine == y.sum() and r.n_impostor == (~y).sum() and r.n_images == 500
    assert r.tar_at_far == pytest.approx(_sklearn_tar(y, s, ALLPAIRS_FARS, "floor"), abs=1e-12)


def test_result_is_labelled_and_json_ready():
    x, ids = _clustered(n=200)
    r = all_pairs_verification(x, ids, name="toy", title="IJB-style all-pairs on toy (stand-in)",
                               sha256="ab" * 32, settings={"cap": 10})
    d = json.loads(json.dumps(r.to_dict()))
    assert d["protocol"] == "all-pairs pooled TAR@FAR/cos/floor" and d["sha256"] == "ab" * 32
    assert d["settings"] == {"block": 2048, "n_bins": 65536, "cap": 10}
    assert d["tar_at_far"]["1e-06"] is None and d["far_resolution"] == 1 / r.n_impostor
    roc = d["roc"]
    assert roc["far"][-1] == 1.0 and roc["tar"][-1] == 1.0
    assert np.all(np.diff(roc["far"]) >= 0) and np.all(np.diff(roc["tar"]) >= 0)
    assert 0.5 < d["auc"] <= 1.0
    assert "unresolvable: 1e-06" in r.summary() and "VAL" not in r.summary()


def test_roc_points_are_exact_points_of_the_curve():
    x, ids = _clustered(n=300, seed=5)
    r = all_pairs_verification(x, ids, n_bins=256)
    s, y = _brute_self(x, ids)
    fpr, tpr, _ = sklearn_metrics.roc_curve(y, s, drop_intermediate=False)
    points = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    assert len(r.roc["far"]) > 10
    for far, tar in zip(r.roc["far"], r.roc["tar"], strict=True):   # each is a point of the full ROC (some threshold)
        assert (far, tar) in points, (far, tar)


def test_bad_input_is_refused():
    x, ids = _clustered(n=50)
    with pytest.raises(ValueError, match="nearest"):
        all_pairs_verification(x, ids, method="nearest")
    with pytest.raises(ValueError, match="target FAR"):
        all_pairs_verification(x, ids, fars=(0.0,))
    with pytest.raises(ValueError, match="identities for 50 features"):
        all_pairs_verification(x, ids[:-1])
    with pytest.raises(ValueError, match="genuine and impostor"):
        all_pairs_verification(x, np.arange(50))
    z = x.copy()
    z[7] = 0
    with pytest.raises(ValueError, match="row 7"):
        all_pairs_verification(z, ids)
    with pytest.raises(ValueError, match="boolean mask"):
        all_pairs_verification(x, ids, genuine_eligible=np.ones(50))


def test_allowed_false_accepts_uses_the_floating_point_comparison():
    assert allowed_false_accepts(1e-3, 1000) == 1
    assert allowed_false_accepts(0.3, 10) == 3        # 3 / 10 <= 0.3 in floating point although 0.3 * 10 < 3
    assert allowed_false_accepts(1e-6, 999_999) == 0
    assert allowed_false_accepts(1.0, 17) == 17
    for n in (7, 1000, 87_552_000):
        for f in ALLPAIRS_FARS:
            k = allowed_false_accepts(f, n)
            assert k / n <= f and (k + 1) / n > f


# --- real faces ----------------------------------------------------------------------------------------------

@pytest.mark.data
def test_pixel_features_on_lfw_block_wise_equal_brute_force():
    """Down-sampled grey pixels (no training) of 1,500 LFW images: block-wise scan == materialised ROC."""
    from fr.data.identification import load_faces, load_manifest
    from fr.eval.calibration import PixelFeatures
    from fr.eval.embed import extract_embeddings
    from fr.paths import find_data

    p = find_data("identification/MANIFEST.tsv")
    if p is None:
        pytest.skip("identification/ not under the data root (set FR_DATA=/work/shared/datasets)")
    lfw = load_manifest(p.parent).select("lfw")
    codes = lfw.labels()[0]
    # the 1,500 first rows: many identities, one large (George_W_Bush is later; this keeps it cheap)
    rows = np.arange(1500)
    model = PixelFeatures(grid=8, input_size=32)
    emb, _ = extract_embeddings(model, load_faces(lfw, rows, size=32, cache=False), flip="sum")
    ids = codes[rows]
    cap = np.zeros(rows.size, dtype=bool)
    for c in np.unique(ids):
        cap[np.flatnonzero(ids == c)[:10]] = True
    r = all_pairs_verification(emb, ids, genuine_eligible=cap, block=256)
    s, y = _brute_self(emb.numpy(), ids, cap)
    assert r.n_genuine == y.sum() > 100 and r.n_impostor == (~y).sum()
    assert r.tar_at_far == pytest.approx(_sklearn_tar(y, s, ALLPAIRS_FARS, "floor"), abs=1e-12)
    assert 0.0 < r.tar_at_far["1e-01"] < 0.9    # pixels carry some identity, far from all


def test_a_misplaced_locating_pass_costs_a_pass_not_exactness(monkeypatch):
    """If the float32 locating pass points at the wrong bins, the float64 passes still find the thresholds."""
    import fr.eval.allpairs as ap

    run = ap._PairScan.run

    def shifted(self, wanted, *, locate=False):
        res = run(self, wanted, locate=locate)
        if locate:
            res.hist = np.roll(res.hist, 7)
        return res

    monkeypatch.setattr(ap._PairScan, "run", shifted)
    x, ids = _clustered(n=300, seed=7)
    fars = (1e-3, 1e-2, 1e-1)
    r = all_pairs_verification(x, ids, fars=fars, n_bins=512, block=64)
    s, y = _brute_self(x, ids)
    assert r.n_passes == 3 and r.tar_at_far == pytest.approx(_sklearn_tar(y, s, fars, "floor"), abs=1e-12)
    with pytest.raises(RuntimeError, match="kept moving"):
        all_pairs_verification(x, ids, fars=fars, n_bins=512, block=64, max_passes=2)
