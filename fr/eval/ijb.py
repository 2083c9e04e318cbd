"""IJB-B/C style 1:1 template verification.

In IJB-B/C a *template* is a set of images of one subject, grouped into *media* (a still photo, or the frames of
one video). insightface's ``recognition/arcface_torch/eval_ijbc.py`` scores a template pair as follows, and this
module follows it step by step:

1. per image, the embedding of the image plus that of its mirror (``fr.eval.embed`` flip "sum"), l2-normalised
   unless the "N" flag (``use_norm_score``) keeps the norm as a quality weight; the "D" flag
   (``use_detector_score``) multiplies each image feature by its face-detector score;
2. ``image2template_feature``: the features of a template are averaged within each media, the media features are
   **summed** (equivalently averaged: only the direction survives) and the result l2-normalised;
3. the score of a template pair is the dot product of the two template features;
4. TAR@FAR from ``sklearn.metrics.roc_curve`` on all template pairs, read at the nearest FPR (``method="nearest"``
   of :func:`fr.eval.roc.tar_at_far`; ``"interp"`` and ``"floor"`` are offered too).

We have no IJB data; the tests build small templates whose answers are known by hand.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

from .roc import TAR_METHODS, auc, far_resolution, tar_at_far

IJB_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def _np(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def image_features(emb, *, norm_score: bool = False, detector_scores=None) -> np.ndarray:
    """Per-image features before pooling (insightface's N and D flags).

    emb:             (M, D) fused raw embeddings (image + mirror).
    norm_score:      keep the raw norm (the "N" flag); otherwise each row is l2-normalised.
    detector_scores: optional (M,) faceness scores multiplied into the rows (the "D" flag)."""
    f = _np(emb, "emb").astype(np.float64)
    if f.ndim != 2:
        raise ValueError(f"emb must be (M, D), got {f.shape}")
    if not norm_score:
        n = np.linalg.norm(f, axis=1, keepdims=True)
        if np.any(n == 0):
            raise ValueError(f"emb row {int(np.flatnonzero(n[:, 0] == 0)[0])} has zero norm")
        f = f / n
    if detector_scores is not None:
        s = _np(detector_scores, "detector_scores").astype(np.float64).reshape(-1)
        if s.size != f.shape[0]:
            raise ValueError(f"detector_scores has {s.size} values for {f.shape[0]} images")
        f = f * s[:, None]
    return f


def template_features(features, templates, medias) -> tuple[np.ndarray, np.ndarray]:
    """Pool image features into l2-normalised template features (mean within media, then sum over media).

    features: (M, D) per-image features (see :func:`image_features`); templates, medias: (M,) ids.
    Returns ``(template_feats (T, D), template_ids (T,))`` with ids sorted as ``np.unique``."""
    f = _np(features, "features").astype(np.float64)
    t, m = _np(templates, "templates").reshape(-1), _np(medias, "medias").reshape(-1)
    if f.ndim != 2 or t.size != f.shape[0] or m.size != f.shape[0]:
        raise ValueError(f"features (M, D) with M templates and medias ids expected, got {f.shape}, {t.size}, "
                         f"{m.size}")
    ids, t_inv = np.unique(t, return_inverse=True)
    # one row per (template, media): the mean of its images
    tm = np.stack([t_inv, np.unique(m, return_inverse=True)[1]], axis=1)
    groups, g_inv = np.unique(tm, axis=0, return_inverse=True)
    g_inv = g_inv.reshape(-1)
    media_sum = np.zeros((groups.shape[0], f.shape[1]))
    np.add.at(media_sum, g_inv, f)
    media_mean = media_sum / np.bincount(g_inv, minlength=groups.shape[0])[:, None]
    tmpl = np.zeros((ids.size, f.shape[1]))
    np.add.at(tmpl, groups[:, 0], media_mean)
    norms = np.linalg.norm(tmpl, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"template {ids[int(np.flatnonzero(norms[:, 0] == 0)[0])]!r} pools to a zero vector")
    return tmpl / norms, ids


def template_pair_scores(template_feats, template_ids, t1, t2) -> np.ndarray:
    """Dot products of the template features of each pair ``(t1[i], t2[i])`` (ids as in ``template_ids``)."""
    ids = _np(template_ids, "template_ids")
    t1, t2 = _np(t1, "t1").reshape(-1), _np(t2, "t2").reshape(-1)
    if t1.size != t2.size:
        raise ValueError(f"t1 and t2 must have the same length, got {t1.size} and {t2.size}")
    pos = {v: i for i, v in enumerate(ids.tolist())}
    try:
        i1 = np.array([pos[v] for v in t1.tolist()], dtype=np.int64)
        i2 = np.array([pos[v] for v in t2.tolist()], dtype=np.int64)
    except KeyError as e:
        raise KeyError(f"template {e.args[0]!r} of a pair has no images") from None
    feats = _np(template_feats, "template_feats")
    return np.einsum("ij,ij->i", feats[i1], feats[i2])


@dataclass(frozen=True)
class IJBResult:
    """TAR@FAR of template verification; ``tar_at_far`` maps ``"1e-04"``-style keys to TAR."""

    tar_at_far: dict[str, float]
    tar_method: str
    auc: float
    n_pairs: int
    n_templates: int
    far_resolution: float
    norm_score: bool
    detector_score: bool
    scores: np.ndarray = field(repr=False, compare=False, default=None)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "scores"}
        d["tar_at_far"] = {k: float(v) for k, v in self.tar_at_far.items()}
        return d


def evaluate_templates(emb, templates, medias, t1, t2, label, *, norm_score: bool = False,
                       detector_scores=None, fars: Iterable[float] = IJB_FARS,
                       tar_method: str = "nearest") -> IJBResult:
    """The whole IJB 1:1 pipeline on precomputed per-image (flip-fused, raw) embeddings.

    emb (M, D), templates (M,), medias (M,): per image; t1, t2, label (P,): template pairs and whether they
    show the same subject."""
    if tar_method not in TAR_METHODS:
        raise ValueError(f"tar_method must be one of {TAR_METHODS}, got {tar_method!r}")
    feats = image_features(emb, norm_score=norm_score, detector_scores=detector_scores)
    tf, ids = template_features(feats, templates, medias)
    scores = template_pair_scores(tf, ids, t1, t2)
    y = _np(label, "label").reshape(-1).astype(bool)
    if y.size != scores.size:
        raise ValueError(f"label has {y.size} values for {scores.size} template pairs")
    return IJBResult(tar_at_far=tar_at_far(y, scores, fars, method=tar_method), tar_method=tar_method,
                     auc=auc(y, scores), n_pairs=int(y.size), n_templates=int(ids.size),
                     far_resolution=far_resolution(y), norm_score=bool(norm_score),
                     detector_score=detector_scores is not None, scores=scores)
