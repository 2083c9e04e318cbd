"""The training engine: optimiser groups, LR schedules, a resumable sampler, world-size-independent atomic
checkpoints and the training loop. :func:`fr.train.run` ties them to the run records under ``results/``."""
from __future__ import annotations

from .atomic import atomic_open, atomic_save, atomic_write_json, atomic_write_text
from .checkpoint import load_checkpoint, save_checkpoint, shard_bounds
from .optim import build_optimizer, param_groups
from .sampler import EpochBatchSampler, SamplerPosition
from .schedule import LRFactor, build_scheduler, lr_factor
from .trainer import FitResult, NonFiniteLossError, Trainer, batch_accuracy, build_backbone

__all__ = ["Trainer", "FitResult", "NonFiniteLossError", "batch_accuracy", "build_backbone", "build_optimizer",
           "param_groups", "build_scheduler", "lr_factor", "LRFactor", "EpochBatchSampler", "SamplerPosition",
           "save_checkpoint", "load_checkpoint", "shard_bounds", "atomic_open", "atomic_save",
           "atomic_write_json", "atomic_write_text"]
