"""The training loop: backbone + head + SGD, on one process or under torch.distributed.

One :class:`Trainer` is built from an :class:`~fr.config.ExperimentCfg`::

    trainer = Trainer(cfg, run_dir=Path("results/runs/x"))   # resumes from run_dir/ckpt/last.pt if present
    trainer.fit()                                            # to cfg's total steps
    results = trainer.evaluate()                             # verification on cfg.eval.sets

Distributed layout (``torchrun``; the process group must be initialised first, see :func:`fr.train.run`):
the backbone is wrapped in ``DistributedDataParallel``; the head is NOT (its class centres are sharded by
``PartialFC``; the head all-gathers the batch and every rank computes the global loss, see :mod:`fr.dist`).
Class centres are initialised from the run's seed over all classes and sliced, and the sampler splits each
global batch by rank, so ``W`` processes follow the trajectory of one process on the same global batch.
BatchNorm statistics are per rank (as in insightface and AdaFace); the equivalence holds exactly for
networks without batch statistics, or for BN with the per-rank batch.

Per step: uint8 batch -> ``TrainAugment`` (seeded by ``(seed, step, rank)``) -> ``to_input`` on the device ->
autocast forward -> finite-loss check -> backward (GradScaler for fp16) -> clip backbone grad norm ->
SGD step -> LR schedule step.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from .. import dist as D
from ..config import ConfigError, ExperimentCfg, config_hash, derive
from .ema import ModelEma
from .checkpoint import (all_rng_states, gather_rows, load_checkpoint, reseed, restore_rng, save_checkpoint,
                         shard_of)
from .optim import build_optimizer
from .sampler import EpochBatchSampler
from .schedule import build_scheduler

log = logging.getLogger("fr.train")

LOG_COLUMNS = ("step", "epoch", "lr", "loss", "acc", "img_per_s", "elapsed_s")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad step touched the weights."""


# --- building blocks ------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    if name in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def build_backbone(name: str, params: dict[str, Any]) -> nn.Module:
    """``fr.backbones.create_backbone(name, **params)``, or ``module:attr(**params)`` for a custom factory."""
    if ":" in name:
        import importlib

        mod, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"backbone.name {name!r}: cannot import {attr!r} from {mod!r}: {e}") from None
        model = factory(**params)
    else:
        from ..backbones import create_backbone

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


def resolve_train_path(train: str) -> Path:
    """The RecordIO file of ``data.train``: an absolute path, a ``.rec`` path under the data root, or a
    folder under the data root holding ``train.rec`` (flat insightface layout accepted)."""
    from ..paths import data_root, find_data

    p = Path(train).expanduser()
    if p.is_absolute():
        p = p / "train.rec" if p.is_dir() else p
        if not p.exists():
            raise FileNotFoundError(f"data.train: {p} does not exist")
        return p
    found = find_data(train) if train.endswith(".rec") else find_data(f"{train}/train.rec", "train.rec")
    if found is None:
        raise FileNotFoundError(f"data.train={train!r}: no '{train}/train.rec' (or flat 'train.rec') under the "
                                f"data root {data_root()}; set FR_DATA to the folder holding the data")
    return found


def load_training_set(cfg: ExperimentCfg, size: int):
    from ..data import load_train_set, synthetic_faces

    d = cfg.data
    if d.train == "synthetic":
        return synthetic_faces(d.synthetic_classes, d.synthetic_per_class, size=size, seed=cfg.runtime.seed)
    return load_train_set(resolve_train_path(d.train), size=size)


def resolve_bin(name: str) -> Path:
    from ..paths import data_root, find_data

    p = Path(name).expanduser()
    if p.is_absolute() and p.exists():
        return p
    found = find_data(f"verification/{name}.bin", f"{name}.bin", name)
    if found is None:
        raise FileNotFoundError(f"eval.sets: no 'verification/{name}.bin' (or flat '{name}.bin') under the data "
                                f"root {data_root()}; set FR_DATA to the folder holding the data")
    return found


def init_centres_world_invariant(head: nn.Module, init: str, seed: int, chunk_rows: int = 65536) -> None:
    """Initialise the class centres as if all classes lived in one process, then keep this rank's rows.

    Rows are drawn chunk by chunk from a dedicated seed, so the values do not depend on the world size
    (``PartialFC`` alone initialises each shard from the rank's global RNG). ``xavier`` uses the full
    matrix's fan: ``std = 2 * sqrt(2 / (num_classes + D))`` (gain 2, as ``fr.heads.classifier``)."""
    from ..heads.classifier import init_centres

    pfc = head.classifier
    c, dim = pfc.num_classes, pfc.embedding_size
    start, count = pfc.class_start, pfc.num_local
    out = torch.empty(count, dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for lo in range(0, min(c, start + count), chunk_rows):
            hi = min(c, lo + chunk_rows)
            chunk = torch.empty(hi - lo, dim)
            if init == "xavier":
                chunk.normal_(0.0, 2.0 * math.sqrt(2.0 / (c + dim)))
            else:
                init_centres(chunk, init)
            a, b = max(lo, start), min(hi, start + count)
            if a < b:
                out[a - start:b - start] = chunk[a - lo:b - lo]
    with torch.no_grad():
        pfc.weight.copy_(out)


class _BatchView(Dataset):
    """Serves whole batches of a tensor dataset by fancy indexing (``__getitems__``), and anything with
    ``__getitem__ -> (image, label)`` item by item."""

    def __init__(self, ds):
        self.ds = ds
        self.images = getattr(ds, "images", None)
        self.labels = getattr(ds, "labels", None)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    def __getitems__(self, idx: list[int]):
        if self.images is not None and self.labels is not None:
            t = torch.as_tensor(idx, dtype=torch.long)
            return self.images[t], self.labels[t].long()
        items = [self.ds[i] for i in idx]
        return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def _as_batch(x):
    return x


def batch_accuracy(out) -> float:
    """Fraction of rows whose target logit is the largest over all (sampled) classes of all shards.

    Read on the head's margin-modified logits, so it is the accuracy *under the margin* (lower than plain
    top-1); NaN for heads without logits."""
    if out.logits is None or out.labels is None:
        return float("nan")
    logits = out.logits.detach().float()
    lab = out.labels
    row_max = logits.max(1).values
    tgt = logits.gather(1, lab.clamp_min(0)[:, None]).squeeze(1)
    tgt = torch.where(lab >= 0, tgt, torch.full_like(tgt, -math.inf))
    if D.is_dist():
        row_max, tgt = D.all_max(row_max), D.all_max(tgt)
    valid = torch.isfinite(tgt)
    n = int(valid.sum())
    return float(((tgt >= row_max) & valid).sum()) / n if n else float("nan")


@dataclass
class FitResult:
    step: int
    total_steps: int
    done: bool
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Everything one training run needs, built from a config (see the module docstring).

    run_dir:   where ``ckpt/last.pt``, ``train_log.csv`` and ``eval_log.csv`` go (None: nothing on disk).
    backbone, train_set: ready-made objects instead of the ones the config names (tests, notebooks).
    progress:  show a tqdm bar (default: ``cfg.runtime.progress``, else when stderr is a terminal).
    """

    def __init__(self, cfg: ExperimentCfg, *, run_dir: str | Path | None = None, backbone: nn.Module | None = None,
                 train_set=None, progress: bool | None = None):
        self.cfg = cfg
        self.config_hash = config_hash(cfg)
        self.world, self.rank = D.world_size(), D.rank()
        rt = cfg.runtime
        if rt.threads:
            torch.set_num_threads(rt.threads)
        self.device = resolve_device(rt.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = not rt.deterministic
        if rt.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(rt.amp)
        if self.amp_dtype is torch.float16 and self.device.type != "cuda":
            log.warning("runtime.amp='fp16' needs CUDA; training in float32 on %s", self.device)
            self.amp_dtype = None

        # model: the same seed on every rank, so every replica starts equal (DDP also broadcasts rank 0's)
        torch.manual_seed(rt.seed)
        random.seed(rt.seed)
        np.random.seed(rt.seed % 2 ** 32)
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone.name, cfg.backbone.params)
        self.spec = self.backbone.input_spec
        h, w = self.spec.size
        if cfg.data.size is not None and (cfg.data.size, cfg.data.size) != (h, w):
            raise ConfigError(f"data.size={cfg.data.size} but backbone {cfg.backbone.name!r} takes {h}x{w} input; "
                              f"set backbone.params.input_size (or leave data.size null)")
        if h != w:
            raise ConfigError(f"training needs a square input, backbone takes {h}x{w}")
        self.train_set = train_set if train_set is not None else load_training_set(cfg, h)
        num_classes = int(self.train_set.num_classes)
        if cfg.data.num_classes is not None and cfg.data.num_classes != num_classes:
            raise ConfigError(f"data.num_classes={cfg.data.num_classes} but the training set "
                              f"{getattr(self.train_set, 'source', cfg.data.train)!r} has {num_classes} classes")
        self.derived = derive(cfg, self.world, len(self.train_set))

        from ..heads import HEADS, create_head

        self.head = create_head(cfg.head.name, num_classes=num_classes, embedding_size=embedding_size(self.backbone),
                                sample_rate=cfg.head.sample_rate, init=cfg.head.init, **cfg.head.params)
        self.centre_init = cfg.head.init or HEADS.get(cfg.head.name).meta["default_init"]
        init_centres_world_invariant(self.head, self.centre_init, rt.seed + 1)

        mf = torch.channels_last if rt.channels_last else torch.contiguous_format
        self.memory_format = mf
        self.backbone.to(self.device, memory_format=mf)
        self.head.to(self.device)
        self.optimizer = build_optimizer(self.backbone, self.head, cfg.optim, self.derived.lr)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, self.derived)
        self.scaler = torch.amp.GradScaler(self.device.type, growth_interval=100,
                                           enabled=self.amp_dtype is torch.float16)
        self.centres_index = self._param_index(self.head.classifier.weight)

        model: nn.Module = self.backbone
        if D.is_dist():
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(self.backbone, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if rt.compile:
            model = torch.compile(model)
        self.model = model
        # the averaged weights, evaluated instead of the raw ones (``optim.ema_decay``)
        self.ema = ModelEma(self.backbone, cfg.optim.ema_decay) if cfg.optim.ema_decay else None

        self.sampler = EpochBatchSampler(len(self.train_set), self.derived.global_batch, seed=rt.seed,
                                         rank=self.rank, world_size=self.world)
        self.augment = None
        if cfg.data.augment.active:
            from ..data.transforms import TrainAugment

            a = cfg.data.augment
            self.augment = TrainAugment(p_lowres=a.p_lowres, p_crop=a.p_crop, p_photo=a.p_photo, p_flip=a.p_flip,
                                        p_gray=a.p_gray, seed=rt.seed)

        self.step = 0
        self.train_seconds = 0.0
        self.last_checkpoint_step: int | None = None
        self.history: list[dict[str, float]] = []
        self._eval_sets: dict[tuple[str, int | None], Any] = {}
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress if progress is not None else rt.progress
        if self.progress is None:
            import sys

            self.progress = sys.stderr.isatty()
        self.resumed_from: int | None = None
        if self.ckpt_path is not None and self.ckpt_path.exists():
            self.load(self.ckpt_path)
            self.resumed_from = self.step
            self._truncate_logs(self.step)

    # --- paths ------------------------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path | None:
        return self.run_dir / "ckpt" / "last.pt" if self.run_dir else None

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "train_log.csv" if self.run_dir else None

    @property
    def eval_log_path(self) -> Path | None:
        return self.run_dir / "eval_log.csv" if self.run_dir else None

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA when ``optim.ema_decay`` is set."""
        return self.ema.module if self.ema is not None else self.backbone

    @property
    def num_classes(self) -> int:
        return self.head.classifier.num_classes

    def _param_index(self, param: nn.Parameter) -> int:
        i = 0
        for g in self.optimizer.param_groups:
            for p in g["params"]:
                if p is param:
                    return i
                i += 1
        raise RuntimeError("the class centres are not in the optimiser")

    # --- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The full training state with class centres (and their momentum) gathered over ranks.
        Collective under torch.distributed: every rank must call it."""
        head_sd = dict(self.head.state_dict())
        head_sd["classifier.weight"] = gather_rows(self.head.classifier.weight, self.num_classes)
        opt = self.optimizer.state_dict()
        opt = {"state": dict(opt["state"]), "param_groups": opt["param_groups"]}
        st = opt["state"].get(self.centres_index)
        if st is not None:  # copy: the packed state shares its dicts with the live optimiser
            opt["state"][self.centres_index] = {k: (gather_rows(v, self.num_classes)
                                                    if torch.is_tensor(v) and v.dim() > 0 else v)
                                                for k, v in st.items()}
        return {
            "config_hash": self.config_hash,
            "step": self.step,
            "world_size": self.world,
            "train_seconds": self.train_seconds,
            "backbone": self.backbone.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "head": head_sd,
            "optimizer": opt,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": all_rng_states(),
            "input_spec": self.spec.to_dict() if hasattr(self.spec, "to_dict") else repr(self.spec),
            "arch": {"name": self.cfg.backbone.name, "params": self.cfg.backbone.params},
        }

    def load_state_dict(self, state: dict[str, Any], *, strict_config: bool = True) -> None:
        if strict_config and state["config_hash"] != self.config_hash:
            raise RuntimeError(f"checkpoint was written by config {state['config_hash'][:8]}, this run is "
                               f"{self.config_hash[:8]}; refusing to resume a different experiment")
        self.backbone.load_state_dict(state["backbone"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        head_sd = dict(state["head"])
        head_sd["classifier.weight"] = shard_of(head_sd["classifier.weight"], self.num_classes)
        self.head.load_state_dict(head_sd)
        opt = state["optimizer"]
        opt = {"state": dict(opt["state"]), "param_groups": opt["param_groups"]}
        st = opt["state"].get(self.centres_index)
        if st is not None:
            opt["state"][self.centres_index] = {k: (shard_of(v, self.num_classes)
                                                    if torch.is_tensor(v) and v.dim() > 0 else v)
                                                for k, v in st.items()}
        self.optimizer.load_state_dict(opt)
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.last_checkpoint_step = self.step
        rng = state["rng"]
        if len(rng) == self.world:
            restore_rng(rng[self.rank])
        else:
            log.warning("checkpoint was written by %d rank(s), resuming on %d: RNG streams re-seeded from "
                        "(seed, step, rank); the run stays deterministic but not bitwise equal to an "
                        "uninterrupted one", len(rng), self.world)
            reseed(self.cfg.runtime.seed, self.step, self.rank)

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write a checkpoint (collective; the main rank writes). Returns the path on the main rank."""
        path = Path(path) if path is not None else self.ckpt_path
        if path is None:
            return None
        state = self.state_dict()
        if D.is_main():
            save_checkpoint(path, state)
        D.barrier()
        self.last_checkpoint_step = self.step
        return path if D.is_main() else None

    def load(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path))
        log.info("resumed from %s at step %d", path, self.step)

    # --- logs -------------------------------------------------------------------------------------------
    def _truncate_logs(self, step: int) -> None:
        """Drop log rows past ``step`` (written after the checkpoint a resumed run restarts from)."""
        from .atomic import atomic_open

        if not D.is_main():
            return
        for path in (self.log_path, self.eval_log_path):
            if path is None or not path.exists():
                continue
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= step]
            with atomic_open(path, "w") as f:
                csv.writer(f).writerows(keep)

    def _append_csv(self, path: Path | None, row: dict[str, Any], columns: list[str]) -> None:
        if path is None or not D.is_main():
            return
        new = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    # --- one step ---------------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One optimiser step on this rank's uint8 batch. Raises :class:`NonFiniteLossError` before any
        update when the loss is not finite."""
        from ..data.transforms import to_input

        if self.augment is not None:
            g = torch.Generator().manual_seed((self.cfg.runtime.seed * 1_000_003 + self.step * 7919 + self.rank)
                                              % 2 ** 63)
            images = self.augment(images, generator=g)
        x = to_input(images.to(self.device, non_blocking=True), self.spec)
        x = x.contiguous(memory_format=self.memory_format)
        labels = labels.to(self.device, non_blocking=True)
        self.backbone.train()
        self.head.train()
        with self._autocast():
            emb, norm = self.model(x)
            out = self.head(emb, labels, norm)
        loss = out.loss
        value = float(loss.detach())
        if not math.isfinite(value):
            kept = (f"the last good checkpoint {self.ckpt_path} (step {self.last_checkpoint_step}) is kept"
                    if self.last_checkpoint_step is not None and self.ckpt_path is not None
                    else "no checkpoint was written")
            raise NonFiniteLossError(f"loss is {value} at step {self.step + 1} (epoch {self.sampler.position.epoch}) "
                                     f"of run {self.cfg.name!r}; training stopped before updating the weights; {kept}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.cfg.optim.clip_grad_norm
        grad_norm = float("nan")
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), clip))
        lr = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.backbone)
        stats = {"loss": value, "acc": batch_accuracy(out), "lr": lr}
        if clip is not None:
            stats["grad_norm"] = grad_norm
        stats.update({f"head_{k}": float(v) for k, v in out.stats.items()})
        return stats

    def _loader(self) -> DataLoader:
        batches = list(self.sampler.remaining())
        nw = self.cfg.data.num_workers
        # a private generator: creating an iterator must not draw from the global RNG (that would make a
        # resumed run, which creates one more iterator, diverge from an uninterrupted one)
        gen = torch.Generator().manual_seed(self.cfg.runtime.seed + self.sampler.position.epoch)
        return DataLoader(_BatchView(self.train_set), batch_sampler=batches, num_workers=nw,
                          collate_fn=_as_batch, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, generator=gen)

    # --- the loop ---------------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> FitResult:
        """Train to the configured total steps, or stop (with a checkpoint) after step ``stop_after``."""
        from tqdm.auto import tqdm

        total = self.derived.total_steps
        end = total if stop_after is None else min(total, int(stop_after))
        rt, ev = self.cfg.runtime, self.cfg.eval
        bar = tqdm(total=total, initial=self.step, desc=self.cfg.name, dynamic_ncols=True,
                   disable=not (self.progress and D.is_main()), unit="step")
        window_t, window_n = time.perf_counter(), 0
        t_session = time.perf_counter()
        columns: list[str] | None = None
        try:
            while self.step < end:
                for images, labels in self._loader():
                    t0 = time.perf_counter()
                    stats = self.train_step(images, labels)
                    self.train_seconds += time.perf_counter() - t0
                    self.sampler.advance()
                    self.step += 1
                    window_n += self.derived.global_batch
                    row = {"step": self.step, "epoch": self.step / self.derived.steps_per_epoch, **stats}
                    if self.step % rt.log_every == 0 or self.step == end:
                        now = time.perf_counter()
                        row["img_per_s"] = window_n / max(now - window_t, 1e-9)
                        row["elapsed_s"] = self.train_seconds
                        window_t, window_n = now, 0
                        if columns is None:
                            columns = list(LOG_COLUMNS) + sorted(k for k in row if k not in LOG_COLUMNS)
                        self._append_csv(self.log_path, row, columns)
                        bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['acc']:.3f}",
                                        img_s=f"{row['img_per_s']:.0f}", refresh=False)
                    self.history.append(row)
                    bar.update(1)
                    if ev.sets and ev.every_steps and self.step % ev.every_steps == 0 and self.step < total:
                        self._periodic_eval(bar)
                    if rt.ckpt_every_steps and self.step % rt.ckpt_every_steps == 0 and self.step < end:
                        self.save()
                    if self.step >= end:
                        break
            if self.last_checkpoint_step != self.step:
                self.save()
        finally:
            bar.close()
        log.info("%s: step %d/%d in %.1f s this session", self.cfg.name, self.step, total,
                 time.perf_counter() - t_session)
        return FitResult(self.step, total, self.step >= total, self.train_seconds, self.history)

    # --- evaluation -------------------------------------------------------------------------------------
    def eval_set(self, name: str, pairs: int | None = None):
        """Verification set ``name`` at the backbone's input size, optionally cut to ``pairs`` pairs."""
        key = (name, pairs)
        if key not in self._eval_sets:
            from ..data import load_bin

            full = self._eval_sets.get((name, None))
            if full is None:
                full = load_bin(resolve_bin(name), size=self.spec.size[0])
                self._eval_sets[(name, None)] = full
            if pairs is not None and pairs < len(full.issame):
                self._eval_sets[key] = full.subset(pairs)
            else:
                self._eval_sets[key] = full
        return self._eval_sets[key]

    def evaluate(self, pairs: int | None = None, sets: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Verification results ``{set: VerificationResult}`` on the main rank (``{}`` on the others).
        The global RNG state is preserved, so evaluating never changes the training trajectory."""
        from ..eval import evaluate_verification

        out: dict[str, Any] = {}
        if D.is_main():
            ev = self.cfg.eval
            model = self.eval_model
            was = model.training
            model.eval()
            try:
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    for name in (ev.sets if sets is None else sets):
                        out[name] = evaluate_verification(model, self.eval_set(name, pairs),
                                                          protocol=ev.protocol, flip=ev.flip,
                                                          batch_size=ev.batch_size, device=self.device)
            finally:
                model.train(was)
        D.barrier()
        return out

    def _periodic_eval(self, bar) -> None:
        res = self.evaluate(self.cfg.eval.pairs)
        for name, r in res.items():
            row = {"step": self.step, "set": name, "accuracy": r.accuracy, "spread": r.spread,
                   "pairs": r.n_pairs, "protocol": r.protocol}
            self._append_csv(self.eval_log_path, row, list(row))
            bar.write(f"step {self.step}: {name} {100 * r.accuracy:.2f}% ({r.n_pairs} pairs)")
