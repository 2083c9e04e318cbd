"""Closed-set rank-N identification: hand-built fixture and an argsort reference (AdaFace's TinyFace helper)."""
from __future__ import annotations

import numpy as np
import pytest

from fr.eval import cmc, evaluate_identification, probe_ranks


def _angle(deg):
    r = np.deg2rad(deg)
    return [np.cos(r), np.sin(r)]


def test_hand_built_ranks():
    # gallery: identity 1 at 0 deg, identity 2 at 90 deg, identity 1 again at 180 deg; distractors at 10, 20 deg
    gallery = np.array([_angle(0), _angle(90), _angle(180)])
    glab = np.array([1, 2, 1])
    distract = np.array([_angle(10), _angle(20)])
    probes = np.array([_angle(2), _angle(16), _angle(170), _angle(60)])
    plab = np.array([1, 1, 1, 2])
    # probe at 2 deg (id 1): best genuine 0 deg (2 deg away), nothing closer -> rank 1
    # probe at 16 deg (id 1): distractors at 20 and 10 (4, 6 deg) beat genuine 0 deg (16) -> rank 3
    # probe at 170 deg (id 1): genuine 180 deg (10 deg away), nothing closer -> rank 1
    # probe at 60 deg (id 2): genuine 90 deg (30 away); distractor 20 (40 away) and others farther -> rank 1
    r = probe_ranks(probes, plab, gallery, glab, distract)
    assert r.tolist() == [1, 3, 1, 1]
    res = evaluate_identification(probes, plab, gallery, glab, distract, ranks=(1, 2, 3))
    assert res.cmc == {1: 0.75, 2: 0.75, 3: 1.0}
    assert res.n_distractors == 2 and res.n_gallery == 3 and res.rank1 == 0.75
    # without distractors the second probe is rank 1
    assert probe_ranks(probes, plab, gallery, glab).tolist() == [1, 1, 1, 1]


def test_ties_count_against_the_probe():
    gallery = np.array([[1.0, 0.0]])
    r = probe_ranks(np.array([[1.0, 0.0]]), [5], gallery, [5], distractor_feats=np.array([[2.0, 0.0]]))
    assert r.tolist() == [2]


def _adaface_reference(probe, plab, gallery, glab, distract, ranks):
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    g = np.concatenate([unit(gallery), unit(distract)])
    gl = np.concatenate([glab, -100 * np.ones(len(distract), dtype=int)])
    index = np.argsort(-(unit(probe) @ g.T), axis=1)
    return {k: float(np.mean(np.any(gl[index[:, :k]] == plab[:, None], axis=1))) for k in ranks}


@pytest.mark.parametrize("seed", range(3))
def test_matches_argsort_reference(seed):
    rng = np.random.default_rng(seed)
    n_id, dim = 50, 16
    centres = rng.normal(size=(n_id, dim))
    glab = np.repeat(np.arange(n_id), 2)
    gallery = centres[glab] + rng.normal(size=(glab.size, dim))
    plab = rng.integers(0, n_id, 300)
    probes = centres[plab] + 1.5 * rng.normal(size=(300, dim))
    distract = rng.normal(size=(500, dim)) * 1.3
    res = evaluate_identification(probes, plab, gallery, glab, distract, ranks=(1, 5, 20))
    assert res.cmc == _adaface_reference(probes, plab, gallery, glab, distract, (1, 5, 20))
    assert 0.0 < res.cmc[1] < res.cmc[20] <= 1.0
    curve = cmc(res.ranks)
    assert curve[0] == res.cmc[1] and curve[-1] == 1.0 and np.all(np.diff(curve) >= 0)


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(9)
    g, gl = rng.normal(size=(40, 8)), np.arange(40) % 10
    p, pl = rng.normal(size=(33, 8)), np.arange(33) % 10
    np.testing.assert_array_equal(probe_ranks(p, pl, g, gl, chunk=4), probe_ranks(p, pl, g, gl, chunk=1000))


def test_open_set_probe_is_an_error():
    with pytest.raises(ValueError, match="no gallery image"):
        probe_ranks(np.eye(2), [0, 7], np.eye(2), [0, 1])
    with pytest.raises(ValueError, match="dimension"):
        probe_ranks(np.eye(2), [0, 1], np.eye(3)[:, :3][:2], [0, 1])
