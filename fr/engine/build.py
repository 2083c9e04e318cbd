"""The parts a run is built from, each from its section of the config: the process's runtime and seeds,
the training set, the backbone and how it is wrapped for training, the head, the training augmentation.

``backbone.name`` is a registered backbone (``fr.backbones.create_backbone``) or ``module:attribute``, any
importable factory that returns a backbone with the same contract (for experiments and tests)."""
from __future__ import annotations

import importlib
import logging
import os
import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .. import dist as D
from ..backbones import create_backbone
from ..config import AugmentCfg, ConfigError, DataCfg, HeadCfg, RuntimeCfg
from ..data import add_label_noise, load_training_set
from ..data.transforms import TrainAugment
from ..heads import HEADS, Head, create_head

log = logging.getLogger("fr.train")


def resolve_device(name: str) -> torch.device:
    """``runtime.device``: ``cpu``, ``cuda`` (this process's ``LOCAL_RANK`` GPU) or ``auto`` (CUDA if any)."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    if name in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def setup_runtime(rt: RuntimeCfg) -> tuple[torch.device, torch.dtype | None, torch.memory_format]:
    """Apply ``runtime`` to this process (threads, CUDA device, cuDNN autotuning, deterministic algorithms);
    returns the device, the autocast dtype (None: float32) and the memory format of the input."""
    if rt.threads:
        torch.set_num_threads(rt.threads)
    device = resolve_device(rt.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = not rt.deterministic
    if rt.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(rt.amp)
    if amp_dtype is torch.float16 and device.type != "cuda":
        log.warning("runtime.amp='fp16' needs CUDA; training in float32 on %s", device)
        amp_dtype = None
    return device, amp_dtype, torch.channels_last if rt.channels_last else torch.contiguous_format


def seed_all(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (the same seed on every rank: equal replicas)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def build_train_set(data: DataCfg, *, size: int, seed: int, train_set=None):
    """The training set ``data`` names at ``size`` pixels (or ``train_set``, a ready-made one), with
    ``data.label_noise`` of its labels replaced by a different class, drawn from ``seed``: every head trained
    with the same seed sees the same corrupted labels, so runs compared seed by seed stay paired."""
    ds = train_set if train_set is not None else load_training_set(data, size=size, seed=seed)
    if data.label_noise > 0:
        ds, changed = add_label_noise(ds, data.label_noise, seed=seed)
        log.info("data.label_noise=%g: %d of %d training labels replaced (seed %d)", data.label_noise,
                 len(changed), len(ds), seed)
    return ds


def build_backbone(name: str, params: dict[str, Any]) -> nn.Module:
    """``fr.backbones.create_backbone(name, **params)``, or ``module:attr(**params)`` for a custom factory."""
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"backbone.name {name!r}: cannot import {attr!r} from {mod!r}: {e}") from None
        model = factory(**params)
    else:
        model = create_backbone(name, **params)
    if not hasattr(model, "input_spec"):
        raise TypeError(f"backbone {name!r} has no input_spec; every backbone must carry an fr.backbones.InputSpec")
    return model


def embedding_size(backbone: nn.Module) -> int:
    """The backbone's embedding dimension (its ``embedding_size`` attribute, else from a probe forward)."""
    size = getattr(backbone, "embedding_size", None)
    if size:
        return int(size)
    h, w = backbone.input_spec.size
    was = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            emb, _ = backbone(torch.zeros(2, 3, h, w, device=next(backbone.parameters()).device))
    finally:
        backbone.train(was)
    return int(emb.shape[1])


def input_side(backbone: nn.Module, data_size: int | None, name: str = "") -> int:
    """The side of the backbone's square input; ``data.size`` (when set) must agree with it."""
    h, w = backbone.input_spec.size
    if data_size is not None and (data_size, data_size) != (h, w):
        raise ConfigError(f"data.size={data_size} but backbone {name!r} takes {h}x{w} input; "
                          f"set backbone.params.input_size (or leave data.size null)")
    if h != w:
        raise ConfigError(f"training needs a square input, backbone takes {h}x{w}")
    return h


def build_head(h: HeadCfg, num_classes: int, embedding_size: int, seed: int) -> Head:
    """``head``'s head for ``num_classes`` classes, its class centres drawn from ``seed`` as one process draws
    them, whatever the world size (:meth:`fr.heads.classifier.PartialFC.init_world_invariant`)."""
    head = create_head(h.name, num_classes=num_classes, embedding_size=embedding_size, sample_rate=h.sample_rate,
                       init=h.init, **h.params)
    head.classifier.init_world_invariant(h.init or HEADS.get(h.name).meta["default_init"], seed)
    return head


def wrap_for_training(backbone: nn.Module, device: torch.device, compile: bool) -> nn.Module:
    """The module the loop calls: ``DistributedDataParallel`` under torch.distributed (the head is not
    wrapped: its centres are sharded), then ``torch.compile`` if asked."""
    model = backbone
    if D.is_dist():
        model = DistributedDataParallel(backbone, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile else model


def build_augment(a: AugmentCfg, seed: int) -> TrainAugment | None:
    """AdaFace's training augmentation with ``data.augment``'s probabilities; None when all are 0."""
    if not a.active:
        return None
    return TrainAugment(p_lowres=a.p_lowres, p_crop=a.p_crop, p_photo=a.p_photo, p_flip=a.p_flip, p_gray=a.p_gray,
                        seed=seed)
