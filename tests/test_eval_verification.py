"""Verification protocols against naive re-implementations of the reference procedures.

The insightface reference below is written the way ``eval/verification.py`` does it (a loop over the threshold
grid with ``calculate_accuracy``, ``KFold(10, shuffle=False)``, ``np.argmax``, ``np.mean``/``np.std``); the
FaceX-Zoo one as its ``getThreshold``/``test_one_model``. Ours is vectorised; both must agree exactly.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from fr.eval import (PROTOCOLS, Protocol, contiguous_folds, get_protocol, pair_scores, tar_at_far,
                     verify_embeddings)

KFold = pytest.importorskip("sklearn.model_selection").KFold


def make_pairs(seed, n_pairs=600, dim=16, signal=0.8):
    """Interleaved embeddings [a0, b0, ...]: same pairs share an identity vector plus noise."""
    rng = np.random.default_rng(seed)
    issame = rng.random(n_pairs) < 0.5
    ids = rng.normal(size=(n_pairs, dim))
    other = rng.normal(size=(n_pairs, dim))
    a = ids + rng.normal(size=(n_pairs, dim)) / signal
    b = np.where(issame[:, None], ids, other) + rng.normal(size=(n_pairs, dim)) / signal
    emb = np.empty((2 * n_pairs, dim), dtype=np.float32)
    emb[0::2], emb[1::2] = a, b
    return emb, issame


# --- naive references -------------------------------------------------------------------------------------

def insightface_reference(emb, issame, nrof_folds=10):
    emb = emb / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    e1, e2 = emb[0::2], emb[1::2]
    thresholds = np.arange(0, 4, 0.01)
    dist = np.sum(np.square(np.subtract(e1, e2)), 1)

    def calculate_accuracy(threshold, dist, actual_issame):
        predict_issame = np.less(dist, threshold)
        tp = np.sum(np.logical_and(predict_issame, actual_issame))
        tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
        return float(tp + tn) / dist.size

    accuracy, best = np.zeros(nrof_folds), np.zeros(nrof_folds)
    for fold_idx, (train_set, test_set) in enumerate(KFold(n_splits=nrof_folds, shuffle=False).split(
            np.arange(len(issame)))):
        acc_train = np.zeros(len(thresholds))
        for threshold_idx, threshold in enumerate(thresholds):
            acc_train[threshold_idx] = calculate_accuracy(threshold, dist[train_set], issame[train_set])
        best_threshold_index = np.argmax(acc_train)
        best[fold_idx] = thresholds[best_threshold_index]
        accuracy[fold_idx] = calculate_accuracy(thresholds[best_threshold_index], dist[test_set], issame[test_set])
    return accuracy, best


def facexzoo_reference(emb, issame, num_thresholds=1000):
    emb = emb / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    score = np.sum(emb[0::2] * emb[1::2], 1)
    label = issame.astype(int)
    subsets_score, subsets_label = np.split(score, 10), np.split(label, 10)
    accu = []
    for i in range(10):
        tr_s = np.concatenate([subsets_score[j] for j in range(10) if j != i])
        tr_l = np.concatenate([subsets_label[j] for j in range(10) if j != i])
        pos, neg = tr_s[tr_l == 1], tr_s[tr_l == 0]
        step = (np.max(tr_s) - np.min(tr_s)) / num_thresholds
        tl = np.min(tr_s) + step * np.array(range(1, num_thresholds + 1))
        fn = np.array([np.sum(pos < t) for t in tl])
        fp = np.array([np.sum(neg >= t) for t in tl])
        thr = tl[np.argmax((pos.size - fn) / pos.size - fp / neg.size)]
        ts, tlab = subsets_score[i], subsets_label[i]
        accu.append((np.sum(ts[tlab == 1] >= thr) + np.sum(ts[tlab == 0] < thr)) / ts.size)
    return np.mean(accu), np.std(accu, ddof=1) / np.sqrt(10)


# --- tests ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("signal", [0.4, 0.8, 2.0])
def test_insightface_protocol_matches_reference(seed, signal):
    emb, issame = make_pairs(seed, signal=signal)
    ref_acc, ref_thr = insightface_reference(emb, issame)
    r = verify_embeddings(emb, issame, "insightface", flip="sum")
    np.testing.assert_array_equal(r.fold_accuracies, ref_acc)
    np.testing.assert_array_equal(r.thresholds, ref_thr)
    assert r.accuracy == np.mean(ref_acc)
    assert r.spread == np.std(ref_acc)            # population std, as insightface
    assert r.spread_kind == "std"
    assert r.protocol == "insightface/sqL2/10fold/flip-sum"
    assert r.n_correct == round(r.accuracy * r.n_pairs)


def test_insightface_uneven_folds_match_reference():
    emb, issame = make_pairs(7, n_pairs=607)
    ref_acc, _ = insightface_reference(emb, issame)
    r = verify_embeddings(emb, issame, "insightface")
    np.testing.assert_array_equal(r.fold_accuracies, ref_acc)
    assert r.fold_sizes == (61,) * 7 + (60,) * 3


@pytest.mark.parametrize("seed", range(3))
def test_facexzoo_protocol_matches_reference(seed):
    emb, issame = make_pairs(seed, signal=0.6)
    mean, stderr = facexzoo_reference(emb, issame)
    r = verify_embeddings(emb, issame, "facexzoo", flip="none")
    assert r.accuracy == pytest.approx(mean, abs=1e-12)
    assert r.spread == pytest.approx(stderr, abs=1e-12)
    assert r.protocol == "facexzoo/cos/10fold/flip-none"


@pytest.mark.parametrize("seed", range(3))
def test_cosine_threshold_is_train_optimal(seed):
    """The exact rule's threshold reaches the best train accuracy any threshold can (brute force over scores)."""
    emb, issame = make_pairs(seed, signal=0.6)
    r = verify_embeddings(emb, issame, "cosine")
    cos = pair_scores(emb, score="cos")
    for test, t in zip(contiguous_folds(issame.size, 10), r.thresholds, strict=True):
        train = np.setdiff1d(np.arange(issame.size), test)
        c, y = cos[train], issame[train]
        best = max(np.mean((c > u) == y) for u in np.r_[c, c.min() - 1])   # t at each score = every split
        assert np.mean((c > t) == y) == best
    assert r.spread_kind == "stderr"
    assert r.spread == pytest.approx(np.std(r.fold_accuracies, ddof=1) / math.sqrt(10))


def test_std_versus_stderr_on_same_folds():
    emb, issame = make_pairs(3, signal=0.5)
    a = verify_embeddings(emb, issame, "insightface")
    b = verify_embeddings(emb, issame, get_protocol("insightface")).fold_accuracies
    assert a.fold_accuracies == b
    k = 10
    std0 = np.std(a.fold_accuracies)
    stderr = np.std(a.fold_accuracies, ddof=1) / np.sqrt(k)
    # the two conventions differ by sqrt(k - 1) exactly: std(ddof=0) = stderr * sqrt(k-1)
    assert std0 == pytest.approx(stderr * math.sqrt(k - 1))
    custom = Protocol("insightface-se", score="sqL2", threshold_rule="grid", spread="stderr")
    assert verify_embeddings(emb, issame, custom).spread == pytest.approx(stderr)


def test_folds_are_contiguous_like_kfold():
    for n, k in [(6000, 10), (607, 10), (25, 5), (11, 3)]:
        ours = contiguous_folds(n, k)
        ref = [test for _, test in KFold(k, shuffle=False).split(np.arange(n))]
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_array_equal(a, b)
            assert np.all(np.diff(a) == 1)
    with pytest.raises(ValueError, match="folds"):
        contiguous_folds(5, 10)


def test_fold_locality():
    """Flipping the labels of pairs in fold 3 only changes fold 3's accuracy and the thresholds of the others
    (fold 3 is in their training data) -- the held-out fold is exactly the contiguous block."""
    emb, issame = make_pairs(1, signal=3.0)
    r = verify_embeddings(emb, issame, "insightface")
    fold3 = contiguous_folds(issame.size, 10)[3]
    corrupted = issame.copy()
    corrupted[fold3] = ~corrupted[fold3]
    r2 = verify_embeddings(emb, corrupted, "insightface")
    assert r2.fold_accuracies[3] == pytest.approx(1 - r.fold_accuracies[3])
    np.testing.assert_array_equal(r.correct[fold3], ~r2.correct[fold3])


def test_hand_computed_tiny_case():
    """4 pairs, 2 folds, cosine rule. Scores: same pairs 0.9, 0.2; different pairs 0.5, -0.3."""
    def vec(c):
        return [1.0, 0.0], [c, math.sqrt(1 - c * c)]
    rows = []
    for c in (0.9, 0.5, 0.2, -0.3):
        rows += vec(c)
    issame = np.array([True, False, True, False])
    p = Protocol("tiny", score="cos", threshold_rule="exact", spread="std", n_folds=2)
    r = verify_embeddings(np.array(rows), issame, p)
    # fold 0 = pairs (0.9 same, 0.5 diff); trained on (0.2 same, -0.3 diff): t = midpoint -0.05 -> both
    # test pairs "same": 1/2. fold 1 trained on (0.9, 0.5): t = 0.7 -> 0.2 "diff" (wrong), -0.3 "diff": 1/2.
    assert r.thresholds == pytest.approx((-0.05, 0.7))
    assert r.fold_accuracies == (0.5, 0.5)
    np.testing.assert_array_equal(r.correct, [True, False, False, True])


def test_tar_at_far_uses_all_pairs():
    emb, issame = make_pairs(2, n_pairs=1000, signal=0.7)
    r = verify_embeddings(emb, issame, "insightface", fars=(1e-2, 1e-1), tar_method="interp")
    cos = pair_scores(emb, score="cos")
    expected = tar_at_far(issame, cos, (1e-2, 1e-1), method="interp")
    assert r.tar_at_far == pytest.approx(expected, abs=1e-12)
    assert r.far_resolution == pytest.approx(1 / np.count_nonzero(~issame))
    skm = pytest.importorskip("sklearn.metrics")
    assert r.auc == pytest.approx(skm.roc_auc_score(issame, cos), abs=1e-9)


def test_deterministic_and_serialisable():
    emb, issame = make_pairs(5)
    a = verify_embeddings(emb, issame, "cosine", flip="sum", name="toy", sha256="ab" * 32, norms=np.ones(1200))
    b = verify_embeddings(emb.copy(), issame.copy(), "cosine", flip="sum", name="toy", sha256="ab" * 32,
                          norms=np.ones(1200))
    assert a == b
    d = json.loads(json.dumps(a.to_dict()))
    assert d["protocol"] == "cosine/cos/10fold/flip-sum"
    assert d["sha256"] == "ab" * 32 and d["mean_norm"] == 1.0 and d["n_pairs"] == 600
    assert len(d["fold_accuracies"]) == 10 and "correct" not in d
    assert "toy" in a.summary() and "stderr" in a.summary()


def test_accepts_torch_and_raw_scale():
    torch = pytest.importorskip("torch")
    emb, issame = make_pairs(4)
    a = verify_embeddings(emb, issame)
    b = verify_embeddings(torch.from_numpy(emb) * 37.0, torch.from_numpy(issame))
    assert a.fold_accuracies == b.fold_accuracies


def test_n_folds_override_and_presets():
    emb, issame = make_pairs(6)
    r = verify_embeddings(emb, issame, "insightface", n_folds=5)
    assert r.n_folds == 5 and r.protocol.startswith("insightface/sqL2/5fold/")
    assert set(PROTOCOLS) >= {"insightface", "cosine", "facexzoo"}


def test_bad_inputs_are_named():
    emb, issame = make_pairs(0, n_pairs=40)
    with pytest.raises(ValueError, match=r"\(80, D\)"):
        verify_embeddings(emb[:-2], issame)
    with pytest.raises(KeyError, match="insightface"):
        verify_embeddings(emb, issame, "lfw-official")
    bad = emb.copy()
    bad[3] = 0
    with pytest.raises(ValueError, match="row 3"):
        verify_embeddings(bad, issame)
    with pytest.raises(ValueError, match="tar_method"):
        verify_embeddings(emb, issame, tar_method="closest")
    with pytest.raises(ValueError, match="cosine"):
        Protocol("x", score="sqL2", threshold_rule="exact", spread="std")


@dataclass
class _StandInSet:
    """Stands in for fr.data.VerificationSet (name, images, issame, sha256)."""
    name: str
    images: object
    issame: np.ndarray
    sha256: str


def test_evaluate_verification_with_stand_in_set():
    torch = pytest.importorskip("torch")
    pytest.importorskip("fr.data.transforms")
    from fr.eval import evaluate_verification

    class Spec:
        size, color, mean, std = (8, 8), "RGB", (0.5,) * 3, (0.5,) * 3

    class Pixels(torch.nn.Module):
        """Embeds an image as its pixels: same pairs are near-identical images."""
        input_spec = Spec()

        def forward(self, x):
            e = x.flatten(1)
            return e, e.norm(dim=1)

    g = torch.Generator().manual_seed(0)
    n = 60
    issame = torch.rand(n, generator=g) < 0.5
    a = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    other = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    b = torch.where(issame[:, None, None, None], a, other)
    images = torch.stack([a, b], 1).reshape(2 * n, 3, 8, 8)
    vset = _StandInSet("toy", images, issame.numpy(), "cd" * 32)
    r = evaluate_verification(Pixels(), vset, protocol="insightface", flip="none", batch_size=16)
    assert r.accuracy == 1.0 and r.spread == 0.0
    assert r.protocol == "insightface/sqL2/10fold/flip-none" and r.sha256 == "cd" * 32 and r.name == "toy"
    assert r.mean_norm > 0
