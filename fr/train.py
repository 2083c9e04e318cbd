"""Train one experiment and record it under ``results/runs/<run_id>/``.

Command line (the same config drives Python and notebooks)::

    python -m fr.train --config configs/cpu/celeba_small.yaml --set head.params.m=0.45
    torchrun --nproc_per_node=2 -m fr.train --config configs/cpu/smoke.yaml
    python -m fr.train --config configs/cpu/smoke.yaml --print-config      # resolved + derived, no training

Python::

    from fr.train import run
    record = run("configs/cpu/celeba_small.yaml", {"head.params.m": 0.45})
    record.accuracy("lfw"), record.metrics.train_time_s        # record.metrics: fr.results.RunMetrics

A config whose record is already complete is not trained again: :func:`run` returns the existing record.
A record with a checkpoint but no ``metrics.json`` (an interrupted run) is resumed from its checkpoint.
A run being trained by another process is left alone: :func:`run` raises :class:`fr.engine.lock.RunBusy`
naming that process, and the command exits with status 3.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as tdist

from . import dist as D
from .config import ExperimentCfg, config_hash, derive, dump_yaml, load_config, num_train_images
from .data._util import sha256_file
from .engine.atomic import atomic_save, atomic_write_json, atomic_write_text
from .engine.lock import RunBusy, run_lock
from .engine.trainer import Trainer
from .envinfo import collect_env
from .results import RunMetrics, RunRecord, load_run, run_id, runs_root

log = logging.getLogger("fr.train")

#: the exported backbone (the evaluated weights), relative to the run folder
MODEL_FILE = "ckpt/model.pt"


def _init_dist(cfg: ExperimentCfg) -> bool:
    backend = "gloo" if cfg.runtime.device == "cpu" or not torch.cuda.is_available() else "nccl"
    return D.init_from_env(backend)


def run(cfg: ExperimentCfg | str | Path, overrides: Mapping[str, Any] | Sequence[str] | None = None, *,
        results_root: str | Path | None = None, stop_after: int | None = None, backbone=None, train_set=None,
        progress: bool | None = None) -> RunRecord:
    """Train ``cfg`` (a config or a YAML path, plus overrides) unless its record is already complete.

    results_root: where ``runs/`` lives (default ``$FR_RESULTS`` or ``<repo>/results``).
    stop_after:   stop (with a checkpoint) after this step; a later ``run`` of the same config resumes.
    backbone, train_set: ready-made objects instead of those the config names (they must match it: the
                  record is filed under the config's hash).
    Under ``torchrun`` the process group is initialised here (gloo on CPU, NCCL on CUDA).
    """
    if not isinstance(cfg, ExperimentCfg):
        cfg = load_config(cfg, overrides)
    elif overrides:
        raise ValueError("overrides apply to a config path; for a loaded config use dataclasses.replace or "
                         "load_config(path, overrides)")
    _init_dist(cfg)
    rid = run_id(cfg)
    run_dir = runs_root(results_root) / rid
    t_start = time.perf_counter()
    with contextlib.ExitStack() as held:
        # rank 0 alone decides (recorded / busy / an error / train) and every rank acts on its one answer, so no
        # rank returns or raises while another waits in a collective
        state = None
        if D.is_main():
            state = _claim(run_dir, cfg, held)
        state = D.broadcast_object(state)
        if state == "recorded":
            return load_run(run_dir)
        if isinstance(state, tuple):
            kind, message = state
            raise (RunBusy if kind == "busy" else RuntimeError)(message)
        D.barrier()
        return _train(cfg, run_dir, t_start, backbone=backbone, train_set=train_set, progress=progress,
                      stop_after=stop_after)


def _claim(run_dir: Path, cfg: ExperimentCfg, held: contextlib.ExitStack):
    """On the main rank: ``"recorded"`` when ``run_dir`` holds a complete record (before or after taking the lock:
    another process may finish it meanwhile), ``("busy", message)`` when another process trains it, ``("error",
    message)`` when the folder cannot be prepared; else None, with the lock held in ``held`` and the config
    written."""
    if _recorded(run_dir) is not None:
        return "recorded"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        held.enter_context(run_lock(run_dir))
        if _recorded(run_dir) is not None:
            return "recorded"
        text = dump_yaml(cfg)
        if not (run_dir / "config.yaml").exists() or (run_dir / "config.yaml").read_text() != text:
            atomic_write_text(run_dir / "config.yaml", text)
    except RunBusy as e:
        return ("busy", str(e))
    except OSError as e:
        return ("error", f"cannot prepare run folder {run_dir}: {e}")
    return None


def _recorded(run_dir: Path) -> RunRecord | None:
    """The complete record in ``run_dir``, if there is one."""
    if (run_dir / "metrics.json").exists():
        rec = load_run(run_dir)
        if rec.complete:
            log.info("%s is already recorded in %s; not training again", run_dir.name, run_dir)
            return rec
    return None


def _train(cfg: ExperimentCfg, run_dir: Path, t_start: float, *, backbone, train_set, progress,
           stop_after: int | None) -> RunRecord:
    """Train (or resume) and evaluate ``cfg`` in ``run_dir``, then write its record (:func:`run`, lock held)."""
    rid = run_dir.name
    trainer = Trainer(cfg, run_dir=run_dir, backbone=backbone, train_set=train_set, progress=progress)
    env = collect_env(trainer.device)
    env.update(world_size=trainer.world, dist_backend=D.backend(), argv=sys.argv,
               resumed_from_step=trainer.resumed_from)
    fit = trainer.fit(stop_after=stop_after)
    if not fit.done:
        D.barrier()
        return RunRecord(rid, run_dir, "incomplete", cfg)

    t_eval = time.perf_counter()
    results = trainer.evaluate_final()
    eval_seconds = time.perf_counter() - t_eval
    if D.is_main():
        # the backbone alone, for evaluation elsewhere (the full state stays in ckpt/last.pt)
        model_path = run_dir / MODEL_FILE
        atomic_save(model_path, lambda f: torch.save({"arch": cfg.backbone.name, "params": cfg.backbone.params,
                                                      "input_spec": trainer.spec.to_dict(),
                                                      "state_dict": trainer.eval_model.state_dict()}, f))
        metrics = _run_metrics(cfg, trainer, results, model_path, eval_seconds=eval_seconds,
                               session_seconds=time.perf_counter() - t_start)
        atomic_write_json(run_dir / "env.json", env)
        atomic_write_json(run_dir / "metrics.json", metrics.to_dict())  # last: marks the record complete
        for r in results.values():
            log.info("%s", r.summary())
    D.barrier()
    return load_run(run_dir)


def _run_metrics(cfg: ExperimentCfg, trainer: Trainer, results: Mapping[str, Any], model_path: Path, *,
                 eval_seconds: float, session_seconds: float) -> RunMetrics:
    """The record of a finished run: the trainer's state, the final verification ``results`` and the exported
    model at ``model_path``."""
    logged, ds = trainer.history, trainer.train_set
    return RunMetrics(
        run_id=run_id(cfg), name=cfg.name, paper=cfg.paper, config_hash=config_hash(cfg),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        steps=trainer.step, epochs=trainer.step / trainer.derived.steps_per_epoch,
        wall_time_s=trainer.train_seconds + eval_seconds, train_time_s=trainer.train_seconds,
        eval_time_s=eval_seconds, session_time_s=session_seconds, derived=trainer.derived.to_dict(),
        train={"final_loss": logged[-1]["loss"] if logged else None,
               "final_acc": logged[-1]["acc"] if logged else None,
               "images_per_s": sum(r["img_per_s"] for r in logged) / len(logged) if logged else None,
               "data": {"source": str(getattr(ds, "source", cfg.data.train)), "sha256": getattr(ds, "sha256", None),
                        "num_images": len(ds), "num_classes": int(ds.num_classes)}},
        metrics={name: _result_record(r) for name, r in results.items()},
        model={"path": MODEL_FILE, "sha256": sha256_file(model_path),
               "input_spec": trainer.spec.to_dict()})


def _result_record(result: Any) -> dict[str, Any]:
    """A final result as recorded: its own ``to_dict()``; verification results also keep their pair count and
    the sha256 of their ``.bin`` under the names the first records used."""
    out = result.to_dict()
    if hasattr(result, "n_pairs"):
        out.update(pairs=result.n_pairs, bin_sha256=result.sha256)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fr.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML config (inherit: lists allowed)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. head.params.m=0.45 (repeatable; value read as YAML)")
    p.add_argument("--results", default=None, help="results root (default $FR_RESULTS or <repo>/results)")
    p.add_argument("--stop-after", type=int, default=None, help="stop with a checkpoint after this step")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, its hash and the "
                                                                 "derived values, then exit")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        print(f"# config_hash: {config_hash(cfg)}\n# run_id: {run_id(cfg)}")
        n = num_train_images(cfg)
        if n is not None:
            print("# derived (1 process): " + json.dumps(derive(cfg, 1, n).to_dict()))
        return 0
    started = not D.is_dist()
    try:
        rec = run(cfg, results_root=args.results, stop_after=args.stop_after, progress=args.progress)
        if D.is_main():
            print(rec.summary())
            print(f"record: {rec.path}")
    except RunBusy as e:
        if D.is_main():
            print(f"fr.train: {e}", file=sys.stderr)
        return 3
    finally:
        if started and D.is_dist():
            tdist.destroy_process_group()
    return 0


__all__ = ["run", "main"]

if __name__ == "__main__":
    sys.exit(main())
