"""The training loop: backbone + head + SGD, on one process or under torch.distributed.

One :class:`Trainer` is built from an :class:`~fr.config.ExperimentCfg`::

    trainer = Trainer(cfg, run_dir=Path("results/runs/x"))   # resumes from run_dir/ckpt/last.pt if present
    trainer.fit()                                            # to cfg's total steps
    results = trainer.evaluate()                             # verification on cfg.eval.sets

Distributed layout (``torchrun``; the process group must be initialised first, see :func:`fr.train.run`):
the backbone is wrapped in ``DistributedDataParallel``; the head is NOT (its class centres are sharded by
``PartialFC``; the head all-gathers the batch and every rank computes the global loss, see :mod:`fr.dist`).
Class centres are initialised from the run's seed over all classes and sliced
(:meth:`~fr.heads.classifier.PartialFC.init_world_invariant`), and the sampler splits each global batch by
rank, so ``W`` processes follow the trajectory of one process on the same global batch. BatchNorm statistics
are per rank (as in insightface and AdaFace); the equivalence holds exactly for networks without batch
statistics, or for BN with the per-rank batch.

Per step: uint8 batch to the device -> ``TrainAugment`` there (draws seeded by ``(seed, step, rank)``) -> ``to_input`` ->
autocast forward -> finite-loss check -> backward (GradScaler for fp16) -> clip backbone grad norm ->
SGD step -> LR schedule step -> EMA update. The finite-loss check is the loop's one device sync per step;
the step's statistics stay tensors and become floats only on logged steps.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import dist as D
from ..config import ConfigError, ExperimentCfg, config_hash, derive
from ..data.transforms import to_input
from .build import (build_augment, build_backbone, build_head, build_train_set, embedding_size, input_side, seed_all,
                    setup_runtime, wrap_for_training)
from .checkpoint import all_rng_states, gather_centres, load_centres, load_checkpoint, restore_rank_rng, save_checkpoint
from .ema import ModelEma
from .evaluation import VerificationSets, run_suite, verify
from .metrics import StepStats, Throughput, batch_accuracy, scalars
from .optim import build_optimizer
from .runlog import RunLog
from .sampler import EpochBatchSampler, batch_loader
from .schedule import build_scheduler

log = logging.getLogger("fr.train")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before the bad step touched the weights."""


@dataclass
class FitResult:
    """Where :meth:`Trainer.fit` stopped; ``history`` holds the logged rows (those of ``train_log.csv``)."""

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
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.runlog = RunLog(self.run_dir, writer=D.is_main())
        self.device, self.amp_dtype, self.memory_format = setup_runtime(cfg.runtime)
        seed_all(cfg.runtime.seed)  # then the backbone, and after it the head, draw from the global RNG
        self._build_backbone(backbone)
        self._build_data(train_set)
        self.head = build_head(cfg.head, int(self.train_set.num_classes), embedding_size(self.backbone),
                               cfg.runtime.seed + 1)
        self._build_optimisation()
        self._build_model()
        self._init_loop(progress)
        self._resume()

    # --- build steps ------------------------------------------------------------------------------------
    def _build_backbone(self, backbone: nn.Module | None) -> None:
        """The backbone (the config's, or the one given) and the side of its square input."""
        b = self.cfg.backbone
        self.backbone = backbone if backbone is not None else build_backbone(b.name, b.params)
        self.spec = self.backbone.input_spec
        self.input_side = input_side(self.backbone, self.cfg.data.size, b.name)

    def _build_data(self, train_set) -> None:
        """The training set at the backbone's input size, the steps and learning rate derived from it, the
        resumable sampler of its batches and the seeded augmentation (None when inactive)."""
        d = self.cfg.data
        self.train_set = build_train_set(d, size=self.input_side, seed=self.cfg.runtime.seed, train_set=train_set)
        if d.num_classes is not None and d.num_classes != int(self.train_set.num_classes):
            raise ConfigError(f"data.num_classes={d.num_classes} but the training set "
                              f"{getattr(self.train_set, 'source', d.train)!r} has {self.train_set.num_classes} "
                              f"classes")
        self.derived = derive(self.cfg, self.world, len(self.train_set))
        seed = self.cfg.runtime.seed
        self.sampler = EpochBatchSampler(len(self.train_set), self.derived.global_batch, seed=seed, rank=self.rank,
                                         world_size=self.world)
        self.augment = build_augment(d.augment, seed)

    def _build_optimisation(self) -> None:
        """Parameters on the device, SGD over the papers' weight-decay groups, LR schedule, fp16 grad scaler."""
        self.backbone.to(self.device, memory_format=self.memory_format)
        self.head.to(self.device)
        self.optimizer = build_optimizer(self.backbone, self.head, self.cfg.optim, self.derived.lr)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.schedule, self.derived)
        self.scaler = torch.amp.GradScaler(self.device.type, growth_interval=100,
                                           enabled=self.amp_dtype is torch.float16)

    def _build_model(self) -> None:
        """``model``: what the loop calls (DDP, compiled if asked); ``ema``: the average of the backbone's
        weights that is evaluated and exported instead of them (``optim.ema_decay``), or None."""
        self.model = wrap_for_training(self.backbone, self.device, self.cfg.runtime.compile)
        decay = self.cfg.optim.ema_decay
        self.ema = ModelEma(self.backbone, decay) if decay else None

    def _init_loop(self, progress: bool | None) -> None:
        self.step = 0
        self.train_seconds = 0.0
        self.last_checkpoint_step: int | None = None
        self.resumed_from: int | None = None
        self.history: list[dict[str, float]] = []
        self.eval_sets = VerificationSets(self.input_side)
        self.progress = progress if progress is not None else self.cfg.runtime.progress
        if self.progress is None:
            self.progress = sys.stderr.isatty()

    def _resume(self) -> None:
        """Continue from ``ckpt/last.pt`` if the run folder has one, forgetting log rows written after it; without
        one, start from step 0 with empty logs (a session killed before its first checkpoint leaves rows)."""
        if self.ckpt_path is not None and self.ckpt_path.exists():
            self.load(self.ckpt_path)
            self.resumed_from = self.step
            self.runlog.truncate(self.step)
        else:
            self.runlog.clear()

    # --- properties -------------------------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path | None:
        return self.run_dir / "ckpt" / "last.pt" if self.run_dir else None

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and exported: the EMA when ``optim.ema_decay`` is set."""
        return self.ema.module if self.ema is not None else self.backbone

    # --- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The full training state with class centres (and their momentum) gathered over ranks.
        Collective under torch.distributed: every rank must call it."""
        head, optimizer = gather_centres(self.head, self.optimizer)
        return {
            "config_hash": self.config_hash,
            "step": self.step,
            "world_size": self.world,
            "train_seconds": self.train_seconds,
            "backbone": self.backbone.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "head": head,
            "optimizer": optimizer,
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
        load_centres(self.head, self.optimizer, state["head"], state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.last_checkpoint_step = self.step
        restore_rank_rng(state["rng"], seed=self.cfg.runtime.seed, step=self.step)

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

    # --- one step ---------------------------------------------------------------------------------------
    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepStats:
        """One optimiser step on this rank's uint8 batch.

        Returns the step's loss, accuracy under the margin, lr, grad norm (when clipping) and the head's
        statistics (``head_*``) as detached tensors or floats, without waiting for the device (:func:`scalars`
        makes floats of them). The finiteness check of the loss is the one wait: it raises
        :class:`NonFiniteLossError` before the bad step touches the weights."""
        x, labels = self._device_batch(images, labels)
        self.backbone.train()
        self.head.train()
        with self._autocast():
            emb, norm = self.model(x)
            out = self.head(emb, labels, norm)
        loss = out.loss
        if not torch.isfinite(loss.detach()):
            self._stop_nonfinite(loss)
        lr = self.optimizer.param_groups[0]["lr"]  # the rate of this step, before the schedule moves on
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = self.cfg.optim.clip_grad_norm
        if clip is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.backbone.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.backbone)
        stats: StepStats = {"loss": loss.detach(), "acc": batch_accuracy(out), "lr": lr}
        if clip is not None:
            stats["grad_norm"] = grad_norm.detach()
        stats.update({f"head_{k}": v.detach() if torch.is_tensor(v) else v for k, v in out.stats.items()})
        return stats

    def _device_batch(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 batch to the device (from pinned memory, without waiting, when it is a GPU), augmented
        there (its random draws seeded by ``(seed, step, rank)`` on the CPU), then the backbone's input."""
        images = images.to(self.device, non_blocking=True)
        if self.augment is not None:
            g = torch.Generator().manual_seed((self.cfg.runtime.seed * 1_000_003 + self.step * 7919 + self.rank)
                                              % 2 ** 63)
            images = self.augment(images, generator=g)
        x = to_input(images, self.spec)
        return x.contiguous(memory_format=self.memory_format), labels.to(self.device, non_blocking=True)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _stop_nonfinite(self, loss: torch.Tensor) -> NoReturn:
        kept = (f"the last good checkpoint {self.ckpt_path} (step {self.last_checkpoint_step}) is kept"
                if self.last_checkpoint_step is not None and self.ckpt_path is not None
                else "no checkpoint was written")
        raise NonFiniteLossError(f"loss is {float(loss.detach())} at step {self.step + 1} (epoch "
                                 f"{self.sampler.position.epoch}) of run {self.cfg.name!r}; training stopped before "
                                 f"updating the weights; {kept}")

    def _loader(self):
        """This epoch's remaining batches (the generator is seeded per epoch, see :func:`batch_loader`)."""
        return batch_loader(self.train_set, list(self.sampler.remaining()), num_workers=self.cfg.data.num_workers,
                            seed=self.cfg.runtime.seed + self.sampler.position.epoch,
                            pin_memory=self.device.type == "cuda")

    # --- the loop ---------------------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> FitResult:
        """Train to the configured total steps, or stop (with a checkpoint) after step ``stop_after``."""
        total = self.derived.total_steps
        end = total if stop_after is None else min(total, int(stop_after))
        rt, ev = self.cfg.runtime, self.cfg.eval
        bar = tqdm(total=total, initial=self.step, desc=self.cfg.name, dynamic_ncols=True,
                   disable=not (self.progress and D.is_main()), unit="step")
        throughput = Throughput()
        t_session = time.perf_counter()
        try:
            while self.step < end:
                for images, labels in self._loader():
                    t0 = time.perf_counter()
                    stats = self.train_step(images, labels)
                    self.step += 1
                    logged = self.step % rt.log_every == 0 or self.step == end
                    values = scalars(stats) if logged else None  # waits for the step's device work: timed
                    self.train_seconds += time.perf_counter() - t0
                    self.sampler.advance()
                    throughput.count(self.derived.global_batch)
                    if values is not None:
                        self._log_step(values, throughput.rate(), bar)
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

    def _log_step(self, values: dict[str, float], images_per_s: float, bar) -> None:
        """A logged step's row: to ``train_log.csv``, the history and the progress bar."""
        row = {"step": self.step, "epoch": self.step / self.derived.steps_per_epoch, **values,
               "img_per_s": images_per_s, "elapsed_s": self.train_seconds}
        self.runlog.train(row)
        self.history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.3f}", img_s=f"{images_per_s:.0f}",
                        refresh=False)

    # --- evaluation -------------------------------------------------------------------------------------
    def evaluate(self, pairs: int | None = None, sets: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Verification results ``{set: VerificationResult}`` of :attr:`eval_model` on the main rank (``{}`` on
        the others), on ``sets`` (default ``eval.sets``) cut to ``pairs`` pairs. The global RNG state is
        preserved, so evaluating never changes the training trajectory."""
        out: dict[str, Any] = {}
        if D.is_main():
            names = self.cfg.eval.sets if sets is None else sets
            out = verify(self.eval_model, {n: self.eval_sets.get(n, pairs) for n in names}, self.cfg.eval,
                         self.device)
        D.barrier()
        return out

    def evaluate_final(self) -> dict[str, Any]:
        """The run's final evaluation on the main rank (``{}`` on the others): every protocol of ``eval.suite``
        from one embedding pass when it is set, else verification on ``eval.sets`` at ``eval.final_pairs``."""
        if not self.cfg.eval.suite:
            return self.evaluate(self.cfg.eval.final_pairs)
        out = run_suite(self.eval_model, self.cfg.eval, self.device) if D.is_main() else {}
        D.barrier()
        return out

    def _periodic_eval(self, bar) -> None:
        for name, r in self.evaluate(self.cfg.eval.pairs).items():
            self.runlog.eval({"step": self.step, "set": name, "accuracy": r.accuracy, "spread": r.spread,
                              "pairs": r.n_pairs, "protocol": r.protocol})
            bar.write(f"step {self.step}: {name} {100 * r.accuracy:.2f}% ({r.n_pairs} pairs)")
