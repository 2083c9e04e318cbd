"""1:1 verification (LFW, CFP, AgeDB style): k-fold cross-validated accuracy with named protocol presets.

A verification set holds ``2N`` images laid out ``[a0, b0, a1, b1, ...]`` and ``N`` booleans ``issame``. The
pairs are cut into ``k`` contiguous folds in file order (the ``.bin`` files are written so that each fold is a
balanced block); for every fold a threshold is fitted on the other ``k - 1`` folds and the held-out fold is scored
with it. The reported accuracy is the mean over folds; the spread depends on the protocol.

Presets (``PROTOCOLS``), each a :class:`Protocol`:

``"insightface"``  insightface ``recognition/arcface_torch/eval/verification.py`` (adapted from facenet):
    squared L2 distance between l2-normalised embeddings, a pair is "same" when ``dist < t``; ``t`` is the first
    maximiser of train accuracy on the grid ``np.arange(0, 4, 0.01)``; ``KFold(10, shuffle=False)`` folds;
    reported as mean ± **std** over folds (numpy's population std, ``ddof=0``). Its flip fusion ("Accuracy-Flip")
    is the sum of the raw embeddings of the image and its mirror, see :mod:`fr.eval.embed`.
``"cosine"``       cosine similarity, "same" when ``cos > t``; ``t`` maximises train accuracy *exactly* (every
    midpoint between consecutive distinct train scores is a candidate, the lowest maximiser is taken); reported as
    mean ± **standard error** ``std(ddof=1) / sqrt(k)``.
``"facexzoo"``     FaceX-Zoo ``test_protocol/lfw/lfw_evaluator.py``: cosine similarity, "same" when ``cos >= t``;
    ``t`` maximises ``TPR - FPR`` (Youden's J, not accuracy) over 1000 equal steps between the minimum and maximum
    train score; mean ± standard error.

The std of 10 fold accuracies is about ``sqrt(10) ≈ 3.2`` times their standard error, so "99.50 ± 0.30" under
insightface and "99.50 ± 0.10" under FaceX-Zoo can describe the same model.

TAR@FAR is read from the ROC of *all* pairs pooled (no folds), with the methods of :mod:`fr.eval.roc`.

:func:`verify_embeddings` works on precomputed embeddings; :func:`evaluate_verification` extracts them from a
model first. Both return a :class:`VerificationResult` which keeps, per pair, whether its held-out prediction was
right (``correct``), so two models on the same pairs can be compared with :mod:`fr.eval.stats`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from .roc import TAR_METHODS, auc, far_resolution, tar_at_far

DEFAULT_FARS = (1e-3, 1e-2, 1e-1)
SCORES = ("sqL2", "cos")
THRESHOLD_RULES = ("grid", "exact", "youden_grid")
SPREADS = ("std", "stderr")


@dataclass(frozen=True)
class Protocol:
    """How pairs are scored, how a threshold is fitted on the training folds, and how the spread is reported.

    score:          "sqL2" (squared L2 distance of normalised embeddings, lower = same) or "cos" (cosine).
    threshold_rule: "grid" (first maximiser of train accuracy over ``np.arange(*grid)``, "same" iff
                    ``dist < t``), "exact" (maximiser of train accuracy over all midpoints, "same" iff
                    ``cos > t``), or "youden_grid" (maximiser of TPR - FPR over ``n_grid`` steps between min and
                    max train score, "same" iff ``cos >= t``).
    spread:         "std" (``np.std`` over folds, ddof=0) or "stderr" (``std(ddof=1) / sqrt(k)``).
    """

    name: str
    score: str
    threshold_rule: str
    spread: str
    n_folds: int = 10
    grid: tuple[float, float, float] = (0.0, 4.0, 0.01)
    n_grid: int = 1000
    reference: str = ""

    def __post_init__(self):
        if self.score not in SCORES:
            raise ValueError(f"Protocol.score must be one of {SCORES}, got {self.score!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"Protocol.threshold_rule must be one of {THRESHOLD_RULES}, got {self.threshold_rule!r}")
        if self.threshold_rule == "grid" and self.score != "sqL2":
            raise ValueError("threshold_rule='grid' is defined on squared L2 distances (score='sqL2')")
        if self.threshold_rule != "grid" and self.score != "cos":
            raise ValueError(f"threshold_rule={self.threshold_rule!r} is defined on cosine scores (score='cos')")
        if self.spread not in SPREADS:
            raise ValueError(f"Protocol.spread must be one of {SPREADS}, got {self.spread!r}")
        if int(self.n_folds) < 2:
            raise ValueError(f"Protocol.n_folds must be at least 2, got {self.n_folds}")

    def tag(self, flip: str | None) -> str:
        """The protocol string recorded with every result, e.g. ``insightface/sqL2/10fold/flip-sum``."""
        return f"{self.name}/{self.score}/{self.n_folds}fold/flip-{flip or 'unknown'}"


PROTOCOLS: dict[str, Protocol] = {
    "insightface": Protocol(
        "insightface", score="sqL2", threshold_rule="grid", spread="std", grid=(0.0, 4.0, 0.01),
        reference="deepinsight/insightface recognition/arcface_torch/eval/verification.py (calculate_roc)"),
    "cosine": Protocol(
        "cosine", score="cos", threshold_rule="exact", spread="stderr",
        reference="cosine similarity, accuracy-optimal threshold on the training folds"),
    "facexzoo": Protocol(
        "facexzoo", score="cos", threshold_rule="youden_grid", spread="stderr", n_grid=1000,
        reference="JDAI-CV/FaceX-Zoo test_protocol/lfw/lfw_evaluator.py (getThreshold, test_one_model)"),
}


def get_protocol(protocol: str | Protocol, *, n_folds: int | None = None) -> Protocol:
    """A preset by name (or a :class:`Protocol` as is), optionally with another number of folds."""
    if isinstance(protocol, Protocol):
        p = protocol
    else:
        if protocol not in PROTOCOLS:
            raise KeyError(f"unknown verification protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        p = PROTOCOLS[protocol]
    if n_folds is not None and n_folds != p.n_folds:
        p = Protocol(**{**asdict(p), "n_folds": int(n_folds), "grid": tuple(p.grid)})
    return p


def contiguous_folds(n: int, k: int) -> list[np.ndarray]:
    """Test indices of ``k`` contiguous folds over ``range(n)``, as ``sklearn.model_selection.KFold(k,
    shuffle=False)``: the first ``n % k`` folds hold one extra item."""
    if k < 2 or n < k:
        raise ValueError(f"cannot cut {n} pairs into {k} folds")
    sizes = np.full(k, n // k, dtype=np.int64)
    sizes[: n % k] += 1
    bounds = np.r_[0, np.cumsum(sizes)]
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(k)]


def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def l2_normalize(emb: np.ndarray, *, what: str = "embeddings") -> np.ndarray:
    """Row-wise l2 normalisation in float64; a zero row is an error (it has no direction)."""
    emb = np.asarray(emb, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    bad = np.flatnonzero((norms[:, 0] == 0) | ~np.isfinite(norms[:, 0]))
    if bad.size:
        raise ValueError(f"{what}: {bad.size} rows have zero or non-finite norm (first: row {bad[0]})")
    return emb / norms


def pair_scores(emb, *, score: str = "cos") -> np.ndarray:
    """Scores of the pairs ``(emb[0], emb[1]), (emb[2], emb[3]), ...`` after l2 normalisation.

    ``score="cos"``: cosine similarity; ``score="sqL2"``: squared L2 distance ``sum((a - b)**2)`` computed as
    insightface does (from the difference, not as ``2 - 2 cos``)."""
    e = _to_numpy(emb, "embeddings")
    if e.ndim != 2 or e.shape[0] % 2:
        raise ValueError(f"embeddings must be (2N, D) with pairs interleaved [a0, b0, a1, b1, ...], got {e.shape}")
    e = l2_normalize(e)
    a, b = e[0::2], e[1::2]
    if score == "cos":
        return np.sum(a * b, axis=1)
    if score == "sqL2":
        return np.sum(np.square(a - b), axis=1)
    raise ValueError(f"score must be one of {SCORES}, got {score!r}")


# --- threshold fitting (one function per rule; each returns the threshold) ---------------------------------

def _fit_grid(dist: np.ndarray, same: np.ndarray, thresholds: np.ndarray) -> float:
    """First maximiser over ``thresholds`` of the accuracy of "same iff dist < t" (insightface)."""
    ds, dd = np.sort(dist[same]), np.sort(dist[~same])
    tp = np.searchsorted(ds, thresholds, side="left")                # same pairs with dist < t
    tn = dd.size - np.searchsorted(dd, thresholds, side="left")      # different pairs with dist >= t
    return float(thresholds[int(np.argmax(tp + tn))])


def _fit_exact(cos: np.ndarray, same: np.ndarray) -> float:
    """Lowest maximiser of the accuracy of "same iff cos > t" over every distinct decision."""
    u = np.unique(cos)
    cands = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2.0, u[-1] + 1.0]
    ps, ns = np.sort(cos[same]), np.sort(cos[~same])
    tp = ps.size - np.searchsorted(ps, cands, side="right")          # same pairs with cos > t
    tn = np.searchsorted(ns, cands, side="right")                     # different pairs with cos <= t
    return float(cands[int(np.argmax(tp + tn))])


def _fit_youden_grid(cos: np.ndarray, same: np.ndarray, n_grid: int) -> float:
    """FaceX-Zoo: maximiser of TPR - FPR over ``min + step * (1..n)``, "same iff cos >= t"."""
    lo, hi = float(cos.min()), float(cos.max())
    grid = lo + (hi - lo) / n_grid * np.arange(1, n_grid + 1)
    ps, ns = np.sort(cos[same]), np.sort(cos[~same])
    if ps.size == 0 or ns.size == 0:
        raise ValueError("threshold_rule='youden_grid' needs same and different pairs in every training split")
    fn = np.searchsorted(ps, grid, side="left")                       # same pairs with cos < t
    fp = ns.size - np.searchsorted(ns, grid, side="left")             # different pairs with cos >= t
    return float(grid[int(np.argmax((ps.size - fn) / ps.size - fp / ns.size))])


def _predict_same(scores: np.ndarray, t: float, p: Protocol) -> np.ndarray:
    if p.threshold_rule == "grid":
        return scores < t
    if p.threshold_rule == "exact":
        return scores > t
    return scores >= t


@dataclass(frozen=True)
class VerificationResult:
    """One verification run. ``accuracy`` and ``spread`` are fractions (0.995, not 99.5).

    ``protocol`` names preset, score, folds and flip fusion (``insightface/sqL2/10fold/flip-sum``);
    ``threshold`` is the mean of the per-fold thresholds (``thresholds``), in the protocol's score units;
    ``tar_at_far`` maps ``"1e-03"``-style keys to TAR read with ``tar_method`` on all pairs pooled;
    ``far_resolution`` is ``1 / n_impostor_pairs`` (targets below it cannot be resolved);
    ``correct`` is, per pair, whether its held-out fold's threshold classified it correctly.
    """

    name: str
    protocol: str
    accuracy: float
    spread: float
    spread_kind: str
    threshold: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]
    fold_sizes: tuple[int, ...]
    n_pairs: int
    n_folds: int
    flip: str | None
    score: str
    sha256: str | None
    tar_at_far: dict[str, float]
    tar_method: str
    far_resolution: float
    auc: float
    mean_norm: float | None = None
    correct: np.ndarray = field(default=None, repr=False, compare=False)

    @property
    def n_correct(self) -> int:
        return int(np.count_nonzero(self.correct))

    def summary(self) -> str:
        return (f"{self.name}: {100 * self.accuracy:.2f} ± {100 * self.spread:.2f} % ({self.spread_kind}) "
                f"[{self.protocol}, {self.n_pairs} pairs]")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (plain floats, lists). The per-pair ``correct`` vector is stored packed, as
        ``correct_hex`` (``np.packbits``, 1 bit a pair), so that paired tests between recorded runs stay
        possible; :func:`correct_from_hex` unpacks it."""
        d = {k: v for k, v in asdict(self).items() if k != "correct"}
        if self.correct is not None:
            d["correct_hex"] = np.packbits(np.asarray(self.correct, dtype=bool)).tobytes().hex()
        d["fold_accuracies"] = [float(a) for a in self.fold_accuracies]
        d["thresholds"] = [float(t) for t in self.thresholds]
        d["fold_sizes"] = [int(s) for s in self.fold_sizes]
        d["tar_at_far"] = {k: float(v) for k, v in self.tar_at_far.items()}
        d["n_correct"] = self.n_correct
        return d


def correct_from_hex(hex_string: str, n_pairs: int) -> np.ndarray:
    """The per-pair correctness vector stored by :meth:`VerificationResult.to_dict`."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hex_string), dtype=np.uint8))
    if bits.size < n_pairs or bits.size - n_pairs >= 8:
        raise ValueError(f"correct_hex holds {bits.size} bits, which does not fit {n_pairs} pairs")
    return bits[:n_pairs].astype(bool)


def verify_embeddings(emb, issame, protocol: str | Protocol = "insightface", *, n_folds: int | None = None,
                      flip: str | None = None, fars: Iterable[float] = DEFAULT_FARS, tar_method: str = "nearest",
                      name: str = "pairs", sha256: str | None = None, norms=None) -> VerificationResult:
    """k-fold verification of precomputed embeddings.

    emb:      (2N, D) embeddings, pairs interleaved ``[a0, b0, a1, b1, ...]`` (normalised here; raw is fine).
    issame:   (N,) booleans.
    protocol: a preset name from ``PROTOCOLS`` or a :class:`Protocol`; ``n_folds`` overrides its fold count.
    flip:     how the embeddings were fused with the mirrored image (recorded in the protocol string only).
    norms:    optional per-image feature norms; their mean is recorded as ``mean_norm`` (insightface's XNorm).
    """
    p = get_protocol(protocol, n_folds=n_folds)
    same = _to_numpy(issame, "issame")
    if same.ndim != 1:
        raise ValueError(f"issame must be 1-D, got shape {same.shape}")
    if same.dtype != bool:
        if not np.all(np.isin(np.unique(same), (0, 1))):
            raise ValueError("issame must be boolean or 0/1")
        same = same.astype(bool)
    e = _to_numpy(emb, "embeddings")
    if e.ndim != 2 or e.shape[0] != 2 * same.size:
        raise ValueError(f"embeddings must be (2N, D) = ({2 * same.size}, D) for {same.size} pairs, "
                         f"got {e.shape}")
    if tar_method not in TAR_METHODS:
        raise ValueError(f"tar_method must be one of {TAR_METHODS}, got {tar_method!r}")
    scores = pair_scores(e, score=p.score)
    n = same.size
    folds = contiguous_folds(n, p.n_folds)
    grid = np.arange(*p.grid) if p.threshold_rule == "grid" else None

    correct = np.zeros(n, dtype=bool)
    accs, thrs = [], []
    for test in folds:
        train = np.ones(n, dtype=bool)
        train[test] = False
        if p.threshold_rule == "grid":
            t = _fit_grid(scores[train], same[train], grid)
        elif p.threshold_rule == "exact":
            t = _fit_exact(scores[train], same[train])
        else:
            t = _fit_youden_grid(scores[train], same[train], p.n_grid)
        correct[test] = _predict_same(scores[test], t, p) == same[test]
        accs.append(float(np.mean(correct[test])))
        thrs.append(t)
    accs_arr = np.asarray(accs)
    if p.spread == "std":
        spread = float(np.std(accs_arr))
    else:
        spread = float(np.std(accs_arr, ddof=1) / math.sqrt(p.n_folds))

    similarity = -scores if p.score == "sqL2" else scores
    mean_norm = None if norms is None else float(np.mean(_to_numpy(norms, "norms")))
    return VerificationResult(
        name=name, protocol=p.tag(flip), accuracy=float(np.mean(accs_arr)), spread=spread, spread_kind=p.spread,
        threshold=float(np.mean(thrs)), fold_accuracies=tuple(accs), thresholds=tuple(thrs),
        fold_sizes=tuple(int(f.size) for f in folds), n_pairs=n, n_folds=p.n_folds, flip=flip, score=p.score,
        sha256=sha256, tar_at_far=tar_at_far(same, similarity, fars, method=tar_method), tar_method=tar_method,
        far_resolution=far_resolution(same), auc=auc(same, similarity), mean_norm=mean_norm, correct=correct)


def evaluate_verification(model, vset, *, protocol: str | Protocol = "insightface", flip: str = "sum",
                          batch_size: int = 256, device=None, progress: bool = False, spec=None,
                          n_folds: int | None = None, fars: Iterable[float] = DEFAULT_FARS,
                          tar_method: str = "nearest") -> VerificationResult:
    """Embed ``vset.images`` with ``model`` (see :func:`fr.eval.embed.extract_embeddings`) and verify its pairs.

    vset: a :class:`fr.data.VerificationSet` (``name``, ``images`` uint8 (2N, 3, H, W), ``issame`` (N,),
          ``sha256``); any object with those attributes works.
    spec: the model's input contract; defaults to ``model.input_spec``.
    """
    from .embed import extract_embeddings

    for attr in ("images", "issame"):
        if not hasattr(vset, attr):
            raise TypeError(f"vset must have .images and .issame (a fr.data.VerificationSet); missing .{attr}")
    emb, norms = extract_embeddings(model, vset.images, spec, flip=flip, batch_size=batch_size, device=device,
                                    progress=progress)
    return verify_embeddings(emb, vset.issame, protocol, n_folds=n_folds, flip=flip, fars=fars,
                             tar_method=tar_method, name=getattr(vset, "name", "pairs"),
                             sha256=getattr(vset, "sha256", None), norms=norms)
