"""IJB-style template verification on hand-built templates and against a naive re-implementation of
insightface's ``image2template_feature`` + ``verification`` + nearest-FPR reading."""
from __future__ import annotations

import numpy as np
import pytest

from fr.eval import evaluate_templates, image_features, template_features, template_pair_scores

sk_metrics = pytest.importorskip("sklearn.metrics")


def test_media_pooling_by_hand():
    # template 7: media 0 holds [1,0] and [0,1] (mean [.5,.5]); media 1 holds [1,0]  -> sum [1.5,.5]
    # averaging all three images instead would give [2/3, 1/3]: a different direction
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    tf, ids = template_features(f, templates=[7, 7, 7, 3], medias=[0, 0, 1, 0])
    assert ids.tolist() == [3, 7]
    np.testing.assert_allclose(tf[1], np.array([3.0, 1.0]) / np.sqrt(10))
    np.testing.assert_allclose(tf[0], [0.0, 1.0])
    s = template_pair_scores(tf, ids, [7, 3], [3, 3])
    np.testing.assert_allclose(s, [1 / np.sqrt(10), 1.0])


def test_media_ids_are_local_to_a_template():
    # the same media id in two templates is pooled separately in each
    f = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    tf, _ = template_features(f, templates=[0, 0, 1], medias=[5, 6, 5])
    np.testing.assert_allclose(tf, [[1 / np.sqrt(2), 1 / np.sqrt(2)], [0.0, 1.0]])


def test_norm_and_detector_flags():
    e = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(image_features(e), [[0.6, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(image_features(e, norm_score=True), e)
    np.testing.assert_allclose(image_features(e, detector_scores=[0.5, 1.0]), [[0.3, 0.4], [0.0, 1.0]])
    with pytest.raises(ValueError, match="detector_scores"):
        image_features(e, detector_scores=[1.0])


def _insightface_reference(img_feats, templates, medias, p1, p2, label, x_labels):
    img_feats = img_feats / np.sqrt(np.sum(img_feats ** 2, -1, keepdims=True))
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for count_template, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_norm_feats = img_feats[ind_t]
        face_medias = medias[ind_t]
        unique_medias, unique_media_counts = np.unique(face_medias, return_counts=True)
        media_norm_feats = []
        for u, ct in zip(unique_medias, unique_media_counts, strict=True):
            (ind_m,) = np.where(face_medias == u)
            if ct == 1:
                media_norm_feats += [face_norm_feats[ind_m]]
            else:
                media_norm_feats += [np.mean(face_norm_feats[ind_m], axis=0, keepdims=True)]
        template_feats[count_template] = np.sum(np.array(media_norm_feats), axis=0)
    template_norm_feats = template_feats / np.linalg.norm(template_feats, axis=1, keepdims=True)
    template2id = np.zeros((max(unique_templates) + 1, 1), dtype=int)
    for count_template, uqt in enumerate(unique_templates):
        template2id[uqt] = count_template
    score = np.zeros((len(p1),))
    for i in range(len(p1)):
        score[i] = np.sum(template_norm_feats[template2id[p1[i]]] * template_norm_feats[template2id[p2[i]]])
    fpr, tpr, _ = sk_metrics.roc_curve(label, score)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    tars = []
    for x in x_labels:
        _, min_index = min(list(zip(abs(fpr - x), range(len(fpr)), strict=True)))
        tars.append(tpr[min_index])
    return score, tars


@pytest.mark.parametrize("seed", range(3))
def test_matches_insightface_procedure(seed):
    rng = np.random.default_rng(seed)
    n_subj, n_tmpl, dim = 30, 120, 8
    centres = rng.normal(size=(n_subj, dim))
    tmpl_subject = rng.integers(0, n_subj, n_tmpl)
    templates, medias, feats = [], [], []
    for t in range(n_tmpl):
        for m in range(rng.integers(1, 4)):
            media_id = 1000 * t + m if rng.random() < 0.8 else m      # some media ids reused across templates
            for _ in range(rng.integers(1, 4)):
                templates.append(t)
                medias.append(media_id)
                feats.append(centres[tmpl_subject[t]] + rng.normal(size=dim))
    templates, medias, feats = np.array(templates), np.array(medias), np.array(feats)
    p1, p2 = rng.integers(0, n_tmpl, 3000), rng.integers(0, n_tmpl, 3000)
    label = tmpl_subject[p1] == tmpl_subject[p2]
    fars = (1e-3, 1e-2, 1e-1)
    ref_scores, ref_tars = _insightface_reference(feats, templates, medias, p1, p2, label, fars)
    res = evaluate_templates(feats, templates, medias, p1, p2, label, fars=fars)
    np.testing.assert_allclose(res.scores, ref_scores, atol=1e-12)
    assert list(res.tar_at_far.values()) == pytest.approx(ref_tars, abs=0)
    assert res.n_templates == n_tmpl and res.n_pairs == 3000
    assert res.auc == pytest.approx(sk_metrics.roc_auc_score(label, ref_scores), abs=1e-9)
    assert 0.5 < res.auc <= 1.0


def test_pair_with_unknown_template_is_named():
    tf, ids = template_features(np.eye(2), [0, 1], [0, 0])
    with pytest.raises(KeyError, match="template 9"):
        template_pair_scores(tf, ids, [0], [9])
