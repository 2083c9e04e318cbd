"""Face data: insightface RecordIO training sets, ``.bin`` verification sets, identity-labelled folders with a
manifest, synthetic identities, and uint8 batch transforms. Images travel as uint8 RGB tensors ``(N, 3, H, W)``;
``transforms.to_input`` turns them into a backbone's float input.

    >>> from fr.data import find_bin, load_bin, load_train_set, synthetic_faces
    >>> train = load_train_set(size=64)                      # celeba_train/ (or flat train.rec) under FR_DATA
    >>> lfw = load_bin(find_bin("lfw"), n_pairs=600)         # verification/lfw.bin (or flat lfw.bin)
    >>> toy = synthetic_faces(num_classes=20, per_class=16, size=64)
"""
from __future__ import annotations

from . import recordio, transforms
from ._util import ImageDecodeError, sha256_file
from .bins import (BinFormatError, UnsafeBinError, VerificationSet, degrade, load_bin, read_bin_raw, save_bin,
                   subset_bin)
from .datasets import (FaceTensorDataset, ImageFolderDataset, RecordDataset, add_label_noise, cache_dir,
                       load_train_set, load_training_set, synthetic_faces)
from .identification import FaceFileError, FaceManifest, ManifestError, load_faces, load_manifest
from .locate import find_bin, find_train_set
from .recordio import IndexedRecordIO, IRHeader, RecordIOError
from .transforms import LowQuality, TrainAugment, hflip, resize, to_input

__all__ = [
    "BinFormatError", "FaceFileError", "FaceManifest", "FaceTensorDataset", "ImageDecodeError",
    "ImageFolderDataset", "IndexedRecordIO", "IRHeader", "LowQuality", "ManifestError", "RecordDataset",
    "RecordIOError", "TrainAugment", "UnsafeBinError", "VerificationSet", "add_label_noise", "cache_dir", "degrade",
    "find_bin", "find_train_set", "hflip", "load_bin", "load_faces", "load_manifest", "load_train_set",
    "load_training_set", "read_bin_raw", "recordio", "resize", "save_bin", "sha256_file", "subset_bin",
    "synthetic_faces", "to_input", "transforms",
]
