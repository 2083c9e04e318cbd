"""Small shared helpers: hashing, atomic writes, JPEG decoding to uint8 tensors."""
from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
from PIL import Image

__all__ = ["ImageDecodeError", "sha256_file", "sha256_bytes", "atomic_torch_save", "decode_image", "decode_chw",
           "encode_jpeg"]


class ImageDecodeError(ValueError):
    """An image payload that Pillow cannot decode; the message says which file and record/index."""


def sha256_file(path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_bytes(*parts) -> str:
    """Hex sha256 over byte strings, tensors (their raw bytes) and strings, in order."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().contiguous().numpy().tobytes()
        elif isinstance(p, str):
            p = p.encode()
        h.update(p)
    return h.hexdigest()


def atomic_torch_save(obj, path) -> None:
    """``torch.save`` through :func:`fr.engine.atomic.atomic_save` (a temporary file in the target folder, then
    ``os.replace``), so a crash or a concurrent reader never sees a half-written file."""
    from ..engine.atomic import atomic_save  # imported here: fr.engine imports fr.data

    atomic_save(path, lambda f: torch.save(obj, f))


def decode_image(data: bytes, *, where: str) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to an RGB uint8 array ``(H, W, 3)``.

    Raises :class:`ImageDecodeError` naming ``where`` (file and key/index) on any decoding failure,
    including truncated JPEGs (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left off)."""
    if not data:
        raise ImageDecodeError(f"{where}: empty image payload")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"{where}: cannot decode image ({len(data)} bytes, starts "
                               f"{bytes(data[:4]).hex()}): {e}") from e


def decode_chw(data: bytes, *, where: str) -> np.ndarray:
    """Like :func:`decode_image` but channel-first ``(3, H, W)``, contiguous and writable.

    The layout change is done in numpy: torch's intra-op threading makes thousands of tiny strided copies
    slow on a busy machine, and the result is handed to ``torch.from_numpy`` without another copy."""
    return np.ascontiguousarray(decode_image(data, where=where).transpose(2, 0, 1))


def encode_jpeg(image: torch.Tensor | np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of one uint8 RGB image ``(3, H, W)`` (tensor or array), encoded by Pillow."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a uint8 (3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB").save(buf, format="JPEG",
                                                                               quality=int(quality))
    return buf.getvalue()
