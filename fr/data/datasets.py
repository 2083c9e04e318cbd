"""Training sets as uint8 tensors: insightface RecordIO, image folders, and a synthetic stand-in.

The small training sets this book uses on CPU fit in memory once decoded (CelebA subset: 5,286 images,
199 MB at 112x112), so :func:`load_train_set` decodes every JPEG once with Pillow and caches the uint8 tensor
under ``<data_root>/cache/``; later loads read the cache in about a second. :class:`RecordDataset` reads
lazily for sets that do not fit (MS1MV2, WebFace42M).
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..paths import data_root, repo_root
from ._util import atomic_torch_save, decode_chw, decode_image, sha256_bytes, sha256_file
from .locate import find_train_set
from .recordio import IndexedRecordIO, RecordIOError, read_property
from .transforms import resize

if TYPE_CHECKING:
    from ..config import DataCfg

__all__ = [
    "FaceTensorDataset", "RecordDataset", "ImageFolderDataset", "load_train_set", "load_training_set",
    "cache_dir", "synthetic_faces", "add_label_noise", "CACHE_VERSION",
]

CACHE_VERSION = 1  # bump when the cache layout or the decoding changes


def _size_pair(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


# ----------------------------------------------------------------------------------------------------------
# in-memory dataset
# ----------------------------------------------------------------------------------------------------------
class FaceTensorDataset(Dataset):
    """Decoded faces in memory: ``images`` uint8 ``(N, 3, H, W)`` RGB, ``labels`` long ``(N,)`` in
    ``[0, num_classes)``; ``source`` says where they came from, ``sha256`` identifies the content.

    ``ds[i] -> (uint8 image (3, H, W), label)``; a DataLoader collates these to ``(B, 3, H, W)`` and ``(B,)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, source: str = "",
                 sha256: str = ""):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
                or images.shape[1] != 3:
            got = (images.dtype, tuple(images.shape)) if isinstance(images, torch.Tensor) else type(images)
            raise ValueError(f"{source or 'FaceTensorDataset'}: images must be uint8 (N, 3, H, W), got {got}")
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{source or 'FaceTensorDataset'}: {images.shape[0]} images but labels have "
                             f"shape {tuple(labels.shape)}")
        num_classes = int(num_classes)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"{source or 'FaceTensorDataset'}: labels span [{int(labels.min())}, "
                             f"{int(labels.max())}] but num_classes={num_classes}")
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.source, self.sha256 = source, sha256 or sha256_bytes(images, labels, str(num_classes))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])  # type: ignore[return-value]

    def class_counts(self) -> torch.Tensor:
        """Images per class, ``(num_classes,)``."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices, *, source: str | None = None) -> "FaceTensorDataset":
        """The images at ``indices`` (labels and ``num_classes`` unchanged)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return FaceTensorDataset(self.images[idx], self.labels[idx], self.num_classes,
                                 source or f"{self.source}[subset {len(idx)}]")

    def resized(self, size) -> "FaceTensorDataset":
        """A copy at ``size`` (antialiased bilinear, :func:`fr.data.transforms.resize`)."""
        size = _size_pair(size)
        if size == self.image_size:
            return self
        images = torch.cat([resize(self.images[i:i + 1024], size) for i in range(0, len(self), 1024)])
        return FaceTensorDataset(images, self.labels, self.num_classes, f"{self.source}@{size[0]}x{size[1]}",
                                 sha256_bytes(self.sha256, f"resize{size}"))

    def __repr__(self) -> str:
        h, w = self.image_size
        return (f"FaceTensorDataset({len(self)} images {h}x{w}, {self.num_classes} classes, "
                f"source={self.source!r}, sha256={self.sha256[:12]}…)")


# ----------------------------------------------------------------------------------------------------------
# RecordIO
# ----------------------------------------------------------------------------------------------------------
class RecordDataset(Dataset):
    """Lazy access to an insightface RecordIO training set: ``ds[i] -> (uint8 (3, H, W), label)``.

    Reads the index, the ``property`` file and the record-0 header on construction; images are decoded on
    access (``size`` resizes them). :meth:`read_labels` scans the record headers; :meth:`validate` checks
    the set's structure (see :func:`load_train_set`)."""

    def __init__(self, path=None, *, size=None):
        self.rec_path, self.idx_path, self.prop_path = find_train_set(path)
        self.size = _size_pair(size)
        self.num_classes, h, w = read_property(self.prop_path)
        self.property_size = (h, w)
        self.rec = IndexedRecordIO(self.idx_path, self.rec_path)
        if 0 not in self.rec:
            raise RecordIOError(f"{self.idx_path}: no record with key 0 (the insightface header record)")
        head = self.rec.header(0)
        self.class_keys: list[int] = []
        if head.flag > 0:
            if len(head.labels) < 2:
                raise RecordIOError(f"{self.rec_path}, key 0: header record needs two labels "
                                    f"(image key end, class key end), got {head.labels}")
            a, b = (int(v) for v in head.labels[:2])
            if not (1 <= a <= b):
                raise RecordIOError(f"{self.rec_path}, key 0: invalid key range ({a}, {b})")
            self.keys = list(range(1, a))
            self.class_keys = list(range(a, b))
            missing = [k for k in self.keys + self.class_keys if k not in self.rec]
            if missing:
                raise RecordIOError(f"{self.idx_path}: record 0 announces keys 1..{b - 1} but {len(missing)} "
                                    f"are missing from the index (first: {missing[:5]})")
        else:
            self.keys = sorted(self.rec.keys)  # no header: every record is an image (insightface's fallback)
        self._labels: list[int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def _where(self, key) -> str:
        return f"{self.rec_path}, key {key}"

    def _label(self, key, header) -> int:
        value = header.labels[0]
        if not (math.isfinite(value) and value == int(value) and 0 <= value < self.num_classes):
            raise RecordIOError(f"{self._where(key)}: label {value} is not a class id in [0, {self.num_classes}) "
                                f"(property {self.prop_path} says {self.num_classes} classes)")
        return int(value)

    def read(self, i: int) -> tuple[np.ndarray, int]:
        """``(RGB uint8 array (H, W, 3) at native size, label)`` of image ``i``."""
        key = self.keys[i]
        header, payload = self.rec.unpack(key)
        label = self._label(key, header)
        return decode_image(payload, where=self._where(key)), label

    def __getitem__(self, i):
        key = self.keys[i]
        header, payload = self.rec.unpack(key)
        label = self._label(key, header)
        img = torch.from_numpy(decode_chw(payload, where=self._where(key)))
        if self.size is not None:
            img = resize(img, self.size)
        return img, label

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch: ``(uint8 (B, 3, H, W), labels (B,))``, the same images as ``ds[i]`` one by one. Each
        JPEG is decoded (with Pillow) into one buffer laid out in numpy, then the batch is resized in one call
        instead of image by image."""
        idx = list(indices)
        h, w = self.property_size
        native = np.empty((len(idx), 3, h, w), dtype=np.uint8)
        labels = torch.empty(len(idx), dtype=torch.long)
        for j, i in enumerate(idx):
            arr, labels[j] = self.read(i)
            if arr.shape[:2] != (h, w):  # mixed sizes: resize image by image, as __getitem__ does
                return (torch.stack([self[i][0] for i in idx]), torch.tensor([self[i][1] for i in idx]))
            native[j] = arr.transpose(2, 0, 1)
        images = torch.from_numpy(native)
        if self.size is not None:
            images = resize(images, self.size)
        return images, labels

    def read_labels(self) -> list[int]:
        """Every image's class id (reads each record; cached)."""
        if self._labels is None:
            self._labels = [self._label(k, self.rec.header(k)) for k in self.keys]
        return self._labels

    def class_ranges(self) -> list[tuple[int, int]]:
        """``(first image key, end key)`` for every class record."""
        out = []
        for c, key in enumerate(self.class_keys):
            h = self.rec.header(key)
            if h.flag < 2:
                raise RecordIOError(f"{self._where(key)}: class record for class {c} has flag {h.flag}, "
                                    "expected 2 labels (first image key, end key)")
            out.append((int(h.labels[0]), int(h.labels[1])))
        return out

    def validate(self, labels: Sequence[int] | None = None) -> None:
        """Check the set against its ``property`` and class records; raise :class:`RecordIOError` naming the
        file and key on the first inconsistency. Labels are read unless given."""
        labels = list(self.read_labels() if labels is None else labels)
        _validate_labels(labels, self.keys, self.num_classes, self.class_ranges() if self.class_keys else None,
                         self.class_keys, self.rec_path, self.prop_path)

    def decode_all(self, *, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every image into one uint8 tensor ``(N, 3, H, W)`` (resized to ``size`` when set) and the
        labels ``(N,)``. Without ``size``, every image must have the ``property`` size."""
        from tqdm.auto import tqdm

        n = len(self)
        h, w = self.property_size
        native = np.empty((min(n, 1024), 3, h, w), dtype=np.uint8)  # decode buffer, resized in blocks
        out_h, out_w = self.size or (h, w)
        images = torch.empty((n, 3, out_h, out_w), dtype=torch.uint8)
        labels = torch.empty(n, dtype=torch.long)
        bar = tqdm(total=n, desc=f"decoding {self.rec_path.parent.name}/{self.rec_path.name}", unit="img",
                   disable=not progress, mininterval=0.5)
        try:
            for start in range(0, n, len(native)):
                stop = min(n, start + len(native))
                for j, i in enumerate(range(start, stop)):
                    arr, labels[i] = self.read(i)
                    if arr.shape[:2] != (h, w):
                        raise RecordIOError(f"{self._where(self.keys[i])}: image is {arr.shape[1]}x{arr.shape[0]} "
                                            f"but {self.prop_path} says {w}x{h}")
                    native[j] = arr.transpose(2, 0, 1)  # layout change in numpy (see decode_chw)
                    bar.update(1)
                block = torch.from_numpy(native[:stop - start])
                images[start:stop] = resize(block, (out_h, out_w)) if (out_h, out_w) != (h, w) else block
        finally:
            bar.close()
        return images, labels


def _validate_labels(labels, keys, num_classes, class_ranges, class_keys, rec_path, prop_path) -> None:
    counts = Counter(labels)
    for key, lab in zip(keys, labels, strict=True):
        if not 0 <= lab < num_classes:
            raise RecordIOError(f"{rec_path}, key {key}: label {lab} outside [0, {num_classes}) "
                                f"({prop_path} says {num_classes} classes)")
    empty = [c for c in range(num_classes) if counts.get(c, 0) == 0]
    if empty:
        raise RecordIOError(f"{prop_path} says {num_classes} classes but {len(empty)} have no image in "
                            f"{rec_path} (first: {empty[:10]}); property and labels disagree")
    if class_ranges is None:
        return
    if len(class_ranges) != num_classes:
        raise RecordIOError(f"{prop_path} says {num_classes} classes but record 0 of {rec_path} lists "
                            f"{len(class_ranges)} class records; property and records disagree")
    label_of = dict(zip(keys, labels, strict=True))
    covered = 0
    for c, ((s, e), ck) in enumerate(zip(class_ranges, class_keys, strict=True)):
        if not (s < e) or any(k not in label_of for k in (s, e - 1)):
            raise RecordIOError(f"{rec_path}, key {ck}: class record {c} has image range ({s}, {e}), "
                                f"outside the image keys {keys[0]}..{keys[-1]}")
        wrong = [k for k in range(s, e) if label_of[k] != c]
        if wrong:
            raise RecordIOError(f"{rec_path}, key {ck}: class record {c} covers keys {s}..{e - 1} but key "
                                f"{wrong[0]} has label {label_of[wrong[0]]}")
        covered += e - s
    if covered != len(keys):
        raise RecordIOError(f"{rec_path}: class records cover {covered} image records, the index has {len(keys)}")


def cache_dir() -> Path:
    """Where decoded tensors are cached: ``$FR_CACHE`` if set, else ``<data_root>/cache`` when that can be
    written, else ``<repo>/data/cache`` (the shared data root is read-only; both are git-ignored)."""
    env = os.environ.get("FR_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    for d in (data_root() / "cache", repo_root() / "data" / "cache"):
        probe = d if d.exists() else d.parent
        if os.access(probe, os.W_OK):
            return d
    raise PermissionError(f"no writable cache folder: {data_root() / 'cache'} and {repo_root() / 'data/cache'} "
                          "are read-only; set FR_CACHE")


def load_train_set(path=None, *, size=None, cache: bool = True, progress: bool = True,
                   cache_root=None) -> FaceTensorDataset:
    """Load an insightface RecordIO training set as a :class:`FaceTensorDataset`.

    ``path``: where :func:`fr.data.locate.find_train_set` finds the set (``train.rec``, ``train.idx`` and
    ``property``): an absolute folder or ``.rec`` file, or a name under the data root (``FR_DATA``); None is
    ``celeba_train/`` (or a flat ``train.rec``). ``size`` (int or ``(h, w)``) resizes with antialiased bilinear
    interpolation.

    Every JPEG is decoded once with Pillow; the result is cached (``cache=True``) in
    ``cache_root or cache_dir()`` under a name keyed by the sha256 of the three files and the size, written
    atomically (temporary file, then ``os.replace``). ``sha256`` of the result is the digest of the three
    source files, so it identifies the data independently of the size.

    Validation (errors name the file and record key; nothing is skipped silently): wrong magic, truncated
    records, undecodable images, images whose size disagrees with ``property``, labels outside
    ``[0, classes)``, classes without images, class records that disagree with the labels or with the
    class count in ``property``.
    """
    rec_path, idx_path, prop_path = find_train_set(path)
    digests = {name: sha256_file(p) for name, p in (("rec", rec_path), ("idx", idx_path), ("property", prop_path))}
    digest = sha256_bytes("".join(f"{k}:{v}\n" for k, v in digests.items()))
    ds = RecordDataset(rec_path, size=size)
    h, w = ds.size or ds.property_size
    source = f"{rec_path.parent.name}/{rec_path.name}" + (f"@{h}x{w}" if ds.size else "")
    cache_file = Path(cache_root or cache_dir()) / f"train-{digest[:24]}-{h}x{w}-v{CACHE_VERSION}.pt"
    if cache and cache_file.exists():
        try:
            blob = torch.load(cache_file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # unreadable cache (e.g. written by an incompatible torch): decode again
            warnings.warn(f"ignoring unreadable cache {cache_file} ({type(e).__name__}: {e}); decoding again", stacklevel=2)
            blob = {}
        if blob.get("sha256") == digest and blob.get("version") == CACHE_VERSION \
                and tuple(blob["images"].shape[-2:]) == (h, w):
            return FaceTensorDataset(blob["images"], blob["labels"], blob["num_classes"], source, digest)
    images, labels = ds.decode_all(progress=progress)
    ds.validate(labels.tolist())
    out = FaceTensorDataset(images, labels, ds.num_classes, source, digest)
    if cache:
        atomic_torch_save({"version": CACHE_VERSION, "sha256": digest, "files": digests, "images": images,
                           "labels": labels, "num_classes": ds.num_classes, "source": source}, cache_file)
    return out


def load_training_set(data: DataCfg, *, size: int, seed: int) -> FaceTensorDataset:
    """The training set a config's ``data`` section names, at ``size`` pixels: :func:`synthetic_faces`
    (drawn from ``seed``) for ``"synthetic"``, else the RecordIO set :func:`load_train_set` finds."""
    if data.train == "synthetic":
        return synthetic_faces(data.synthetic_classes, data.synthetic_per_class, size=size, seed=seed)
    return load_train_set(data.train, size=size)


# ----------------------------------------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageFolderDataset(Dataset):
    """One sub-folder per identity (``root/<identity>/<image>``), classes numbered in sorted folder order;
    ``ds[i] -> (uint8 (3, H, W), label)``. ``size`` resizes; without it all images must share one size for
    :meth:`to_tensor_dataset`. An identity folder with no image is an error (a class without samples)."""

    def __init__(self, root, *, size=None, extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.root}")
        self.size = _size_pair(size)
        ext = tuple(e.lower() for e in extensions)
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not self.classes:
            raise ValueError(f"{self.root}: no identity sub-folders")
        self.samples: list[tuple[Path, int]] = []
        for c, name in enumerate(self.classes):
            files = sorted(p for p in (self.root / name).rglob("*") if p.is_file() and p.suffix.lower() in ext)
            if not files:
                raise ValueError(f"{self.root / name}: identity folder has no image ({', '.join(ext)})")
            self.samples += [(p, c) for p in files]
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        img = torch.from_numpy(decode_chw(path.read_bytes(), where=str(path)))
        if self.size is not None:
            img = resize(img, self.size)
        return img, label

    def to_tensor_dataset(self, *, progress: bool = False) -> FaceTensorDataset:
        """Decode everything into a :class:`FaceTensorDataset`."""
        from tqdm.auto import tqdm

        imgs = []
        for i in tqdm(range(len(self)), desc=f"decoding {self.root.name}", disable=not progress):
            img, _ = self[i]
            if imgs and img.shape != imgs[0].shape:
                raise ValueError(f"{self.samples[i][0]}: image is {tuple(img.shape)}, the first was "
                                 f"{tuple(imgs[0].shape)}; pass size= to resize")
            imgs.append(img)
        labels = torch.tensor([c for _, c in self.samples], dtype=torch.long)
        return FaceTensorDataset(torch.stack(imgs), labels, self.num_classes, str(self.root))


# ----------------------------------------------------------------------------------------------------------
# synthetic identities
# ----------------------------------------------------------------------------------------------------------
def _smooth_field(n: int, channels: int, size: int, g: torch.Generator, octaves=((4, 1.0), (8, 0.5), (16, 0.25))):
    """Random smooth images ``(n, channels, size, size)``: a few octaves of bicubically up-sampled noise."""
    out = torch.zeros(n, channels, size, size)
    for grid, amp in octaves:
        grid = min(grid, size)
        noise = torch.randn(n, channels, grid, grid, generator=g)
        out += amp * F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    return out


def synthetic_faces(num_classes: int, per_class: int, size: int = 112, seed: int = 0) -> FaceTensorDataset:
    """A deterministic synthetic training set with learnable identities; no network, built in seconds.

    Each identity is a random smooth prototype (multi-octave noise) added to a shared "average face" field;
    each sample is its identity's prototype under a random similarity transform (shift up to ~7% of the
    size, rotation up to 8 degrees, scale 0.92-1.08), a per-sample smooth illumination field, a brightness
    gain U(0.75, 1.25) and pixel noise (std 6 grey levels). A small network separates the identities well
    above chance, but not trivially. Samples are ordered by class, like an insightface RecordIO set.
    This is a stand-in for tests and smoke runs, not a face data set.
    """
    if num_classes < 1 or per_class < 1 or size < 8:
        raise ValueError(f"synthetic_faces needs num_classes>=1, per_class>=1, size>=8; got "
                         f"{num_classes}, {per_class}, {size}")
    g = torch.Generator().manual_seed(int(seed))
    base = _smooth_field(1, 3, size, g, octaves=((3, 1.0), (6, 0.4)))
    protos = 0.6 * base + _smooth_field(num_classes, 3, size, g)
    protos = 128 + 45 * protos / protos.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    n = num_classes * per_class
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for start in range(0, n, 256):
        lab = labels[start:start + 256]
        b = len(lab)
        ang = torch.deg2rad(8 * (2 * torch.rand(b, generator=g) - 1))
        scale = 1 + 0.08 * (2 * torch.rand(b, generator=g) - 1)
        shift = 0.15 * (2 * torch.rand(b, 2, generator=g) - 1)  # normalised coords: 0.15 ~ 7.5% of the side
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
        x = F.grid_sample(protos[lab], grid, mode="bilinear", padding_mode="border", align_corners=False)
        light = _smooth_field(b, 1, size, g, octaves=((2, 1.0),))
        gain = 0.75 + 0.5 * torch.rand(b, 1, 1, 1, generator=g)
        x = x * gain + 12 * light + 6 * torch.randn(x.shape, generator=g)
        images[start:start + b] = x.round_().clamp_(0, 255).to(torch.uint8)
    source = f"synthetic(num_classes={num_classes}, per_class={per_class}, size={size}, seed={seed})"
    return FaceTensorDataset(images, labels, num_classes, source)


def add_label_noise(dataset: FaceTensorDataset, fraction: float, seed: int = 0
                    ) -> tuple[FaceTensorDataset, torch.Tensor]:
    """Flip ``round(fraction * N)`` labels to a different class, uniformly at random (deterministic in
    ``seed``). Returns the new dataset (images shared, not copied) and the sorted indices that changed; a
    changed label never equals the original. Used for the noisy-label chapters (e.g. Sub-center ArcFace)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if dataset.num_classes < 2 and fraction > 0:
        raise ValueError("label noise needs at least two classes")
    g = torch.Generator().manual_seed(int(seed))
    n = len(dataset)
    k = int(round(fraction * n))
    changed = torch.randperm(n, generator=g)[:k].sort().values
    offset = torch.randint(1, max(2, dataset.num_classes), (k,), generator=g)  # 1..C-1: never the same class
    labels = dataset.labels.clone()
    labels[changed] = (labels[changed] + offset) % dataset.num_classes
    source = f"{dataset.source}+label_noise(fraction={fraction}, seed={seed})"
    return FaceTensorDataset(dataset.images, labels, dataset.num_classes, source,
                             sha256_bytes(dataset.sha256, source)), changed
