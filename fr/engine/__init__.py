"""The training engine: optimiser groups, LR schedules, a resumable sampler, world-size-independent atomic
checkpoints, the run logs and the training loop. :func:`fr.train.run` ties them to the run records under
``results/``."""
from __future__ import annotations

from .atomic import atomic_open, atomic_save, atomic_write_json, atomic_write_text
from .build import build_backbone
from .checkpoint import gather_centres, load_centres, load_checkpoint, save_checkpoint
from .ema import ModelEma
from .metrics import batch_accuracy, scalars
from .optim import build_optimizer, param_groups
from .runlog import LOG_COLUMNS, RunLog
from .sampler import EpochBatchSampler, SamplerPosition, batch_loader
from .schedule import LRFactor, build_scheduler, lr_factor
from .trainer import FitResult, NonFiniteLossError, Trainer

__all__ = ["Trainer", "FitResult", "NonFiniteLossError", "batch_accuracy", "scalars", "build_backbone",
           "build_optimizer", "param_groups", "build_scheduler", "lr_factor", "LRFactor", "EpochBatchSampler",
           "SamplerPosition", "batch_loader", "ModelEma", "RunLog", "LOG_COLUMNS", "save_checkpoint",
           "load_checkpoint", "gather_centres", "load_centres", "atomic_open", "atomic_save", "atomic_write_json",
           "atomic_write_text"]
