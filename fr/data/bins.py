"""insightface ``.bin`` verification sets (LFW, CFP-FP, CFP-FF, AgeDB-30, CALFW, CPLFW, ...).

A ``.bin`` file is a pickle of ``(bins, issame_list)``: ``bins`` a list of encoded images (JPEG) laid out
as pairs ``[a0, b0, a1, b1, ...]``, ``issame_list`` one bool per pair; the 10 evaluation folds are
contiguous blocks of equal size in file order (insightface ``eval/verification.py``).

insightface opens these files with a plain ``pickle.load``, which runs any code a crafted file asks for.
:func:`load_bin` uses a restricted unpickler instead: it refuses every global reference (so no callable can
be reached: no ``os.system``, no ``__reduce__`` tricks) and accepts only bytes, bools, ints, lists and
tuples. Files pickled by Python 2 (the published insightface sets) load; a Python-3 pickle of ``bytes`` at
protocol <= 2 refers to the global ``_codecs.encode`` and is refused, as is a ``numpy.bool_`` label list;
re-save such a file with :func:`save_bin`, which writes protocol 4.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ._util import decode_chw, encode_jpeg, sha256_file
from .transforms import LowQuality, resize

__all__ = ["UnsafeBinError", "BinFormatError", "VerificationSet", "load_bin", "save_bin", "subset_bin", "read_bin_raw",
           "degrade", "NUM_FOLDS"]

NUM_FOLDS = 10


class UnsafeBinError(pickle.UnpicklingError):
    """A ``.bin`` pickle that asks for a global (a class or function): refused, nothing was executed."""


class BinFormatError(ValueError):
    """A ``.bin`` file whose content is not ``(list of image bytes, list of bools)`` with matching sizes."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")  # Python-2 str -> bytes, as insightface loads them
        self.path = path

    def find_class(self, module, name):
        raise UnsafeBinError(f"{self.path}: refusing to unpickle global {module}.{name}; a verification "
                             ".bin holds only image bytes and bools, so this file is malformed or malicious")

    def persistent_load(self, pid):
        raise UnsafeBinError(f"{self.path}: refusing persistent id {pid!r} in a verification .bin")


def read_bin_raw(path) -> tuple[list[bytes], list[bool]]:
    """``(bins, issame)`` from a ``.bin`` file through the restricted unpickler, with the structure checked
    (image count even, one label per pair) but no image decoded."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = _RestrictedUnpickler(f, path).load()
        except UnsafeBinError:
            raise
        except Exception as e:  # truncated or garbage pickle streams raise a zoo of exception types
            raise BinFormatError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise BinFormatError(f"{path}: expected a pickled pair (bins, issame_list), got {type(obj).__name__}"
                             + (f" of length {len(obj)}" if isinstance(obj, (tuple, list)) else ""))
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise BinFormatError(f"{path}: bins and issame_list must be lists, got {type(bins).__name__} and "
                             f"{type(issame).__name__}")
    for i, b in enumerate(bins):
        if not isinstance(b, (bytes, bytearray)):
            raise BinFormatError(f"{path}: image {i} is a {type(b).__name__}, expected encoded image bytes")
    labels = []
    for i, s in enumerate(issame):
        if isinstance(s, bool) or (isinstance(s, int) and s in (0, 1)):
            labels.append(bool(s))
        else:
            raise BinFormatError(f"{path}: issame_list[{i}] is {s!r}, expected a bool")
    if len(bins) % 2:
        raise BinFormatError(f"{path}: {len(bins)} images, an odd count; images must come in pairs")
    if len(labels) != len(bins) // 2:
        raise BinFormatError(f"{path}: {len(bins)} images make {len(bins) // 2} pairs but issame_list has "
                             f"{len(labels)} entries")
    return [bytes(b) for b in bins], labels


def _fold_subset_indices(issame: Sequence[bool], n_pairs: int, folds: int, where: str) -> list[int]:
    """Pair indices of a fold-balanced subset: from each of the ``folds`` contiguous folds, its first
    ``n_pairs / folds`` pairs *of each kind in proportion* (for LFW: the first 30 same and the first 30
    different pairs of every fold for ``n_pairs=600``), kept in file order.

    Taking simply the first pairs of each fold would keep only "same" pairs on LFW and CFP, whose folds list
    all same pairs first."""
    total = len(issame)
    if total % folds:
        raise ValueError(f"{where}: {total} pairs do not split into {folds} equal folds")
    if n_pairs % folds or not 0 < n_pairs <= total:
        raise ValueError(f"{where}: n_pairs={n_pairs} must be a positive multiple of {folds} and at most "
                         f"{total}, so that every fold keeps the same number of pairs")
    fold, per = total // folds, n_pairs // folds
    keep: list[int] = []
    for f in range(folds):
        ids = range(f * fold, (f + 1) * fold)
        same = [k for k in ids if issame[k]]
        diff = [k for k in ids if not issame[k]]
        n_same = min(len(same), max(per - len(diff), int(round(per * len(same) / fold))))
        keep += sorted(same[:n_same] + diff[:per - n_same])
    return keep


@dataclass
class VerificationSet:
    """A 1:1 verification set: ``images`` uint8 ``(2N, 3, H, W)`` RGB with pair ``k`` at rows ``2k, 2k+1``;
    ``issame`` bool ``(N,)``; ``name`` (file stem plus any variant, e.g. ``"lfw@lq(face=16)"``), ``sha256``
    of the source file, ``path``; ``folds`` contiguous folds of equal size."""

    name: str
    images: torch.Tensor = field(repr=False)
    issame: torch.Tensor = field(repr=False)
    sha256: str = ""
    path: str = ""
    folds: int = NUM_FOLDS

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"{self.name}: images must be uint8 (2N, 3, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        self.issame = torch.as_tensor(self.issame, dtype=torch.bool)
        if self.images.shape[0] != 2 * self.issame.shape[0]:
            raise ValueError(f"{self.name}: {self.images.shape[0]} images for {self.issame.shape[0]} pairs")

    def __len__(self) -> int:
        """Number of pairs."""
        return int(self.issame.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])  # type: ignore[return-value]

    def pair(self, k: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        return self.images[2 * k], self.images[2 * k + 1], bool(self.issame[k])

    def subset(self, n_pairs: int) -> "VerificationSet":
        """A smaller set with the same structure: every fold keeps ``n_pairs / folds`` pairs, its first same
        and first different pairs in the fold's proportion, in file order, so folds stay contiguous,
        equal-sized and balanced. ``n_pairs`` must be a multiple of ``folds``."""
        if n_pairs == len(self):
            return self
        keep = _fold_subset_indices(self.issame.tolist(), n_pairs, self.folds, self.name)
        rows = torch.tensor([r for k in keep for r in (2 * k, 2 * k + 1)])
        return replace(self, name=f"{self.name}[{n_pairs}]", images=self.images[rows],
                       issame=self.issame[torch.tensor(keep)])

    def __repr__(self) -> str:
        h, w = self.image_size
        return (f"VerificationSet({self.name!r}, {len(self)} pairs ({int(self.issame.sum())} same), {h}x{w}, "
                f"sha256={self.sha256[:12]}…)")


def load_bin(path, *, size=None, n_pairs: int | None = None, folds: int = NUM_FOLDS) -> VerificationSet:
    """Load an insightface ``.bin`` verification set safely (see the module docstring).

    ``size`` (int or ``(h, w)``) resizes with antialiased bilinear interpolation. ``n_pairs`` decodes only
    the fold-balanced subset that :meth:`VerificationSet.subset` would keep (fast previews). Errors name the
    file and the image index: undecodable images, odd image counts, label-count mismatches, images of
    different sizes (without ``size``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"verification set not found: {path}")
    digest = sha256_file(path)
    bins, issame = read_bin_raw(path)
    name = path.stem
    pair_ids = list(range(len(issame)))
    if n_pairs is not None and n_pairs != len(issame):
        pair_ids = _fold_subset_indices(issame, n_pairs, folds, str(path))
        name = f"{name}[{n_pairs}]"
    rows = [r for k in pair_ids for r in (2 * k, 2 * k + 1)]
    target = None if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    if not rows:
        raise BinFormatError(f"{path}: no images")
    arrays = [decode_chw(bins[r], where=f"{path}, image {r} (pair {r // 2})") for r in rows]
    odd = next((j for j, a in enumerate(arrays) if a.shape != arrays[0].shape), None)
    if odd is not None and target is None:
        raise BinFormatError(f"{path}, image {rows[odd]}: size {arrays[odd].shape[1:]} differs from the first "
                             f"image's {arrays[0].shape[1:]}; pass size= to resize")
    if odd is not None:  # mixed sizes: resize one by one
        arrays = [resize(torch.from_numpy(a), target).numpy() for a in arrays]
    images = torch.from_numpy(np.stack(arrays))
    del arrays
    if target is not None and images.shape[2:] != target:
        images = torch.cat([resize(images[i:i + 512], target) for i in range(0, len(images), 512)])
    return VerificationSet(name, images, torch.tensor([issame[k] for k in pair_ids]), digest, str(path), folds)


def save_bin(path, images_or_jpegs, issame: Sequence[bool], *, quality: int = 95) -> None:
    """Write an insightface-format ``.bin`` (pickle protocol 4) for fixtures and derived sets.

    ``images_or_jpegs``: encoded image bytes (written as they are), or uint8 RGB images ``(2N, 3, H, W)``
    (a tensor or a sequence of ``(3, H, W)`` tensors) encoded as JPEG at ``quality``."""
    items = list(images_or_jpegs) if not isinstance(images_or_jpegs, torch.Tensor) else list(images_or_jpegs.unbind(0))
    bins = [bytes(x) if isinstance(x, (bytes, bytearray)) else encode_jpeg(x, quality) for x in items]
    issame = [bool(s) for s in issame]
    if len(bins) != 2 * len(issame):
        raise ValueError(f"save_bin({path}): {len(bins)} images for {len(issame)} pairs")
    from ..engine.atomic import atomic_open  # written whole or not at all

    with atomic_open(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)


def subset_bin(src, dst, n_pairs: int, *, folds: int = NUM_FOLDS) -> None:
    """Write a smaller ``.bin`` of ``n_pairs`` pairs of ``src``, fold-balanced as ``load_bin(n_pairs=...)``
    takes them, with the encoded images copied byte for byte (to ship a verification set to a machine with
    little room; the result's sha256 identifies it in a run's record).

        python -c "from fr.data.bins import subset_bin; subset_bin('lfw.bin', 'small/lfw.bin', 3000)"
    """
    bins, issame = read_bin_raw(src)
    keep = _fold_subset_indices(issame, n_pairs, folds, str(src))
    save_bin(dst, [b for k in keep for b in (bins[2 * k], bins[2 * k + 1])], [issame[k] for k in keep])


def degrade(vset: VerificationSet, *, face_size: int | None = None, blur_sigma: float | None = None,
            jpeg_quality: int | None = None, noise_std: float | None = None, seed: int = 0) -> VerificationSet:
    """A low-quality variant of ``vset``, a clearly labelled stand-in for low-resolution benchmarks such as
    TinyFace (which is not available here): :class:`fr.data.transforms.LowQuality` with these settings applied
    to every image, both pair members alike (see there for the steps and their order).

    Deterministic for given arguments. The result's ``name`` records the variant, e.g.
    ``"lfw@lq(face=16,jpeg=30)"``; ``sha256`` stays that of the source file."""
    lq = LowQuality(face_size=face_size, blur_sigma=blur_sigma, noise_std=noise_std, jpeg_quality=jpeg_quality,
                    seed=seed)
    return replace(vset, name=f"{vset.name}@lq({lq.tag()})", images=lq(vset.images))
