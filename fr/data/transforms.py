"""Batch transforms on uint8 face tensors, in plain torch (no torchvision).

Images travel through the project as uint8 tensors ``(B, 3, H, W)`` in RGB order; :func:`to_input` is the
single place where they become a backbone's float input, following its ``InputSpec`` (size, colour order,
mean/std). Training augmentation (:class:`TrainAugment`) follows AdaFace (Kim et al., CVPR 2022, Sec. 4 and
``dataset/augmenter.py`` of mk-minchul/AdaFace).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["to_input", "hflip", "resize", "gaussian_blur", "LowQuality", "TrainAugment", "AugmentDraws"]


def _as_batch(x: torch.Tensor, name: str = "batch") -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, H, W) or (3, H, W), got shape {tuple(x.shape)}")
    return x, False


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def resize(batch: torch.Tensor, size, *, mode: str = "bilinear", antialias: bool = True) -> torch.Tensor:
    """Resize ``(B, 3, H, W)`` (or ``(3, H, W)``) to ``size`` (int or ``(h, w)``) with ``F.interpolate``.

    uint8 in gives uint8 out (rounded and clamped); float in gives float out. ``antialias`` applies to the
    bilinear/bicubic modes when down-sampling (PyTorch ignores it otherwise)."""
    x, single = _as_batch(batch)
    size = _pair(size)
    if tuple(x.shape[-2:]) == size:
        return batch
    is_uint8 = x.dtype == torch.uint8
    xf = x.float() if is_uint8 else x
    kw = {"align_corners": False, "antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    y = F.interpolate(xf, size=size, mode=mode, **kw)
    if is_uint8:
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y[0] if single else y


def hflip(batch: torch.Tensor) -> torch.Tensor:
    """Mirror images left-right (last axis); works on uint8 or float, single image or batch."""
    return batch.flip(-1)


def to_input(batch_uint8: torch.Tensor, spec) -> torch.Tensor:
    """uint8 RGB ``(B, 3, H, W)`` -> float32 backbone input following ``spec``.

    ``spec`` is any object with ``size``, ``color`` ("RGB" or "BGR"), ``mean`` and ``std`` (e.g.
    ``fr.backbones.InputSpec``): images are resized (antialiased bilinear) when their size differs from
    ``spec.size``, reordered to BGR when asked (AdaFace checkpoints), scaled to [0, 1] and normalised as
    ``(x - mean) / std`` with ``mean``/``std`` given in ``spec.color`` order. Runs on the batch's device, so
    move the uint8 batch first (4x less traffic than moving floats)."""
    x, single = _as_batch(batch_uint8, "batch_uint8")
    if x.dtype != torch.uint8:
        raise TypeError(f"to_input expects a uint8 batch (0..255), got {x.dtype}")
    color = str(getattr(spec, "color", "RGB")).upper()
    if color not in ("RGB", "BGR"):
        raise ValueError(f"spec.color must be 'RGB' or 'BGR', got {spec.color!r}")
    size = getattr(spec, "size", None)
    if size is not None:
        x = resize(x, size)
    x = x.float().div_(255.0)
    if color == "BGR":
        x = x.flip(1)
    mean = torch.as_tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(spec.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    x = (x - mean) / std
    return x[0] if single else x


def gaussian_blur(batch: torch.Tensor, sigma: float, *, radius: int | None = None) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius ``ceil(3 sigma)`` by default).

    Written as a weighted sum of shifted views rather than a depthwise ``conv2d``, which is several times
    slower on CPU for these small kernels."""
    if sigma <= 0:
        return batch
    x, single = _as_batch(batch)
    is_uint8 = x.dtype == torch.uint8
    xf = x.float() if is_uint8 else x
    h, w = xf.shape[-2:]
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    r = max(1, min(r, h - 1, w - 1))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    pad = F.pad(xf, (r, r, 0, 0), mode="reflect")
    y = pad[..., 0:w] * k[0]
    for i in range(1, 2 * r + 1):
        y.add_(pad[..., i:i + w], alpha=k[i])
    pad = F.pad(y, (0, 0, r, r), mode="reflect")
    y = pad[..., 0:h, :] * k[0]
    for i in range(1, 2 * r + 1):
        y.add_(pad[..., i:i + h, :], alpha=k[i])
    if is_uint8:
        y = y.round_().clamp_(0, 255).to(torch.uint8)
    return y[0] if single else y


@dataclass(frozen=True)
class LowQuality:
    """A fixed low-quality degradation of face images (a stand-in for low-resolution benchmarks such as
    TinyFace, whose faces are about 20 pixels high). Applied in this order, each step only when set:

    * ``face_size``: down-sample the whole image to ``face_size`` pixels square (antialiased bilinear) and back
      up to its size (bilinear), so the result keeps the input's shape but only ``face_size``² pixels of detail;
    * ``blur_sigma``: Gaussian blur with this sigma in pixels;
    * ``noise_std``: additive Gaussian pixel noise (grey levels) drawn from a generator seeded with ``seed``;
    * ``jpeg_quality``: JPEG re-compression with Pillow at this quality.

    Deterministic: the same settings on the same images (in the same chunks of ``chunk`` images) give the same
    bytes. :meth:`tag` names the variant, e.g. ``"face=24,jpeg=30"``."""

    face_size: int | None = None
    blur_sigma: float | None = None
    noise_std: float | None = None
    jpeg_quality: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.face_size is not None and int(self.face_size) < 1:
            raise ValueError(f"face_size must be >= 1, got {self.face_size}")
        if self.blur_sigma is not None and not self.blur_sigma > 0:
            raise ValueError(f"blur_sigma must be > 0, got {self.blur_sigma}")
        if self.noise_std is not None and not self.noise_std > 0:
            raise ValueError(f"noise_std must be > 0, got {self.noise_std}")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.face_size is None and self.blur_sigma is None and self.noise_std is None \
                and self.jpeg_quality is None:
            raise ValueError("LowQuality: give at least one of face_size, blur_sigma, noise_std, jpeg_quality")

    def tag(self) -> str:
        parts = []
        if self.face_size is not None:
            parts.append(f"face={self.face_size}")
        if self.blur_sigma is not None:
            parts.append(f"blur={self.blur_sigma:g}")
        if self.noise_std is not None:
            parts.append(f"noise={self.noise_std:g},seed={self.seed}")
        if self.jpeg_quality is not None:
            parts.append(f"jpeg={self.jpeg_quality}")
        return ",".join(parts)

    def generator(self) -> torch.Generator:
        """The noise generator a fresh pass starts from (pass it on across chunks of one image set)."""
        return torch.Generator().manual_seed(int(self.seed))

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator | None = None,
                 chunk: int = 512) -> torch.Tensor:
        """Degrade uint8 ``(B, 3, H, W)`` images; ``generator`` carries the noise stream across calls (a new
        one seeded with ``seed`` when None)."""
        from ._util import decode_chw, encode_jpeg  # _util imports Pillow; keep this module torch-only

        x, single = _as_batch(images, "images")
        if x.dtype != torch.uint8:
            raise TypeError(f"LowQuality expects uint8 images, got {x.dtype}")
        h, w = x.shape[-2:]
        if self.face_size is not None:
            if self.face_size > min(h, w):
                raise ValueError(f"face_size must be in [1, {min(h, w)}] for {h}x{w} images, got {self.face_size}")
            x = torch.cat([resize(resize(x[i:i + chunk], (self.face_size, self.face_size)), (h, w))
                           for i in range(0, len(x), chunk)])
        if self.blur_sigma is not None:
            x = torch.cat([gaussian_blur(x[i:i + chunk], self.blur_sigma) for i in range(0, len(x), chunk)])
        if self.noise_std is not None:
            g = self.generator() if generator is None else generator
            x = torch.cat([(x[i:i + chunk].float() + self.noise_std * torch.randn(x[i:i + chunk].shape, generator=g))
                           .round_().clamp_(0, 255).to(torch.uint8) for i in range(0, len(x), chunk)])
        if self.jpeg_quality is not None:
            arr = x.numpy()
            x = torch.from_numpy(np.stack([decode_chw(encode_jpeg(img, self.jpeg_quality),
                                                      where=f"JPEG re-encoding of image {i}")
                                           for i, img in enumerate(arr)]))
        x = x.contiguous()
        return x[0] if single else x


_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's "L" conversion and torchvision's rgb_to_grayscale


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


@dataclass(frozen=True)
class AugmentDraws:
    """The random part of one :class:`TrainAugment` call, for a batch of ``B`` images (CPU tensors).

    ``do_*``: bool ``(B,)`` decisions; ``boxes``: long ``(n_crop, 4)`` crop windows ``(top, left, h, w)`` of the
    images with ``do_crop``, in batch order; ``lowres``: ``(ratio, down mode, up mode)`` per image with
    ``do_low`` (mode indices into ``TrainAugment.LOWRES_MODES``); ``factors``: ``(n_photo, 3)`` brightness,
    contrast and saturation factors and ``order``: ``(n_photo, 3)`` the order of the three operations."""

    do_crop: torch.Tensor
    do_low: torch.Tensor
    do_photo: torch.Tensor
    do_flip: torch.Tensor
    do_gray: torch.Tensor
    boxes: torch.Tensor
    lowres: list
    factors: torch.Tensor
    order: torch.Tensor


class TrainAugment:
    """AdaFace's training augmentation on uint8 RGB batches, reproducible with a seed.

    Per image, in AdaFace's order (``Augmenter.augment``), each applied independently:

    1. **crop with zero padding** (p=``p_crop``): a RandomResizedCrop window (area scale U(0.2, 1), aspect
       ratio log-uniform in [3/4, 4/3], 10 tries then a centre fallback, as torchvision's
       ``RandomResizedCrop.get_params``) is kept *in place* and everything outside it is set to zero. AdaFace
       does not resize the crop back up; the face keeps its scale and loses context.
    2. **low resolution** (p=``p_lowres``): down-sample the square image to ``int(r * H)`` pixels, r ~ U(0.2, 1),
       and back up, each step with an interpolation drawn at random. AdaFace draws from OpenCV's
       {nearest, linear, area, cubic, lanczos4}; here from torch's {nearest, bilinear, area, bicubic}
       (no Lanczos in ``F.interpolate``).
    3. **photometric** (p=``p_photo``): ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0):
       factors U(0.5, 1.5), the three operations in a random order per image; contrast blends with the mean
       grey level of the image, saturation with its grey version (torchvision's definitions).

    4. **grayscale** (p=``p_gray``, not part of AdaFace's recipe): replace the image by its ITU-R 601 luma in
       all three channels, as a grayscale copy stored as RGB looks (LFW's ``lfw.bin`` is one). Its decision is
       drawn after all the others, and only when ``p_gray > 0``, so the draws of every other setting are
       unchanged by its existence.

    followed by a horizontal flip (p=``p_flip``), which AdaFace applies in its torchvision transform.
    Arithmetic is in float with clamping after every operation and one rounding at the end (AdaFace works
    on PIL images and rounds after each step, an immaterial difference).

    ``seed`` fixes a private ``torch.Generator``: the same seed and the same sequence of batches give the same
    output. ``__call__(batch, generator=None)`` can take an explicit generator instead. Apply it to whole
    batches in the training process (it is vectorised over the batch), not inside DataLoader workers, where
    every worker would hold a copy of the same generator state.
    """

    CROP_SCALE = (0.2, 1.0)
    CROP_RATIO = (3 / 4, 4 / 3)
    LOWRES_RANGE = (0.2, 1.0)
    JITTER = 0.5
    LOWRES_MODES = ("nearest", "bilinear", "area", "bicubic")

    def __init__(self, p_lowres: float = 0.2, p_crop: float = 0.2, p_photo: float = 0.2, p_flip: float = 0.5,
                 seed: int | None = None, p_gray: float = 0.0):
        for name, p in (("p_lowres", p_lowres), ("p_crop", p_crop), ("p_photo", p_photo), ("p_flip", p_flip),
                        ("p_gray", p_gray)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        self.p_lowres, self.p_crop, self.p_photo, self.p_flip = p_lowres, p_crop, p_photo, p_flip
        self.p_gray = p_gray
        self.seed = seed
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def __repr__(self) -> str:
        return (f"TrainAugment(p_lowres={self.p_lowres}, p_crop={self.p_crop}, p_photo={self.p_photo}, "
                f"p_flip={self.p_flip}, p_gray={self.p_gray}, seed={self.seed})")

    # -- random helpers (all draws on CPU from the generator, so results do not depend on the device) -----
    def _rand(self, g, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=g)

    def _uniform(self, g, lo, hi) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    def _randint(self, g, lo, hi) -> int:  # [lo, hi)
        return int(torch.randint(lo, hi, (), generator=g))

    def crop_params(self, height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of a RandomResizedCrop window (torchvision's sampling procedure)."""
        area = height * width
        log_ratio = (math.log(self.CROP_RATIO[0]), math.log(self.CROP_RATIO[1]))
        for _ in range(10):
            target = area * self._uniform(g, *self.CROP_SCALE)
            aspect = math.exp(self._uniform(g, *log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return self._randint(g, 0, height - h + 1), self._randint(g, 0, width - w + 1), h, w
        in_ratio = width / height
        if in_ratio < self.CROP_RATIO[0]:
            w, h = width, int(round(width / self.CROP_RATIO[0]))
        elif in_ratio > self.CROP_RATIO[1]:
            h, w = height, int(round(height * self.CROP_RATIO[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def draw(self, batch_size: int, height: int, width: int, g: torch.Generator) -> AugmentDraws:
        """Every random decision and parameter for a batch of ``batch_size`` images, drawn from ``g`` in the
        one fixed order the augmentation has always used (so a seed gives the same images as ever): the four
        decisions per image, the crop windows (image by image), the low-resolution ratio and modes (image by
        image), the photometric factors and orders, then the grayscale decisions."""
        u = self._rand(g, batch_size, 4)
        do_crop, do_low, do_photo, do_flip = (u[:, 0] < self.p_crop, u[:, 1] < self.p_lowres,
                                              u[:, 2] < self.p_photo, u[:, 3] < self.p_flip)
        n_crop, n_low, n_photo = int(do_crop.sum()), int(do_low.sum()), int(do_photo.sum())
        boxes = torch.tensor([self.crop_params(height, width, g) for _ in range(n_crop)],
                             dtype=torch.long).view(n_crop, 4)
        lowres = []
        for _ in range(n_low):
            ratio = self._uniform(g, *self.LOWRES_RANGE)
            down = self._randint(g, 0, len(self.LOWRES_MODES))
            up = self._randint(g, 0, len(self.LOWRES_MODES))
            lowres.append((ratio, down, up))
        factors = 1.0 + self.JITTER * (2 * self._rand(g, n_photo, 3) - 1)  # brightness, contrast, saturation
        order = torch.argsort(self._rand(g, n_photo, 3), dim=1)  # a random permutation of the three per image
        do_gray = self._rand(g, batch_size) < self.p_gray if self.p_gray > 0 else torch.zeros(batch_size, dtype=torch.bool)
        return AugmentDraws(do_crop, do_low, do_photo, do_flip, do_gray, boxes, lowres, factors, order)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a uint8 batch on its own device (the random draws are made on the CPU from the generator,
        so the same seed gives the same decisions on any device)."""
        x, single = _as_batch(batch)
        if x.dtype != torch.uint8:
            raise TypeError(f"TrainAugment expects uint8 images, got {x.dtype}")
        g = self.generator if generator is None else generator
        d = self.draw(x.shape[0], x.shape[2], x.shape[3], g)
        if not bool((d.do_crop | d.do_low | d.do_photo | d.do_flip | d.do_gray).any()):
            return batch.clone()
        out = self.apply(x, d)
        return out[0] if single else out

    def apply(self, x: torch.Tensor, d: AugmentDraws) -> torch.Tensor:
        """The augmentation of the uint8 batch ``x`` with the draws ``d`` (see :meth:`draw`), on ``x``'s device."""
        dev = x.device
        _, _, height, width = x.shape
        out = x.float()

        crop_idx = torch.nonzero(d.do_crop).flatten().to(dev)
        if len(crop_idx):  # keep a random window in place, zero elsewhere
            boxes = d.boxes.to(dev)
            rows = torch.arange(height, device=dev).view(1, -1)
            cols = torch.arange(width, device=dev).view(1, -1)
            in_rows = (rows >= boxes[:, :1]) & (rows < boxes[:, :1] + boxes[:, 2:3])  # (n, H)
            in_cols = (cols >= boxes[:, 1:2]) & (cols < boxes[:, 1:2] + boxes[:, 3:4])  # (n, W)
            mask = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)
            out[crop_idx] = out[crop_idx] * mask

        # low resolution: the images that share (size, down mode, up mode) are resized in one call
        groups: dict[tuple, list[int]] = {}
        for i, (ratio, down, up) in zip(torch.nonzero(d.do_low).flatten().tolist(), d.lowres, strict=True):
            small = max(1, int(ratio * height)), max(1, int(ratio * width))
            groups.setdefault((small, down, up), []).append(i)
        for (small, down, up), members in groups.items():
            idx = torch.tensor(members, device=dev)
            img = resize(out[idx], small, mode=self.LOWRES_MODES[down]).clamp_(0, 255)
            out[idx] = resize(img, (height, width), mode=self.LOWRES_MODES[up]).clamp_(0, 255)

        idx = torch.nonzero(d.do_photo).flatten().to(dev)
        if len(idx):
            factors = d.factors.to(dev)
            sub = out[idx]
            for slot in range(3):
                for op in range(3):
                    sel = d.order[:, slot] == op  # decided on the CPU: no wait for the device
                    if not bool(sel.any()):
                        continue
                    sel = sel.to(dev)
                    img, f = sub[sel], factors[sel, op].view(-1, 1, 1, 1)
                    if op == 0:
                        img = img * f
                    elif op == 1:
                        mean = _gray(img).mean(dim=(1, 2, 3), keepdim=True)
                        img = f * img + (1 - f) * mean
                    else:
                        img = f * img + (1 - f) * _gray(img)
                    sub[sel] = img.clamp_(0, 255)
            out[idx] = sub

        do_gray = d.do_gray.to(dev)
        if bool(d.do_gray.any()):
            out[do_gray] = _gray(out[do_gray]).expand(-1, 3, -1, -1)

        do_flip = d.do_flip.to(dev)
        if bool(d.do_flip.any()):
            out[do_flip] = out[do_flip].flip(-1)
        return out.round_().clamp_(0, 255).to(torch.uint8)
