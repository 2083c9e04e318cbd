"""Closed-set rank-N identification (TinyFace style) and the CMC curve.

TinyFace (Cheng et al., ACCV 2018) evaluates 1:N identification: every probe image is compared with a gallery of
labelled images *plus* a large set of distractors (faces of other people, with no label), and a probe counts as
recognised at rank N when an image of its identity is among the N most similar gallery entries. The CMC curve is
that fraction as a function of N; TinyFace and AdaFace report ranks 1, 5 and 20. AdaFace's
``validation_lq/tinyface_helper.py`` computes cosine similarities (dot products of l2-normalised features),
sorts each probe's row and checks the top N labels; this module does the same through ranks:

``rank(probe) = 1 + #{gallery or distractor entries of another identity scoring >= the best genuine score}``

so a tie between the best genuine entry and an impostor counts *against* the probe (a sort would break such ties
arbitrarily). "Closed set" means every probe identity has at least one gallery image; a probe without one is an
error, not a miss.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

DEFAULT_RANKS = (1, 5, 20)


def _unit(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n, D), got shape {x.shape}")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(n == 0):
        raise ValueError(f"{name} row {int(np.flatnonzero(n[:, 0] == 0)[0])} has zero norm")
    return x / n


def _labels(x, n: int, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x).reshape(-1)
    if x.size != n:
        raise ValueError(f"{name} has {x.size} labels for {n} features")
    return x


@dataclass(frozen=True)
class IdentificationResult:
    """``cmc`` maps rank N to the fraction of probes identified within the top N; ``ranks`` is each probe's rank;
    ``cmc_curve[N - 1]`` the CMC at every rank up to its length. ``name``, ``title`` (what the protocol stands in
    for), ``protocol`` (how probes and gallery were built and scored), ``sha256`` (the data's fingerprint) and
    ``settings`` describe the run when a protocol builder fills them in."""

    cmc: dict[int, float]
    n_probes: int
    n_gallery: int
    n_distractors: int
    ranks: np.ndarray = field(repr=False, compare=False, default=None)
    name: str = ""
    title: str = ""
    protocol: str = ""
    sha256: str | None = None
    cmc_curve: tuple[float, ...] = field(default=(), repr=False)
    settings: dict = field(default_factory=dict, repr=False)

    @property
    def rank1(self) -> float:
        return float(np.mean(self.ranks <= 1))

    def summary(self) -> str:
        ranks = ", ".join(f"rank-{k} {100 * v:.2f}%" for k, v in sorted(self.cmc.items()))
        return (f"{self.name or 'identification'}: {ranks} [{self.protocol or 'closed-set'}; {self.n_probes:,} "
                f"probes, {self.n_gallery:,} gallery + {self.n_distractors:,} distractors]")

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "ranks"}
        d["cmc"] = {int(k): float(v) for k, v in self.cmc.items()}
        d["cmc_curve"] = [float(v) for v in self.cmc_curve]
        return d


def probe_ranks(probe_feats, probe_labels, gallery_feats, gallery_labels, distractor_feats=None, *,
                chunk: int = 1024) -> np.ndarray:
    """Rank (1 = best) of the first genuine gallery entry for every probe, by cosine similarity.

    distractor_feats: optional (K, D) features of identities outside the probe set (always impostors)."""
    p = _unit(probe_feats, "probe_feats")
    g = _unit(gallery_feats, "gallery_feats")
    pl = _labels(probe_labels, p.shape[0], "probe_labels")
    gl = _labels(gallery_labels, g.shape[0], "gallery_labels")
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"probe and gallery dimensions differ: {p.shape[1]} vs {g.shape[1]}")
    missing = np.setdiff1d(np.unique(pl), np.unique(gl))
    if missing.size:
        raise ValueError(f"closed-set identification: {missing.size} probe identities have no gallery image "
                         f"(first: {missing[0]!r})")
    d = None
    if distractor_feats is not None:
        d = _unit(distractor_feats, "distractor_feats")
        if d.shape[1] != p.shape[1]:
            raise ValueError(f"distractor dimension {d.shape[1]} differs from probe dimension {p.shape[1]}")
    ranks = np.empty(p.shape[0], dtype=np.int64)
    for s in range(0, p.shape[0], chunk):
        ps, ls = p[s:s + chunk], pl[s:s + chunk]
        sim = ps @ g.T
        genuine = ls[:, None] == gl[None, :]
        best = np.where(genuine, sim, -np.inf).max(axis=1)
        ahead = np.count_nonzero(~genuine & (sim >= best[:, None]), axis=1)
        if d is not None:
            ahead += np.count_nonzero(ps @ d.T >= best[:, None], axis=1)
        ranks[s:s + chunk] = 1 + ahead
    return ranks


def cmc(ranks, max_rank: int | None = None) -> np.ndarray:
    """CMC curve: ``cmc[N - 1]`` = fraction of probes with rank <= N, for N = 1..max_rank."""
    r = np.asarray(ranks)
    max_rank = int(r.max()) if max_rank is None else int(max_rank)
    return np.array([np.mean(r <= k) for k in range(1, max_rank + 1)])


def evaluate_identification(probe_feats, probe_labels, gallery_feats, gallery_labels, distractor_feats=None, *,
                            ranks: Iterable[int] = DEFAULT_RANKS, curve_max_rank: int = 100, name: str = "",
                            title: str = "", protocol: str = "", sha256: str | None = None,
                            settings: dict | None = None) -> IdentificationResult:
    """Closed-set identification with distractors; CMC at ``ranks`` (TinyFace: 1, 5, 20) and the CMC curve up to
    ``curve_max_rank`` (or the gallery size with distractors, if smaller)."""
    r = probe_ranks(probe_feats, probe_labels, gallery_feats, gallery_labels, distractor_feats)
    ranks = [int(k) for k in ranks]
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    n_dis = 0 if distractor_feats is None else int(np.shape(distractor_feats)[0])
    n_gal = int(np.shape(gallery_feats)[0])
    return IdentificationResult(cmc={k: float(np.mean(r <= k)) for k in ranks}, n_probes=int(r.size),
                                n_gallery=n_gal, n_distractors=n_dis, ranks=r, name=name, title=title,
                                protocol=protocol, sha256=sha256,
                                cmc_curve=tuple(float(v) for v in cmc(r, min(int(curve_max_rank), n_gal + n_dis))),
                                settings=dict(settings or {}))
