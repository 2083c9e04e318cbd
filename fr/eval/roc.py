"""ROC curves and TAR@FAR.

Convention: a *score* is a similarity, higher means "same identity". Labels are booleans (True = genuine pair).

``roc_curve`` is :func:`sklearn.metrics.roc_curve` (with its default ``drop_intermediate=True`` and the leading
``(0, 0)`` point with threshold ``+inf``), after checking the inputs, because insightface's IJB script reads
TAR@FAR off that very curve; :func:`auc` is :func:`sklearn.metrics.roc_auc_score`.

TAR@FAR (true accept rate at a false accept rate) has no single definition in the literature; three readings
are offered, and every result records which one was used:

``"nearest"``  insightface ``eval_ijbc.py``: flip the sklearn curve (so that among points with the same FPR the
               largest TPR comes first) and take the point whose FPR is nearest to the target, first one on ties.
               The point may lie *above* the target FAR. Read on the ``drop_intermediate=True`` curve, as there.
``"interp"``   linear interpolation of TPR along the full ROC polyline at exactly the target FPR (the operating
               point of a randomised mix of the two neighbouring thresholds). Where the curve has a vertical
               segment at the target FPR, the top of it.
``"floor"``    the largest TPR reachable by a threshold whose FPR is at most the target (a conservative,
               achievable operating point).

A target FAR below ``1 / n_negatives`` cannot be resolved by the pairs at hand; :func:`far_resolution` gives
that limit so a report can say so.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

TAR_METHODS = ("nearest", "interp", "floor")


def _check_labels_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be 1-D of the same length, got shapes {labels.shape} and "
                         f"{scores.shape}")
    if labels.dtype != bool:
        uniq = np.unique(labels)
        if not np.all(np.isin(uniq, (0, 1))):
            raise ValueError(f"labels must be boolean or 0/1, got values {uniq[:5]!r}")
        labels = labels.astype(bool)
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        raise ValueError(f"scores contain {bad.size} non-finite values (first at index {bad[0]})")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise ValueError(f"a ROC needs both genuine and impostor pairs; got {n_pos} genuine of {labels.size}")
    return labels, scores


def roc_curve(labels, scores, *, drop_intermediate: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score threshold (:func:`sklearn.metrics.roc_curve`).

    A pair is accepted at threshold ``t`` when ``score >= t``. Returns ``(fpr, tpr, thresholds)``, non-decreasing
    in ``fpr`` and ``tpr``, starting at ``(0, 0)`` with threshold ``+inf``. ``drop_intermediate`` removes the
    interior points of collinear runs, as sklearn does.
    """
    from sklearn import metrics  # here, not at module level: it would double the import time of fr.eval

    labels, scores = _check_labels_scores(labels, scores)
    return metrics.roc_curve(labels, scores, drop_intermediate=drop_intermediate)


def far_resolution(labels) -> float:
    """The smallest non-zero FAR the pairs can express: ``1 / number of impostor pairs``."""
    n_neg = int(np.size(labels) - np.count_nonzero(labels))
    if n_neg == 0:
        raise ValueError("no impostor pairs: FAR is undefined")
    return 1.0 / n_neg


def far_key(far: float) -> str:
    """The dictionary key used for a FAR in results: ``1e-03`` style, stable across runs."""
    return f"{float(far):.0e}"


def tar_at_far(labels, scores, fars: Iterable[float] = (1e-4, 1e-3, 1e-2, 1e-1), *,
               method: str = "nearest") -> dict[str, float]:
    """TAR at each target FAR, read from the ROC of ``scores`` (higher = genuine) with ``method``.

    Returns ``{far_key(far): tar}`` (see the module docstring for the three methods)."""
    if method not in TAR_METHODS:
        raise ValueError(f"TAR@FAR method must be one of {TAR_METHODS}, got {method!r}")
    fars = [float(f) for f in fars]
    for f in fars:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"a target FAR must be in (0, 1], got {f}")
    out: dict[str, float] = {}
    if method == "nearest":
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=True)
        fpr_r, tpr_r = fpr[::-1], tpr[::-1]   # largest TPR first among equal FPRs, as insightface's np.flipud
        for f in fars:
            out[far_key(f)] = float(tpr_r[int(np.argmin(np.abs(fpr_r - f)))])
        return out
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    for f in fars:
        j = int(np.searchsorted(fpr, f, side="right"))   # first point with fpr > f (j >= 1 since fpr[0] = 0)
        if method == "floor" or j == fpr.size or fpr[j - 1] == f:
            out[far_key(f)] = float(tpr[j - 1])          # last point with fpr <= f: the top of that column
        else:
            w = (f - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
            out[far_key(f)] = float(tpr[j - 1] + w * (tpr[j] - tpr[j - 1]))
    return out


def auc(labels, scores) -> float:
    """Area under the ROC (:func:`sklearn.metrics.roc_auc_score`; the Mann-Whitney probability, ties as 1/2)."""
    from sklearn import metrics

    labels, scores = _check_labels_scores(labels, scores)
    return float(metrics.roc_auc_score(labels, scores))
