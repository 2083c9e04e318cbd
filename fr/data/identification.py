"""Identity-labelled face folders read through their manifest (``identification/`` under the data root).

Layout: ``<root>/MANIFEST.tsv`` (tab-separated, header ``path identity alignment sha256``) lists every image:
its path under ``<root>``, its identity (``lfw:<Name>``, ``cfp:<NNN>``: a set prefix, a colon, a name), whether
the detector found the face (``detected``) or a central crop was used (``fallback``), and the sha256 of the file.

Integrity, in two levels:

* the **manifest's own sha256** is the fingerprint of the whole folder (every result derived from it records
  it). :func:`load_manifest` checks it against a ``SHA256SUMS`` file next to the folder or inside it when one
  lists the manifest, and against ``expected_sha256`` when given; a mismatch is an error.
* **per-file sha256**, checked lazily: a file is hashed when it is read (:meth:`FaceManifest.read_bytes`), so a
  decode verifies exactly the files it uses; a cached decode (below) is keyed by the manifest's fingerprint.

:func:`load_faces` decodes images with Pillow to uint8 ``(N, 3, H, W)`` RGB, resizing as :func:`fr.data.load_bin`
does (antialiased bilinear on uint8, rounded), so an image shared with a ``.bin`` set decodes to the same
pixels, optionally degraded first (:class:`fr.data.transforms.LowQuality`, at the files' own resolution). The
result is cached like the training set (:func:`fr.data.datasets.cache_dir`), keyed by the manifest fingerprint,
the rows, the size and the degradation.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import torch

from ..paths import data_root
from ._util import atomic_torch_save, decode_chw, sha256_bytes
from .transforms import LowQuality, resize

__all__ = ["FaceManifest", "ManifestError", "FaceFileError", "load_manifest", "load_faces", "MANIFEST_NAME",
           "MANIFEST_COLUMNS"]

MANIFEST_NAME = "MANIFEST.tsv"
MANIFEST_COLUMNS = ("path", "identity", "alignment", "sha256")
ALIGNMENTS = ("detected", "fallback")
FACES_CACHE_VERSION = 1  # bump when the decoding or the cache layout changes
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A malformed manifest, or one whose sha256 is not the one expected; the message names file and line."""


class FaceFileError(ValueError):
    """A file listed in the manifest whose bytes do not match its sha256."""


@dataclass(frozen=True)
class FaceManifest:
    """The rows of a manifest (all of it, or one set such as ``"lfw"``), in file order.

    ``paths`` are relative to ``root``; ``identities`` e.g. ``"lfw:Aaron_Eckhart"``; ``detected`` False where
    the face was a central-crop fallback; ``sha256`` per file; ``fingerprint`` the sha256 of the manifest file
    (the same for every subset: it identifies the folder); ``rows`` the row numbers in the full manifest."""

    root: Path
    paths: tuple[str, ...] = field(repr=False)
    identities: np.ndarray = field(repr=False)
    detected: np.ndarray = field(repr=False)
    sha256: tuple[str, ...] = field(repr=False)
    fingerprint: str = ""
    subset: str = ""
    rows: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.rows is None:
            object.__setattr__(self, "rows", np.arange(len(self.paths)))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def name(self) -> str:
        return f"{self.root.name}{'/' + self.subset if self.subset else ''}"

    @property
    def num_identities(self) -> int:
        return int(np.unique(self.identities).size)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, names)``: identity codes ``0..K-1`` per row (names sorted) and the K identity names."""
        names, codes = np.unique(self.identities, return_inverse=True)
        return codes.reshape(-1), names

    def select(self, subset: str) -> "FaceManifest":
        """The rows of one set, by identity prefix (``"lfw"`` selects ``lfw:*``)."""
        keep = np.flatnonzero(np.char.startswith(self.identities.astype(str), f"{subset}:"))
        if keep.size == 0:
            prefixes = sorted({i.split(":", 1)[0] for i in self.identities.tolist()})
            raise KeyError(f"{self.root / MANIFEST_NAME}: no identity with prefix {subset!r}; sets: "
                           f"{', '.join(prefixes)}")
        return self.take(keep, subset=subset)

    def take(self, idx, *, subset: str | None = None) -> "FaceManifest":
        """The rows ``idx`` (positions in this manifest) as a manifest of their own."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return replace(self, paths=tuple(self.paths[i] for i in idx), identities=self.identities[idx],
                       detected=self.detected[idx], sha256=tuple(self.sha256[i] for i in idx),
                       subset=self.subset if subset is None else subset, rows=self.rows[idx])

    def file(self, i: int) -> Path:
        return self.root / self.paths[i]

    def read_bytes(self, i: int, *, verify: bool = True) -> bytes:
        """The bytes of row ``i``; with ``verify`` its sha256 is checked against the manifest."""
        p = self.file(i)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: listed in {self.root / MANIFEST_NAME} (row {int(self.rows[i]) + 1}) "
                                    "but missing") from None
        if verify:
            got = hashlib.sha256(data).hexdigest()
            if got != self.sha256[i]:
                raise FaceFileError(f"{p}: sha256 {got[:16]}… does not match the manifest's "
                                    f"{self.sha256[i][:16]}… (row {int(self.rows[i]) + 1}); the file was changed "
                                    "or the manifest belongs to another copy")
        return data

    def first_row_of_sha(self) -> dict[str, int]:
        """sha256 -> the first row holding those bytes (byte-identical files share one entry)."""
        out: dict[str, int] = {}
        for i, h in enumerate(self.sha256):
            out.setdefault(h, i)
        return out

    def cross_identity_duplicates(self) -> list[tuple[str, str]]:
        """Pairs of paths with identical bytes but different identities (label noise of the source set)."""
        groups: dict[str, list[int]] = {}
        for i, h in enumerate(self.sha256):
            groups.setdefault(h, []).append(i)
        out = []
        for rows in groups.values():
            for a in range(len(rows)):
                for b in range(a + 1, len(rows)):
                    if self.identities[rows[a]] != self.identities[rows[b]]:
                        out.append((self.paths[rows[a]], self.paths[rows[b]]))
        return sorted(out)


def _expected_from_sums(manifest: Path) -> tuple[str, Path] | None:
    """The manifest's sha256 as listed by a ``SHA256SUMS`` in its folder or the one above, if any."""
    target = manifest.resolve()
    for sums in (manifest.parent / "SHA256SUMS", manifest.parent.parent / "SHA256SUMS"):
        if not sums.is_file():
            continue
        for line in sums.read_text().splitlines():
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2 and (sums.parent / parts[1].lstrip("*")).resolve() == target:
                return parts[0].lower(), sums
    return None


def load_manifest(root=None, *, expected_sha256: str | None = None) -> FaceManifest:
    """Read and validate ``<root>/MANIFEST.tsv`` (``root`` defaults to ``identification/`` under the data root).

    Checks: the header, four fields a row, relative paths without ``..``, unique paths, ``prefix:name``
    identities, alignment ``detected``/``fallback``, 64-hex sha256s; and the manifest's own sha256 against
    ``SHA256SUMS`` (when it lists the manifest) and ``expected_sha256`` (when given). Files are not opened here.
    """
    root = Path(root) if root is not None else data_root() / "identification"
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"identification manifest not found: {path} (set FR_DATA to the data root that "
                                "holds identification/)")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    listed = _expected_from_sums(path)
    if listed is not None and listed[0] != digest:
        raise ManifestError(f"{path}: sha256 {digest[:16]}… differs from {listed[1]}'s {listed[0][:16]}…; the "
                            "manifest was changed")
    if expected_sha256 is not None and expected_sha256.lower() != digest:
        raise ManifestError(f"{path}: sha256 {digest[:16]}… is not the expected {expected_sha256[:16]}…")
    lines = raw.decode("utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != MANIFEST_COLUMNS:
        raise ManifestError(f"{path}: header must be {'<TAB>'.join(MANIFEST_COLUMNS)!r}, got "
                            f"{lines[0] if lines else ''!r}")
    paths, ids, det, shas = [], [], [], []
    seen: set[str] = set()
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 4:
            raise ManifestError(f"{path}, line {n}: expected 4 tab-separated fields, got {len(f)}")
        p, ident, align, sha = f
        pp = PurePosixPath(p)
        if pp.is_absolute() or ".." in pp.parts or not p:
            raise ManifestError(f"{path}, line {n}: path {p!r} must be relative to the folder, without '..'")
        if p in seen:
            raise ManifestError(f"{path}, line {n}: path {p!r} is listed twice")
        if ":" not in ident or not ident.split(":", 1)[0] or not ident.split(":", 1)[1]:
            raise ManifestError(f"{path}, line {n}: identity {ident!r} is not 'set:name'")
        if align not in ALIGNMENTS:
            raise ManifestError(f"{path}, line {n}: alignment {align!r} is not one of {ALIGNMENTS}")
        if not _HEX64.fullmatch(sha):
            raise ManifestError(f"{path}, line {n}: sha256 {sha!r} is not 64 lower-case hex digits")
        seen.add(p)
        paths.append(p)
        ids.append(ident)
        det.append(align == "detected")
        shas.append(sha)
    if not paths:
        raise ManifestError(f"{path}: no images listed")
    return FaceManifest(root=root, paths=tuple(paths), identities=np.asarray(ids, dtype=object),
                        detected=np.asarray(det, dtype=bool), sha256=tuple(shas), fingerprint=digest)


def _decode(manifest: FaceManifest, idx: np.ndarray, size, low_quality: LowQuality | None, verify: bool,
            progress: bool, chunk: int = 512) -> torch.Tensor:
    gen = None if low_quality is None else low_quality.generator()
    out = None
    starts = range(0, idx.size, chunk)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=f"decode {manifest.name}", unit="chunk")
    for s in starts:
        rows = idx[s:s + chunk]
        arrays = [decode_chw(manifest.read_bytes(int(i), verify=verify), where=str(manifest.file(int(i))))
                  for i in rows]
        odd = next((j for j, a in enumerate(arrays) if a.shape != arrays[0].shape), None)
        if odd is not None:
            raise ValueError(f"{manifest.file(int(rows[odd]))}: size {arrays[odd].shape[1:]} differs from "
                             f"{manifest.file(int(rows[0]))}'s {arrays[0].shape[1:]}; the folder must hold one "
                             "image size")
        x = torch.from_numpy(np.stack(arrays))
        if low_quality is not None:
            x = low_quality(x, generator=gen)
        if size is not None:
            x = resize(x, size)
        if out is None:
            out = torch.empty((idx.size, *x.shape[1:]), dtype=torch.uint8)
        elif tuple(x.shape[1:]) != tuple(out.shape[1:]):
            raise ValueError(f"{manifest.file(int(rows[0]))}: decoded to {tuple(x.shape[1:])}, earlier images to "
                             f"{tuple(out.shape[1:])}; pass size=")
        out[s:s + len(rows)] = x
    return out


def load_faces(manifest: FaceManifest, indices: Sequence[int] | np.ndarray | None = None, *, size=None,
               low_quality: LowQuality | None = None, cache: bool = True, cache_root=None, verify: bool = True,
               progress: bool = False) -> torch.Tensor:
    """Decode rows ``indices`` of ``manifest`` (all rows when None) to uint8 ``(N, 3, H, W)`` RGB.

    size:        int or ``(h, w)``; resized after decoding (and after ``low_quality``) as ``load_bin`` does.
    low_quality: a degradation applied at the files' own resolution before resizing (so its ``face_size`` is
                 in pixels of the stored 112x112 crop); deterministic for the same rows and settings.
    cache:       keep the result under ``cache_root or fr.data.datasets.cache_dir()``, keyed by the manifest
                 fingerprint, the rows' paths, the size and the degradation; written atomically.
    verify:      check each file's sha256 when it is read (cache misses only).
    """
    from .datasets import cache_dir

    idx = np.arange(len(manifest)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("load_faces: no rows requested")
    if idx.min() < 0 or idx.max() >= len(manifest):
        raise IndexError(f"load_faces: rows must be in [0, {len(manifest)}), got {int(idx.min())}..{int(idx.max())}")
    target = None if size is None else ((int(size), int(size)) if isinstance(size, int) else tuple(map(int, size)))
    lq = "" if low_quality is None else low_quality.tag()
    cache_file = None
    if cache:
        key = sha256_bytes(manifest.fingerprint, "\n".join(manifest.paths[i] for i in idx), str(target), lq,
                           str(FACES_CACHE_VERSION))
        tag = "native" if target is None else f"{target[0]}x{target[1]}"
        cache_file = Path(cache_root or cache_dir()) / (f"faces-{key[:24]}-{idx.size}-{tag}"
                                                        f"{'-lq' if lq else ''}-v{FACES_CACHE_VERSION}.pt")
        if cache_file.exists():
            try:
                blob = torch.load(cache_file, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:  # unreadable (e.g. written by an incompatible torch): decode again
                warnings.warn(f"ignoring unreadable cache {cache_file} ({type(e).__name__}: {e}); decoding again", stacklevel=2)
                blob = {}
            if blob.get("key") == key and blob.get("version") == FACES_CACHE_VERSION \
                    and blob["images"].shape[0] == idx.size:
                return blob["images"]
    images = _decode(manifest, idx, target, low_quality, verify, progress)
    if cache_file is not None:
        atomic_torch_save({"version": FACES_CACHE_VERSION, "key": key, "fingerprint": manifest.fingerprint,
                           "low_quality": lq, "images": images}, cache_file)
    return images
