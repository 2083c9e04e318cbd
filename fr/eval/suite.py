"""Every evaluation protocol from one embedding pass.

The identification folders (``identification/``, :mod:`fr.data.identification`) hold every image of ``lfw.bin``,
``cfp_fp.bin`` and ``cfp_ff.bin`` byte for byte, so a model only needs to embed each *distinct* image once
(20,233 files holding 20,203 distinct images) plus the degraded probes of the low-quality protocol; every
protocol is then read off those embeddings:

==================  ===========================================================================================
``lfw``, ``cfp_fp``, insightface 10-fold verification on the ``.bin`` pairs (:func:`fr.eval.verify_embeddings`):
``cfp_ff``          each ``.bin`` image is mapped to its folder file by the sha256 of its JPEG bytes, so the
                    numbers are those of :func:`fr.eval.evaluate_verification` on ``load_bin(path, size=...)``.
``lfw_allpairs``    IJB-style all-pairs on LFW (a stand-in, not IJB-B/C): every pair of the 13,233 images,
                    pooled TAR@FAR (:mod:`fr.eval.allpairs`). Genuine pairs only among the first ``lfw_cap``
                    (10) images of each identity in file order: uncapped, George W Bush alone would own 140,185
                    of the 242,257 genuine pairs (58 %); with 10 (CFP's frontal count) the largest identity owns
                    45 of 14,508 (0.3 %). Impostor pairs use every image (87.5 M pairs, FAR down to 1e-7).
``cfp_fp_allpairs`` the same on CFP, frontal x profile: 5,000 x 2,000 = 10 M pairs, 20,000 genuine (hard pose).
``cfp_ff_allpairs`` CFP frontal x frontal: 12.5 M pairs, 22,500 genuine.
``lfw_ident_lq``    TinyFace-style low-quality identification on LFW (a stand-in, not TinyFace): closed set,
                    gallery one image per identity with >= 2 images (the first image among its first
                    ``lfw_cap`` that the detector aligned), probes the others of those ``lfw_cap`` (4,740),
                    degraded by :class:`fr.data.transforms.LowQuality` (default ``face=24``: the 112 px crop down
                    to 24 px and back, the face inside it about 20 px high, TinyFace's typical face size), and
                    every image of the 4,069 single-image identities as distractors in the gallery. Rank-1/5/20,
                    CMC. The probe cap keeps a handful of people from dominating rank-1 (uncapped, five
                    identities would own 15 % of 7,484 probes; TinyFace has about 1.5 probes per identity).
``lfw_ident``       the same with undegraded probes, so the low-quality gap is visible.
``lfw_lq``          low-quality LFW verification: the 6,000 pairs of ``lfw.bin`` (insightface 10-fold, as
                    ``lfw``) with the *second* image of every pair degraded by the same transform as the
                    ``lfw_ident_lq`` probes (``TINYFACE_LIKE``) and the first left clean. This is the comparison
                    the identification protocol makes (a degraded probe against a clean enrolment image, the
                    surveillance case TinyFace stands for) on the standard pairs, so ``lfw - lfw_lq`` is the
                    quality gap on the same pairs and folds. Degrading both images would measure LQ-vs-LQ
                    matching instead, and cost about twice the degraded embeddings. A degraded image is one row
                    of the low-quality table whichever protocol asks for it: a file that is both an
                    ``lfw_ident_lq`` probe and a second pair image is degraded and embedded once (the
                    transform acts on each image alone; with ``noise_std`` set, the noise stream runs over the
                    degraded rows in manifest order, so the noise of an image depends on which rows are
                    degraded together).
``cfp_ident_pose``  CFP: gallery one frontal image per identity (the first detector-aligned), probes all 2,000
                    profile images: the pose case.
==================  ===========================================================================================

Cost: the whole suite embeds 20,203 distinct clean images and 6,917 degraded ones (the 4,740 identification
probes and the second images of the 6,000 LFW pairs, 2,177 of which are not probes): 27,120, 4 % more than the
26,000 that ``evaluate_verification`` embeds for ``lfw.bin`` and ``cfp_fp.bin`` alone (without ``lfw_lq``: 24,943).
The forward passes are about 95 % of the time on a CPU (decoding goes through a cache, every protocol together
takes about 20 CPU-seconds); ``benchmarks/bench_eval_suite.py`` measures both, and the opt-in speed switches
(``fold_bn``, ``compile``, ``amp``) of :func:`evaluate_suite`, which change float rounding and therefore are off
by default (recorded metrics are reproduced exactly only without them). A subset of protocols embeds only the images it needs (``lfw`` + ``cfp_fp``: 13,591).

    >>> res = fr.eval.evaluate_suite(model, protocols=("lfw", "cfp_fp", "lfw_allpairs"), flip="sum")
    >>> print(res.summary()); json.dump(res.to_dict(), f)

For repeated evaluations (a training run's periodic checks) build the data once with :func:`prepare_suite`
and pass it as ``data=``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..data.identification import FaceManifest, load_faces, load_manifest
from ..data.transforms import LowQuality
from .allpairs import ALLPAIRS_FARS, PROTOCOL_STEM, AllPairsResult, all_pairs_verification
from .identification import DEFAULT_RANKS, IdentificationResult, evaluate_identification
from .verification import Protocol, VerificationResult, verify_embeddings

SUITE_PROTOCOLS: dict[str, str] = {
    "lfw": "insightface 10-fold verification on lfw.bin",
    "cfp_fp": "insightface 10-fold verification on cfp_fp.bin",
    "cfp_ff": "insightface 10-fold verification on cfp_ff.bin",
    "lfw_allpairs": "IJB-style all-pairs on LFW (stand-in, not IJB-B/C)",
    "cfp_fp_allpairs": "IJB-style all-pairs on CFP frontal x profile (stand-in, not IJB-B/C)",
    "cfp_ff_allpairs": "IJB-style all-pairs on CFP frontal x frontal (stand-in, not IJB-B/C)",
    "lfw_ident": "closed-set identification on LFW with clean probes (reference for lfw_ident_lq)",
    "lfw_ident_lq": "TinyFace-style low-quality identification on LFW (stand-in, not TinyFace)",
    "lfw_lq": "insightface 10-fold verification on lfw.bin, second image of each pair low-quality (TinyFace-like)",
    "cfp_ident_pose": "closed-set identification on CFP: frontal gallery, profile probes (pose)",
}
DEFAULT_PROTOCOLS = tuple(SUITE_PROTOCOLS)
BIN_SETS = ("lfw", "cfp_fp", "cfp_ff")
LQ_BIN_SETS = {"lfw_lq": "lfw"}  # low-quality verification protocol -> the .bin whose pairs it degrades
LFW_CAP = 10
TINYFACE_LIKE = LowQuality(face_size=24)
IDENT_STEM = "closed-set rank-N/cos"

SuiteItem = VerificationResult | AllPairsResult | IdentificationResult


# --- plans: which images each protocol uses --------------------------------------------------------------
# built in manifest rows, then mapped (to_slots) to rows of the embedding tables: the clean one (one row per
# distinct image) and the low-quality one (degraded probes)

@dataclass(frozen=True)
class _BinPlan:
    name: str
    slots: np.ndarray          # (2N,) images, pairs interleaved; rows of the low-quality table where degraded
    issame: np.ndarray
    sha256: str
    path: str
    degraded: np.ndarray | None = None   # (2N,) bool: which images come from the low-quality table
    protocol_suffix: str = ""            # appended to the verification protocol string

    def clean_rows(self) -> list[np.ndarray]:
        return [self.slots if self.degraded is None else self.slots[~self.degraded]]

    def lq_rows(self) -> list[np.ndarray]:
        return [] if self.degraded is None else [self.slots[self.degraded]]

    def to_slots(self, clean, lq) -> "_BinPlan":
        if self.degraded is None:
            return replace(self, slots=clean(self.slots))
        slots = self.slots.copy()
        slots[~self.degraded], slots[self.degraded] = clean(self.slots[~self.degraded]), lq(self.slots[self.degraded])
        return replace(self, slots=slots)


@dataclass(frozen=True)
class _AllPairsPlan:
    protocol: str              # without the flip part
    a: np.ndarray
    ids_a: np.ndarray
    eligible_a: np.ndarray
    b: np.ndarray | None = None
    ids_b: np.ndarray | None = None
    settings: dict = field(default_factory=dict)

    def clean_rows(self) -> list[np.ndarray]:
        return [self.a] + ([] if self.b is None else [self.b])

    def lq_rows(self) -> list[np.ndarray]:
        return []

    def to_slots(self, clean, lq) -> "_AllPairsPlan":
        return replace(self, a=clean(self.a), b=None if self.b is None else clean(self.b))


@dataclass(frozen=True)
class _IdentPlan:
    protocol: str
    probes: np.ndarray         # slots of the clean table, or of the low-quality table when lq
    probe_ids: np.ndarray
    gallery: np.ndarray
    gallery_ids: np.ndarray
    distractors: np.ndarray | None
    lq: bool
    settings: dict = field(default_factory=dict)

    def clean_rows(self) -> list[np.ndarray]:
        return [self.gallery] + ([] if self.lq else [self.probes]) + \
            ([] if self.distractors is None else [self.distractors])

    def lq_rows(self) -> list[np.ndarray]:
        return [self.probes] if self.lq else []

    def to_slots(self, clean, lq) -> "_IdentPlan":
        return replace(self, probes=(lq if self.lq else clean)(self.probes), gallery=clean(self.gallery),
                       distractors=None if self.distractors is None else clean(self.distractors))


@dataclass
class SuiteData:
    """Everything the protocols need except a model: decoded images and, per protocol, which of them it uses.

    ``images`` (clean, one row per distinct image, at ``size``) and ``lq_images`` (degraded probes) are uint8
    ``(N, 3, H, W)``; ``fingerprints`` holds the identification manifest's sha256 and each ``.bin``'s."""

    protocols: tuple[str, ...]
    size: tuple[int, int] | None
    manifest: FaceManifest = field(repr=False)
    rows: np.ndarray = field(repr=False)
    images: torch.Tensor = field(repr=False)
    lq_rows: np.ndarray | None = field(repr=False)
    lq_images: torch.Tensor | None = field(repr=False)
    plans: dict[str, Any] = field(repr=False)
    fingerprints: dict[str, Any]
    settings: dict[str, Any]
    load_seconds: float = 0.0

    @property
    def n_images(self) -> int:
        """Images a model embeds for this data: distinct clean images plus degraded probes."""
        return int(self.images.shape[0]) + (0 if self.lq_images is None else int(self.lq_images.shape[0]))


def _groups(ids: np.ndarray) -> list[np.ndarray]:
    """Positions of each identity (identities in sorted order; positions ascending, i.e. file order)."""
    order = np.argsort(ids, kind="stable")
    _, start = np.unique(ids[order], return_index=True)
    return np.split(order, start[1:])


def _first_detected(members: np.ndarray, detected: np.ndarray) -> int:
    ok = members[detected[members]]
    return int(ok[0] if ok.size else members[0])


def _bin_path(root: Path, name: str) -> Path:
    for p in (root / "verification" / f"{name}.bin", root / f"{name}.bin"):
        if p.is_file():
            return p
    raise FileNotFoundError(f"{name}.bin not found under {root} (looked in verification/ and the root)")


def prepare_suite(data_root=None, protocols: Iterable[str] = DEFAULT_PROTOCOLS, *, size=None,
                  lfw_cap: int = LFW_CAP, low_quality: LowQuality = TINYFACE_LIKE, bin_pairs: int | None = None,
                  cache: bool = True, verify: bool = True, progress: bool = False) -> SuiteData:
    """Load and decode what ``protocols`` need (see the module docstring), at ``size`` (int, ``(h, w)``, or None
    for the files' 112x112), once.

    bin_pairs: evaluate the ``.bin`` protocols on the fold-balanced subset ``load_bin(n_pairs=...)`` takes.
    cache, verify: as :func:`fr.data.identification.load_faces` (decoded tensors cached; per-file sha256 checked
    when a file is read)."""
    from ..paths import data_root as default_root

    t0 = time.perf_counter()
    protocols = tuple(protocols)
    unknown = [p for p in protocols if p not in SUITE_PROTOCOLS]
    if unknown or not protocols:
        raise KeyError(f"unknown suite protocols {unknown}; known: {', '.join(SUITE_PROTOCOLS)}")
    if int(lfw_cap) < 2:
        raise ValueError(f"lfw_cap must be at least 2 (a genuine pair needs two images), got {lfw_cap}")
    root = Path(data_root) if data_root is not None else default_root()
    target = None if size is None else ((int(size), int(size)) if isinstance(size, int) else tuple(map(int, size)))
    manifest = load_manifest(root / "identification")
    fingerprints: dict[str, Any] = {"identification": manifest.fingerprint, "bins": {}}
    settings: dict[str, Any] = {"size": None if target is None else list(target), "bin_pairs": bin_pairs}

    # plans in manifest rows first (probes of low-quality plans index the degraded images)
    plans: dict[str, Any] = {}
    if any(p.startswith("lfw_") and p not in LQ_BIN_SETS for p in protocols):
        plans.update(_lfw_plans(manifest, protocols, int(lfw_cap), low_quality))
        settings["lfw"] = {"cap": int(lfw_cap), "cap_rule": f"first {lfw_cap} images of each identity in file "
                           "order", "gallery_rule": "first detector-aligned image among the capped ones",
                           "low_quality": low_quality.tag()}
    if any(p.startswith("cfp_") and p not in BIN_SETS for p in protocols):
        plans.update(_cfp_plans(manifest, protocols))
    for name in BIN_SETS:
        lq_names = [q for q, b in LQ_BIN_SETS.items() if b == name and q in protocols]
        if name in protocols or lq_names:
            plan = _bin_plan(root, name, manifest, bin_pairs)
            fingerprints["bins"][name] = plan.sha256
            if name in protocols:
                plans[name] = plan
            for q in lq_names:
                plans[q] = _degraded_bin_plan(plan, q, low_quality)
                settings[q] = {"degraded": "the second image of every pair", "low_quality": low_quality.tag()}

    # one embedding per distinct image: rows holding the same bytes share the first such row's slot
    first_of_sha = manifest.first_row_of_sha()
    canon = np.array([first_of_sha[h] for h in manifest.sha256], dtype=np.int64)
    clean_rows = np.unique(canon[np.concatenate([r for p in plans.values() for r in p.clean_rows()])])
    lq_parts = [r for p in plans.values() for r in p.lq_rows()]
    lq_rows = np.unique(canon[np.concatenate(lq_parts)]) if lq_parts else None
    slot = np.full(len(manifest), -1, dtype=np.int64)
    slot[clean_rows] = np.arange(clean_rows.size)
    lq_slot = np.full(len(manifest), -1, dtype=np.int64)
    if lq_rows is not None:
        lq_slot[lq_rows] = np.arange(lq_rows.size)
    plans = {name: p.to_slots(lambda r: slot[canon[r]], lambda r: lq_slot[canon[r]]) for name, p in plans.items()}

    images = load_faces(manifest, clean_rows, size=target, cache=cache, verify=verify, progress=progress)
    lq_images = None if lq_rows is None else load_faces(manifest, lq_rows, size=target, low_quality=low_quality,
                                                         cache=cache, verify=verify, progress=progress)
    dups = manifest.cross_identity_duplicates()
    if dups:
        fingerprints["cross_identity_duplicates"] = [list(d) for d in dups]
    return SuiteData(protocols, target, manifest, clean_rows, images, lq_rows, lq_images, plans, fingerprints,
                     settings, time.perf_counter() - t0)


def _lfw_plans(manifest: FaceManifest, protocols: tuple[str, ...], cap: int, low_quality: LowQuality) -> dict:
    lfw = np.flatnonzero(np.char.startswith(manifest.identities.astype(str), "lfw:"))
    ids = manifest.identities[lfw]
    capped = np.zeros(lfw.size, dtype=bool)
    gallery, probes, distractors = [], [], []
    for members in _groups(ids):
        capped[members[:cap]] = True
        if members.size == 1:
            distractors.append(members[0])
            continue
        head = members[:cap]
        g = _first_detected(head, manifest.detected[lfw])
        gallery.append(g)
        probes.extend(int(m) for m in head if m != g)
    gallery, probes, distractors = (np.asarray(x, dtype=np.int64) for x in (gallery, probes, distractors))
    plans: dict[str, Any] = {}
    if "lfw_allpairs" in protocols:
        plans["lfw_allpairs"] = _AllPairsPlan(
            f"{PROTOCOL_STEM}/cos/{{method}}/genuine-cap{cap}", lfw, ids, capped,
            settings={"genuine_cap": cap, "genuine": f"pairs among the first {cap} images of an identity (file "
                      "order)", "impostor": "every pair of images of different identities"})
    for name, lq in (("lfw_ident", False), ("lfw_ident_lq", True)):
        if name in protocols:
            probe_tag = f"probes-lq({low_quality.tag()})" if lq else "probes-clean"
            plans[name] = _IdentPlan(
                f"{IDENT_STEM}/gallery-1-per-id+distractors/{probe_tag}/cap{cap}", lfw[probes], ids[probes],
                lfw[gallery], ids[gallery], lfw[distractors], lq,
                settings={"probe_cap": cap - 1, "gallery": f"first detector-aligned image among an identity's "
                          f"first {cap}", "distractors": "every image of the identities with one image",
                          **({"low_quality": low_quality.tag()} if lq else {})})
    return plans


def _cfp_plans(manifest: FaceManifest, protocols: tuple[str, ...]) -> dict:
    cfp = np.flatnonzero(np.char.startswith(manifest.identities.astype(str), "cfp:"))
    pose = np.array([manifest.paths[i].split("/")[-2] for i in cfp])
    odd = np.flatnonzero(~np.isin(pose, ("frontal", "profile")))
    if odd.size:
        raise ValueError(f"{manifest.file(int(cfp[odd[0]]))}: CFP images must lie in frontal/ or profile/")
    frontal, profile = cfp[pose == "frontal"], cfp[pose == "profile"]
    fid, pid = manifest.identities[frontal], manifest.identities[profile]
    plans: dict[str, Any] = {}
    if "cfp_fp_allpairs" in protocols:
        plans["cfp_fp_allpairs"] = _AllPairsPlan(f"{PROTOCOL_STEM}/cos/{{method}}/frontal-x-profile", frontal, fid,
                                                 np.ones(frontal.size, bool), profile, pid,
                                                 {"pairs": "every frontal x profile pair"})
    if "cfp_ff_allpairs" in protocols:
        plans["cfp_ff_allpairs"] = _AllPairsPlan(f"{PROTOCOL_STEM}/cos/{{method}}/frontal-x-frontal", frontal, fid,
                                                 np.ones(frontal.size, bool),
                                                 settings={"pairs": "every pair of frontal images"})
    if "cfp_ident_pose" in protocols:
        gal = np.asarray([frontal[_first_detected(m, manifest.detected[frontal])] for m in _groups(fid)])
        plans["cfp_ident_pose"] = _IdentPlan(f"{IDENT_STEM}/frontal-gallery-1-per-id/profile-probes", profile, pid,
                                             gal, manifest.identities[gal], None, False,
                                             {"gallery": "first detector-aligned frontal image of each identity",
                                              "probes": "every profile image"})
    return plans


def _bin_plan(root: Path, name: str, manifest: FaceManifest, bin_pairs: int | None) -> _BinPlan:
    """The pairs of ``<name>.bin`` as manifest rows, found by the sha256 of each image's bytes."""
    from ..data._util import sha256_bytes, sha256_file
    from ..data.bins import NUM_FOLDS, _fold_subset_indices, read_bin_raw

    path = _bin_path(root, name)
    bins, issame = read_bin_raw(path)
    pair_ids = list(range(len(issame)))
    label = name
    if bin_pairs is not None and bin_pairs != len(issame):
        pair_ids = _fold_subset_indices(issame, int(bin_pairs), NUM_FOLDS, str(path))
        label = f"{name}[{bin_pairs}]"
    first_of_sha = manifest.first_row_of_sha()
    rows = []
    for k in pair_ids:
        for r in (2 * k, 2 * k + 1):
            h = sha256_bytes(bins[r])
            if h not in first_of_sha:
                raise KeyError(f"{path}, image {r} (pair {k}): its bytes (sha256 {h[:16]}…) are not in "
                               f"{manifest.root / 'MANIFEST.tsv'}; the folders must hold every .bin image")
            rows.append(first_of_sha[h])
    return _BinPlan(label, np.asarray(rows, dtype=np.int64), np.asarray([issame[k] for k in pair_ids], dtype=bool),
                    sha256_file(path), str(path))


def _degraded_bin_plan(plan: _BinPlan, name: str, low_quality: LowQuality) -> _BinPlan:
    """``plan``'s pairs with the second image of every pair taken from the low-quality table."""
    degraded = np.zeros(plan.slots.size, dtype=bool)
    degraded[1::2] = True
    label = name if plan.name == LQ_BIN_SETS[name] else plan.name.replace(LQ_BIN_SETS[name], name, 1)
    return replace(plan, name=label, degraded=degraded,
                   protocol_suffix=f"/second-image-lq({low_quality.tag()})")


# --- results ----------------------------------------------------------------------------------------------

@dataclass
class SuiteResult:
    """Results by protocol name (``res["lfw_allpairs"]``), with the data fingerprints, what was embedded and
    the time each stage took. ``to_dict()`` is JSON-ready; ``summary()`` one line a protocol."""

    results: dict[str, SuiteItem]
    fingerprints: dict[str, Any]
    embedding: dict[str, Any]
    timing: dict[str, Any]
    settings: dict[str, Any]

    def __getitem__(self, name: str) -> SuiteItem:
        return self.results[name]

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def summary(self) -> str:
        return "\n".join(r.summary() for r in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name, r in self.results.items():
            d = r.to_dict()
            d["title"] = d.get("title") or SUITE_PROTOCOLS[name]
            out[name] = d
        return {"schema": 1, "protocols": out, "fingerprints": self.fingerprints, "embedding": self.embedding,
                "timing": self.timing, "settings": self.settings}


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _pair_features(plan: _BinPlan, e, nr, lq, lq_norms):
    """The ``(2N, D)`` features (and norms, or None) of a ``.bin`` plan's images, from the clean table and, where
    ``plan.degraded``, from the low-quality one."""
    if plan.degraded is None:
        return e[plan.slots], None if nr is None else nr[plan.slots]
    d, s = plan.degraded, plan.slots
    pe = np.empty((s.size, e.shape[1]), dtype=e.dtype)
    pe[~d], pe[d] = e[s[~d]], lq[s[d]]
    if nr is None or lq_norms is None:
        return pe, None
    pn = np.empty(s.size, dtype=nr.dtype)
    pn[~d], pn[d] = nr[s[~d]], lq_norms[s[d]]
    return pe, pn


def evaluate_features(data: SuiteData, emb, norms=None, lq_emb=None, lq_norms=None, *,
                      flip: str | None = None,
                      protocols: Iterable[str] | None = None, verification_protocol: str | Protocol = "insightface",
                      allpairs_fars: Iterable[float] = ALLPAIRS_FARS, allpairs_method: str = "floor",
                      ranks: Iterable[int] = DEFAULT_RANKS, block: int = 2048) -> SuiteResult:
    """Every protocol of ``data`` from precomputed features: ``emb`` (one row per ``data.images`` row),
    optional ``norms`` (per image, recorded as the ``.bin`` results' ``mean_norm``), ``lq_emb`` and ``lq_norms``
    (one row per ``data.lq_images`` row). ``flip`` is only recorded in the protocol strings."""
    protocols = tuple(data.protocols if protocols is None else protocols)
    missing = [p for p in protocols if p not in data.plans]
    if missing:
        raise KeyError(f"the suite data was prepared without {missing}; prepare_suite(protocols=...) must "
                       "include them")
    e = _np(emb)
    if e.ndim != 2 or e.shape[0] != data.images.shape[0]:
        raise ValueError(f"emb must have one row per suite image ({data.images.shape[0]}), got {e.shape}")
    nr = None if norms is None else _np(norms).reshape(-1)
    lq = None if lq_emb is None else _np(lq_emb)
    lq_norms = None if lq_norms is None else _np(lq_norms).reshape(-1)
    if data.lq_images is not None and any(data.plans[p].lq_rows() for p in protocols):
        if lq is None or lq.shape != (data.lq_images.shape[0], e.shape[1]):
            raise ValueError(f"lq_emb must be ({data.lq_images.shape[0]}, {e.shape[1]}), got "
                             f"{None if lq is None else lq.shape}")
    fl = f"/flip-{flip or 'unknown'}"
    fp = data.fingerprints["identification"]
    results: dict[str, SuiteItem] = {}
    seconds: dict[str, float] = {}
    for name in protocols:
        t0 = time.perf_counter()
        plan = data.plans[name]
        if isinstance(plan, _BinPlan):
            pe, pn = _pair_features(plan, e, nr, lq, lq_norms)
            res = verify_embeddings(pe, plan.issame, verification_protocol, flip=flip, name=plan.name,
                                    sha256=plan.sha256, norms=pn)
            results[name] = replace(res, protocol=res.protocol + plan.protocol_suffix) if plan.protocol_suffix \
                else res
        elif isinstance(plan, _AllPairsPlan):
            results[name] = all_pairs_verification(
                e[plan.a], plan.ids_a, None if plan.b is None else e[plan.b], plan.ids_b,
                genuine_eligible=plan.eligible_a, fars=allpairs_fars, method=allpairs_method, block=block,
                name=name, title=SUITE_PROTOCOLS[name], sha256=fp,
                protocol=plan.protocol.format(method=allpairs_method) + fl, settings=plan.settings)
        else:
            probes = (lq if plan.lq else e)[plan.probes]
            results[name] = evaluate_identification(
                probes, plan.probe_ids, e[plan.gallery], plan.gallery_ids,
                None if plan.distractors is None else e[plan.distractors], ranks=ranks, name=name,
                title=SUITE_PROTOCOLS[name], protocol=plan.protocol + fl, sha256=fp, settings=plan.settings)
        seconds[name] = time.perf_counter() - t0
    return SuiteResult(results, data.fingerprints,
                       {"n_clean": int(data.images.shape[0]),
                        "n_low_quality": 0 if data.lq_images is None else int(data.lq_images.shape[0]),
                        "flip": flip, "size": None if data.size is None else list(data.size)},
                       {"protocols": seconds}, dict(data.settings))


def evaluate_suite(model, *, data: SuiteData | None = None, data_root=None,
                   protocols: Iterable[str] = DEFAULT_PROTOCOLS, device=None, batch_size: int = 256,
                   flip: str = "sum", spec=None, lfw_cap: int = LFW_CAP, low_quality: LowQuality = TINYFACE_LIKE,
                   bin_pairs: int | None = None, verification_protocol: str | Protocol = "insightface",
                   allpairs_fars: Iterable[float] = ALLPAIRS_FARS, allpairs_method: str = "floor",
                   ranks: Iterable[int] = DEFAULT_RANKS, cache: bool = True, fold_bn: bool = False,
                   compile: bool = False, amp: str = "none", progress: bool = False) -> SuiteResult:
    """Embed every image the ``protocols`` need once with ``model`` and evaluate them all.

    model:     an fr backbone (``model(x) -> (embedding, norm)`` with ``model.input_spec``) or any model
               :func:`fr.eval.extract_embeddings` accepts (then pass ``spec``).
    data:      a :class:`SuiteData` from :func:`prepare_suite` (reused across calls); built here when None, at
               the model's input size, from ``data_root`` (default ``FR_DATA``). Only the images that
               ``protocols`` use are embedded, so data prepared for more protocols serves a subset cheaply.
    flip, batch_size, device, amp: as :func:`fr.eval.extract_embeddings` (each image and its mirror, "sum").
    fold_bn, compile: opt-in inference rewrites (:func:`fr.eval.embed.inference_model`); faster, but they change
               float rounding, so recorded metrics are reproduced exactly only without them (the default).
               ``timing["rewrite"]`` is the folding; compilation happens lazily, in the first batch of each shape,
               and is part of ``timing["embed"]``.
    The remaining arguments choose the protocols' settings (module docstring)."""
    from .embed import extract_embeddings, inference_model

    t_start = time.perf_counter()
    spec = spec if spec is not None else getattr(model, "input_spec", None)
    if spec is None:
        raise TypeError(f"{type(model).__name__} has no .input_spec; pass spec= (an fr.backbones.InputSpec)")
    protocols = tuple(protocols)
    want = None if getattr(spec, "size", None) is None else tuple(int(s) for s in spec.size)
    data_given = data is not None
    if data is None:
        data = prepare_suite(data_root, protocols, size=want, lfw_cap=lfw_cap, low_quality=low_quality,
                             bin_pairs=bin_pairs, cache=cache, progress=progress)
    elif data.size != want:
        raise ValueError(f"the suite data was decoded at {data.size}, the model expects {want}")
    missing = [p for p in protocols if p not in data.plans]
    if missing:
        raise KeyError(f"the suite data was prepared without {missing}; prepare_suite(protocols=...) must "
                       "include them")
    t_rewrite = time.perf_counter()
    model = inference_model(model, fold_bn=fold_bn, compile=compile)
    rewrite_s = time.perf_counter() - t_rewrite
    plans = [data.plans[p] for p in protocols]
    clean = np.unique(np.concatenate([r for p in plans for r in p.clean_rows()]))
    lq_parts = [r for p in plans for r in p.lq_rows()]

    def embed(images: torch.Tensor, rows: np.ndarray):
        """Embeddings of ``images[rows]``, scattered back to one row per image (rows not asked for stay 0)."""
        sub = images if rows.size == images.shape[0] else images[torch.from_numpy(rows)]
        e, n = extract_embeddings(model, sub, spec, flip=flip, batch_size=batch_size, device=device, amp=amp,
                                  progress=progress)
        if rows.size == images.shape[0]:
            return e, n
        full_e, full_n = e.new_zeros((images.shape[0], e.shape[1])), n.new_zeros(images.shape[0])
        full_e[torch.from_numpy(rows)], full_n[torch.from_numpy(rows)] = e, n
        return full_e, full_n

    t_embed = time.perf_counter()
    emb, norms = embed(data.images, clean)
    lq_emb, lq_norms, n_lq = None, None, 0
    if lq_parts:
        lq_rows = np.unique(np.concatenate(lq_parts))
        lq_emb, lq_norms = embed(data.lq_images, lq_rows)
        n_lq = int(lq_rows.size)
    embed_s = time.perf_counter() - t_embed
    res = evaluate_features(data, emb, norms, lq_emb, lq_norms, flip=flip, protocols=protocols,
                            verification_protocol=verification_protocol, allpairs_fars=allpairs_fars,
                            allpairs_method=allpairs_method, ranks=ranks)
    res.embedding.update({"batch_size": int(batch_size), "device": str(device) if device is not None else None,
                          "n_images_embedded": int(clean.size) + n_lq,
                        **({"fold_bn": True} if fold_bn else {}), **({"compile": True} if compile else {}),
                        **({"amp": amp} if amp != "none" else {})})
    res.timing.update({"load": data.load_seconds, "data_reused": data_given, "rewrite": rewrite_s, "embed": embed_s,
                       "total": time.perf_counter() - t_start})
    return res
