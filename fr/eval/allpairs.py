"""All-pairs 1:1 verification (IJB / BLUFR style): every genuine and every impostor pair of a set, pooled.

IJB-B/C and BLUFR (Liao et al., IJCB 2014) judge a model by its TAR at very low FAR (down to 1e-6), which needs
millions of impostor pairs: all pairs among a few thousand images. This module scores all of them by cosine
similarity without ever holding them: the score matrix is computed block by block (``block`` x ``block``) and
reduced on the fly.

What is exact. With ``n`` impostor pairs and a target FAR ``f``, the operating point allows ``k`` false
accepts, ``k`` the largest integer with ``k / n <= f`` (in floating point, as a ROC's ``fpr`` is compared).
Its threshold is the ``(k+1)``-th largest impostor score ``v``: accepting pairs with ``score > v`` gives
FAR ``<= f``, accepting ``v`` too exceeds it. Finding ``v`` exactly takes two passes over the blocks:

1. a histogram of the impostor scores on ``n_bins`` equal bins of [-1, 1], from which the bin holding the
   ``(k+1)``-th largest impostor is known for every target;
2. the same histogram again (exact counts), plus the exact scores that fall into those bins; ``v`` is read
   off them, and the counts of impostors above, at and below ``v`` are exact.

The first pass only locates, so it runs in float32 (about half the cost); the second collects the located
bins and their neighbours in float64. Every reported quantity comes from the second pass alone; should a
threshold's bin lie outside what it collected (a float32 score crossing more than one bin edge), a further
float64 pass collects it. Genuine pairs are few (tens of thousands) and kept exactly. Scores are float64 dot
products of the l2-normalised (float64) features.

TAR methods (the semantics of :func:`fr.eval.roc.tar_at_far`, which these reproduce on the same scores):

``"floor"``   ``TAR = #{genuine > v} / n_genuine``: the best threshold whose FAR does not exceed the target
              (an achievable operating point). The default.
``"interp"``  linear interpolation along the full ROC between that point and the next (threshold ``v``).

``"nearest"`` (insightface's IJB reading, which may exceed the target FAR) is not offered: it depends on the
thinned sklearn curve, which cannot be built without all scores.

A target below ``1 / n`` (:func:`fr.eval.roc.far_resolution`) cannot be resolved by the pairs at hand and is
reported as ``None``; ``impostors_at_far`` says on how many impostor pairs (``k``) each reported TAR rests.
This TAR@FAR is **pooled** over all pairs of one set, with no folds and no templates: it is not insightface's
``VAL@FAR`` (fold-wise, on a fixed pair list) and not IJB-B/C's template protocol.

The ROC is kept at the ``n_bins`` bin edges (every point there is an exact point of the ROC: accepting the
pairs whose bin is at or above an edge is a threshold on the scores), thinned to ``roc_points_per_decade``
points per decade of FAR.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np
import torch

from .roc import far_key

ALLPAIRS_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
ALLPAIRS_METHODS = ("floor", "interp")
PROTOCOL_STEM = "all-pairs pooled TAR@FAR"


def _unit64(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a (n, D) tensor or array, got "
                         f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")
    x = x.detach().to("cpu", torch.float64)
    n = x.norm(dim=1, keepdim=True)
    bad = torch.nonzero((n[:, 0] == 0) | ~torch.isfinite(n[:, 0])).flatten()
    if bad.numel():
        raise ValueError(f"{name}: {bad.numel()} rows have zero or non-finite norm (first: row {int(bad[0])})")
    return x / n


def _ids(x, n: int, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x).reshape(-1)
    if x.size != n:
        raise ValueError(f"{name} has {x.size} identities for {n} features")
    return x


def _mask(x, n: int, name: str) -> np.ndarray:
    if x is None:
        return np.ones(n, dtype=bool)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x).reshape(-1)
    if x.size != n or x.dtype != bool:
        raise ValueError(f"{name} must be a boolean mask of {n} values, got {x.dtype} of {x.size}")
    return x


def allowed_false_accepts(far: float, n_impostor: int) -> int:
    """The largest ``k`` with ``k / n_impostor <= far`` in floating point (how a ROC's fpr compares)."""
    k = int(math.floor(far * n_impostor))
    while k + 1 <= n_impostor and (k + 1) / n_impostor <= far:
        k += 1
    while k > 0 and k / n_impostor > far:
        k -= 1
    return k


@dataclass
class _Pass:
    hist: np.ndarray            # (n_bins,) impostor counts
    genuine: np.ndarray         # genuine scores (float64)
    genuine_bins: np.ndarray
    window_scores: np.ndarray   # impostor scores in the requested bins
    window_bins: np.ndarray


class _PairScan:
    """Block-wise cosine scores of all pairs: within one set (``b is None``: pairs i < j) or across two.

    Same-identity pairs are genuine when both members are eligible (``elig_*``) and left out otherwise;
    different-identity pairs are impostors."""

    def __init__(self, a, ids_a, b, ids_b, elig_a, elig_b, block: int, n_bins: int):
        self.a, self.b = a, b
        self.cross = b is not None
        self.block, self.n_bins = int(block), int(n_bins)
        self.scale = self.n_bins / 2.0
        na = a.shape[0]
        nb = b.shape[0] if self.cross else na
        self.na, self.nb = na, nb
        # every same-identity pair (i, j), with whether it counts as genuine
        ii, jj, gg = [], [], []
        if self.cross:
            order_b = np.argsort(ids_b, kind="stable")
            ub, start_b = np.unique(ids_b[order_b], return_index=True)
            end_b = np.r_[start_b[1:], order_b.size]
            pos = {v: k for k, v in enumerate(ub.tolist())}
            for i, ident in enumerate(ids_a.tolist()):
                k = pos.get(ident)
                if k is None:
                    continue
                js = order_b[start_b[k]:end_b[k]]
                ii.append(np.full(js.size, i))
                jj.append(js)
                gg.append(elig_a[i] & elig_b[js])
        else:
            order = np.argsort(ids_a, kind="stable")
            _, start = np.unique(ids_a[order], return_index=True)
            end = np.r_[start[1:], order.size]
            for s, e in zip(start, end, strict=True):
                m = np.sort(order[s:e])
                if m.size < 2:
                    continue
                r, c = np.triu_indices(m.size, 1)
                ii.append(m[r])
                jj.append(m[c])
                gg.append(elig_a[m[r]] & elig_a[m[c]])
        cat = (lambda z, dt: np.concatenate(z).astype(dt)) if ii else (lambda z, dt: np.zeros(0, dt))
        ii, jj, gg = cat(ii, np.int64), cat(jj, np.int64), cat(gg, bool)
        self.n_same = int(ii.size)
        self.n_genuine = int(gg.sum())
        self.n_impostor = (na * nb if self.cross else na * (na - 1) // 2) - self.n_same
        # bucket the same-identity pairs by block
        bi, bj = ii // self.block, jj // self.block
        key = bi * (1 + (nb - 1) // self.block) + bj
        order = np.argsort(key, kind="stable")
        ks, starts = np.unique(key[order], return_index=True)
        ends = np.r_[starts[1:], order.size] if starts.size else starts  # no same-identity pair: no bucket
        self.same_in_block = {int(k): (torch.from_numpy(ii[order[s:e]] % self.block),
                                       torch.from_numpy(jj[order[s:e]] % self.block),
                                       torch.from_numpy(gg[order[s:e]]))
                              for k, s, e in zip(ks, starts, ends, strict=True)}
        self.n_col_blocks = 1 + (nb - 1) // self.block

    def bins_of(self, s: torch.Tensor) -> torch.Tensor:
        """Bin index in ``[0, n_bins)`` of every score (monotone in the score)."""
        return s.mul(self.scale).add_(self.scale).clamp_(0, self.n_bins - 1).long()  # truncation = floor here

    def blocks(self):
        B = self.block
        for i0 in range(0, self.na, B):
            cols = range(0, self.nb, B) if self.cross else range(i0, self.nb, B)
            for j0 in cols:
                yield i0, j0

    def run(self, wanted: set[int], *, locate: bool = False) -> _Pass:
        """One pass over all blocks. ``locate``: a cheaper float32 pass that only histograms (its bins may
        differ from the float64 ones near bin edges; it only tells the next pass where to look)."""
        B, discard = self.block, self.n_bins
        lut = torch.zeros(self.n_bins + 1, dtype=torch.bool)
        if wanted:
            lut[torch.tensor(sorted(wanted))] = True
        hist = torch.zeros(self.n_bins + 1, dtype=torch.int64)
        gen, win, win_b = [], [], []
        a = self.a.float() if locate else self.a
        other = a if not self.cross else (self.b.float() if locate else self.b)
        tril = {}
        for i0, j0 in self.blocks():
            s = a[i0:i0 + B] @ other[j0:j0 + B].T
            b = self.bins_of(s)
            if not self.cross and i0 == j0:   # keep i < j only
                n = s.shape[0]
                if n not in tril:
                    tril[n] = torch.ones(n, n, dtype=torch.bool).tril_()
                b.masked_fill_(tril[n], discard)
            same = self.same_in_block.get((i0 // B) * self.n_col_blocks + j0 // B)
            if same is not None:
                li, lj, g = same
                gen.append(s[li[g], lj[g]])
                b[li, lj] = discard
            hist += torch.bincount(b.view(-1), minlength=self.n_bins + 1)
            if wanted and not locate:
                m = lut[b]
                win.append(s[m])
                win_b.append(b[m])
        hist = hist[:self.n_bins].numpy()
        if int(hist.sum()) != self.n_impostor:
            raise RuntimeError(f"all-pairs scan counted {int(hist.sum())} impostor pairs, expected "
                               f"{self.n_impostor}; this is a bug")
        g = torch.cat(gen).double() if gen else torch.zeros(0, dtype=torch.float64)
        if g.numel() != self.n_genuine:
            raise RuntimeError(f"all-pairs scan found {g.numel()} genuine pairs, expected {self.n_genuine}")
        cat = (lambda z, dt: torch.cat(z).numpy()) if win else (lambda z, dt: np.zeros(0, dt))
        return _Pass(hist, g.numpy(), self.bins_of(g).numpy(), cat(win, np.float64), cat(win_b, np.int64))


@dataclass(frozen=True)
class AllPairsResult:
    """TAR at each FAR over all pairs of a set, pooled. Fractions, not percent.

    ``tar_at_far``: ``{"1e-06": tar or None}`` (None where ``far < far_resolution``); ``impostors_at_far``: the
    false accepts each FAR allows (``k``; how many impostor pairs the number rests on); ``threshold_at_far``:
    the score ``v`` with "accept iff score > v" (``"floor"``); ``achieved_far``: the FAR of that threshold;
    ``roc``: ``{"far": [...], "tar": [...], "threshold": [...]}`` exact ROC points at bin edges (threshold
    approximate: the bin edge); ``auc``: the area under those points (trapezoids)."""

    name: str
    title: str
    protocol: str
    sha256: str | None
    n_images: int
    n_identities: int
    n_genuine: int
    n_impostor: int
    far_resolution: float
    tar_method: str
    tar_at_far: dict[str, float | None]
    impostors_at_far: dict[str, int]
    threshold_at_far: dict[str, float | None]
    achieved_far: dict[str, float | None]
    auc: float
    roc: dict[str, list[float]] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    n_passes: int = 2

    def summary(self) -> str:
        parts = [f"{100 * t:.2f}%@{k}" for k, t in self.tar_at_far.items() if t is not None]
        unres = [k for k, t in self.tar_at_far.items() if t is None]
        return (f"{self.name}: TAR {', '.join(parts) or '-'}"
                + (f" (unresolvable: {', '.join(unres)})" if unres else "")
                + f" [{self.protocol}; {self.n_genuine:,} genuine / {self.n_impostor:,} impostor pairs]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _roc_from_bins(hist: np.ndarray, gen_bins: np.ndarray, n_bins: int, per_decade: int) -> dict[str, list]:
    n_imp, n_gen = int(hist.sum()), int(gen_bins.size)
    imp_ge = np.cumsum(hist[::-1])[::-1]                       # impostors with bin >= m
    gen_ge = np.cumsum(np.bincount(gen_bins, minlength=n_bins)[::-1])[::-1]
    far, tar = imp_ge / n_imp, gen_ge / max(n_gen, 1)
    edges = np.arange(n_bins) / (n_bins / 2.0) - 1.0
    # thin: for each target on a log grid, the point with the largest FAR not above it (far is non-increasing in m)
    lo = max(1.0 / n_imp, 1e-12)
    grid = np.unique(np.r_[np.logspace(math.log10(lo), 0.0, int(per_decade * -math.log10(lo)) + 1), 1.0])
    asc = far[::-1]                                            # non-decreasing
    pick = np.searchsorted(asc, grid, side="right") - 1
    pick = np.unique(pick[pick >= 0])
    m = (n_bins - 1 - pick)[::-1]
    m = np.unique(np.r_[m, n_bins - 1])[::-1]                  # descending edges: ascending FAR
    return {"far": far[m].tolist(), "tar": tar[m].tolist(), "threshold": edges[m].tolist()}


def _auc_from_bins(hist: np.ndarray, gen_bins: np.ndarray, n_bins: int) -> float:
    imp_ge = np.r_[np.cumsum(hist[::-1])[::-1], 0]
    gen_ge = np.r_[np.cumsum(np.bincount(gen_bins, minlength=n_bins)[::-1])[::-1], 0]
    fpr, tpr = imp_ge[::-1] / max(hist.sum(), 1), gen_ge[::-1] / max(gen_bins.size, 1)
    return float(np.trapezoid(tpr, fpr))


def all_pairs_verification(feats, ids, feats_b=None, ids_b=None, *, genuine_eligible=None,
                           genuine_eligible_b=None, fars: Iterable[float] = ALLPAIRS_FARS,
                           method: str = "floor", block: int = 2048, n_bins: int = 1 << 16,
                           roc_points_per_decade: int = 10, name: str = "pairs", title: str = "",
                           protocol: str | None = None, sha256: str | None = None,
                           settings: dict | None = None, max_passes: int = 4) -> AllPairsResult:
    """TAR@FAR over every pair of ``feats`` (pairs ``i < j``), or of ``feats`` x ``feats_b`` when given.

    feats, ids:        (N, D) features (normalised here) and (N,) identity labels.
    feats_b, ids_b:    a second set: then all ``N x M`` cross pairs (e.g. frontal x profile).
    genuine_eligible:  optional boolean masks: a same-identity pair is genuine only when both members are
                       eligible, and is left out otherwise (caps on images per identity). Impostor pairs use
                       every image.
    fars:              target FARs; method: "floor" or "interp" (module docstring).
    block, n_bins:     block edge (memory ~ 3 x 8 x block² bytes) and histogram resolution.
    """
    if method not in ALLPAIRS_METHODS:
        raise ValueError(f"all-pairs TAR method must be one of {ALLPAIRS_METHODS}, got {method!r} (\"nearest\" "
                         "needs the thinned sklearn curve, which needs every score)")
    fars = [float(f) for f in fars]
    for f in fars:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"a target FAR must be in (0, 1], got {f}")
    if block < 1 or n_bins < 2:
        raise ValueError(f"block must be >= 1 and n_bins >= 2, got {block}, {n_bins}")
    a = _unit64(feats, "feats")
    ia = _ids(ids, a.shape[0], "ids")
    ea = _mask(genuine_eligible, a.shape[0], "genuine_eligible")
    if (feats_b is None) != (ids_b is None):
        raise ValueError("give both feats_b and ids_b, or neither")
    b = ib = eb = None
    if feats_b is not None:
        b = _unit64(feats_b, "feats_b")
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"feats and feats_b dimensions differ: {a.shape[1]} vs {b.shape[1]}")
        ib = _ids(ids_b, b.shape[0], "ids_b")
        eb = _mask(genuine_eligible_b, b.shape[0], "genuine_eligible_b")
    elif genuine_eligible_b is not None:
        raise ValueError("genuine_eligible_b needs feats_b")
    scan = _PairScan(a, ia, b, ib, ea, eb, block, n_bins)
    if scan.n_genuine == 0 or scan.n_impostor == 0:
        raise ValueError(f"{name}: all-pairs verification needs genuine and impostor pairs, got "
                         f"{scan.n_genuine} and {scan.n_impostor}")
    n_imp = scan.n_impostor
    resolution = 1.0 / n_imp
    targets = {f: allowed_false_accepts(f, n_imp) for f in fars if f >= resolution}

    def bin_of_rank(hist: np.ndarray, rank: int) -> tuple[int, int]:
        """(bin holding the rank-th largest impostor, impostors in higher bins)."""
        desc = np.cumsum(hist[::-1])
        t = int(np.searchsorted(desc, rank, side="left"))
        bn = scan.n_bins - 1 - t
        return bn, int(desc[t] - hist[bn])

    # pass 1 (float32) locates each threshold's bin; the float64 passes that follow collect the exact scores
    # of those bins and their neighbours (float32 rounding can move a score across a bin edge) until one pass
    # holds every bin it needs; all results come from that last float64 pass alone
    res = scan.run(set(), locate=True)
    need = {bin_of_rank(res.hist, k + 1)[0] for k in targets.values() if k < n_imp}
    wanted = {b + d for b in need for d in (-1, 0, 1) if 0 <= b + d < scan.n_bins}
    passes = 1
    while True:
        res = scan.run(wanted)
        passes += 1
        need = {bin_of_rank(res.hist, k + 1)[0] for k in targets.values() if k < n_imp}
        if need <= wanted:
            break
        if passes >= max_passes:
            raise RuntimeError(f"{name}: threshold bins kept moving between passes ({passes}); scores are not "
                               "reproducible on this backend")
        wanted |= need

    gen = np.sort(res.genuine)
    n_gen = gen.size
    tar, thr, ach, nfa = {}, {}, {}, {}
    for f in fars:
        key = far_key(f)
        if f not in targets:
            tar[key] = thr[key] = ach[key] = None
            nfa[key] = 0
            continue
        k = targets[f]
        nfa[key] = k
        if k >= n_imp:                     # accept everything
            tar[key], thr[key], ach[key] = 1.0, None, 1.0
            continue
        bn, above = bin_of_rank(res.hist, k + 1)
        vals = np.sort(res.window_scores[res.window_bins == bn])[::-1]
        if vals.size != res.hist[bn]:
            raise RuntimeError(f"{name}: bin {bn} holds {res.hist[bn]} impostors but {vals.size} were collected")
        v = float(vals[k + 1 - above - 1])
        imp_gt = above + int(np.count_nonzero(vals > v))
        imp_ge = above + int(np.count_nonzero(vals >= v))
        gen_gt = n_gen - int(np.searchsorted(gen, v, side="right"))
        gen_ge = n_gen - int(np.searchsorted(gen, v, side="left"))
        fpr_a, tpr_a = imp_gt / n_imp, gen_gt / n_gen
        if method == "floor" or fpr_a == f:
            t = tpr_a
        else:                              # the arithmetic of roc.tar_at_far(method="interp")
            fpr_b, tpr_b = imp_ge / n_imp, gen_ge / n_gen
            w = (f - fpr_a) / (fpr_b - fpr_a)
            t = tpr_a + w * (tpr_b - tpr_a)
        tar[key], thr[key], ach[key] = float(t), v, fpr_a
    proto = protocol or f"{PROTOCOL_STEM}/cos/{method}"
    n_ids = int(np.unique(ia if ib is None else np.r_[ia, ib]).size)
    return AllPairsResult(
        name=name, title=title, protocol=proto, sha256=sha256,
        n_images=int(a.shape[0] + (0 if b is None else b.shape[0])), n_identities=n_ids, n_genuine=int(n_gen),
        n_impostor=int(n_imp), far_resolution=resolution, tar_method=method, tar_at_far=tar, impostors_at_far=nfa,
        threshold_at_far=thr, achieved_far=ach,
        auc=_auc_from_bins(res.hist, res.genuine_bins, scan.n_bins),
        roc=_roc_from_bins(res.hist, res.genuine_bins, scan.n_bins, roc_points_per_decade),
        settings={"block": int(block), "n_bins": int(n_bins), **(settings or {})}, n_passes=passes)
