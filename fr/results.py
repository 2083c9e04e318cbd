"""Run records under ``results/runs/<run_id>/`` and a table of them.

A run folder holds::

    config.yaml     the resolved config (``fr.config.load_config`` on it gives the same config hash)
    env.json        interpreter, libraries, device, git SHA + dirty flag (``fr.envinfo``)
    train_log.csv   one row per logged step (loss, accuracy under the margin, lr, img/s, head statistics)
    eval_log.csv    periodic verification during training (when configured)
    metrics.json    written last: the completion marker. Final metrics, each with its protocol string and
                    the sha256 of the data it was measured on; wall time; derived values (:class:`RunMetrics`).
    ckpt/           checkpoints (not committed)

``run_id = <name>-<first 8 hex of the config hash>``, so the same config always maps to the same folder: a
complete record is found instead of re-training, an incomplete one is resumed. Every file is written
atomically, so a crash never leaves a half-written result.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypedDict

import pandas as pd
import yaml

from .config import ExperimentCfg, config_hash, from_dict
from .paths import results_root


def runs_root(root: str | Path | None = None) -> Path:
    """``<results root>/runs`` (``$FR_RESULTS`` or ``<repo>/results`` by default)."""
    return (Path(root) if root is not None else results_root()) / "runs"


def run_id(cfg: ExperimentCfg) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name).strip("_.") or "run"
    return f"{name}-{config_hash(cfg)[:8]}"


class ConfigIdentity:
    """For a class with a ``config`` (an :class:`ExperimentCfg`): its run id and config hash, the two names
    by which a run is found (the folder under ``results/runs/`` and the hash inside it)."""

    config: ExperimentCfg

    @property
    def run_id(self) -> str:
        return run_id(self.config)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


class TrainData(TypedDict):
    """The training set a run used: ``source`` names it, ``sha256`` identifies its content."""

    source: str
    sha256: str | None
    num_images: int
    num_classes: int


class TrainSummary(TypedDict):
    """The last logged training row and the mean throughput over the logged rows of the final session."""

    final_loss: float | None
    final_acc: float | None
    images_per_s: float | None
    data: TrainData


class ModelFile(TypedDict):
    """The exported backbone (the evaluated weights), relative to the run folder."""

    path: str
    sha256: str
    input_spec: dict[str, Any]


@dataclass(kw_only=True)
class RunMetrics:
    """``metrics.json``: what a complete run measured. The one definition of the record, written by
    :func:`fr.train.run` and read by :func:`load_run`, :func:`load_runs` and :mod:`fr.report`; the fields are
    the file's keys, in its order, so every record written since ``schema`` 1 reads back unchanged.

    metrics: per verification set, :meth:`fr.eval.VerificationResult.to_dict` plus ``pairs`` and
             ``bin_sha256`` (the per-pair ``correct_hex`` the report's paired tests use included).
    derived: :meth:`fr.config.Derived.to_dict` of the run's world size and training set.
    """

    schema: int = 1  # bump when a key changes meaning
    status: str = "complete"
    run_id: str
    name: str
    paper: str
    config_hash: str
    created_utc: str
    steps: int
    epochs: float
    wall_time_s: float  # train_time_s + eval_time_s
    train_time_s: float  # the optimiser steps, over every session of the run
    eval_time_s: float  # the final verification
    session_time_s: float  # the last session, start to record
    derived: dict[str, Any]
    train: TrainSummary
    metrics: dict[str, dict[str, Any]]
    model: ModelFile

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "run metrics") -> RunMetrics:
        """The record in ``d``; a ValueError naming ``source`` and the keys when they are not the record's."""
        fields = dataclasses.fields(cls)
        unknown = sorted(set(d) - {f.name for f in fields})
        missing = [f.name for f in fields if f.name not in d and f.default is dataclasses.MISSING]
        problems = []
        if unknown:
            problems.append(f"unknown keys {unknown}")
        if missing:
            problems.append(f"missing keys {missing}")
        if problems:
            raise ValueError(f"{source} is not a run record: {'; '.join(problems)}")
        return cls(**d)

    @classmethod
    def read(cls, path: str | Path) -> RunMetrics:
        return cls.from_dict(json.loads(Path(path).read_text()), source=str(path))

    def accuracy(self, set_name: str) -> float:
        if set_name not in self.metrics:
            raise KeyError(f"run {self.run_id} has no verification set {set_name!r} (it has {sorted(self.metrics)})")
        return float(self.metrics[set_name]["accuracy"])


@dataclass
class RunRecord:
    """A run folder read back. ``metrics`` (and ``status == "complete"``) once ``metrics.json`` exists."""

    run_id: str
    path: Path
    status: str
    config: ExperimentCfg | None = None
    metrics: RunMetrics | dict[str, Any] | None = None  # a dict for calibration records (no training)
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def accuracy(self, name: str) -> float:
        if self.metrics is None:
            raise ValueError(f"run {self.run_id} is {self.status}: no metrics.json in {self.path}")
        return self.metrics.accuracy(name)

    def train_log(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "train_log.csv")

    def summary(self) -> str:
        if self.metrics is None or not self.complete:
            return f"{self.run_id}: {self.status}"
        parts = [f"{k} {label} {100 * value:.2f}%" if label else f"{k} {100 * value:.2f}%"
                 for k, v in self.metrics.metrics.items() for label, value in [headline(v)]]
        return f"{self.run_id}: {', '.join(parts) or 'no verification sets'} ({self.metrics.wall_time_s:.0f} s)"


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder {path}")
    cfg = None
    if (path / "config.yaml").exists():
        cfg = from_dict(yaml.safe_load((path / "config.yaml").read_text()), source=str(path / "config.yaml"))
    env = json.loads((path / "env.json").read_text()) if (path / "env.json").exists() else {}
    if (path / "calibration.yaml").exists() and (path / "metrics.json").exists():
        # a pretrained model evaluated on the protocols (scripts/record_calibration.py): no training, no RunMetrics
        metrics = json.loads((path / "metrics.json").read_text())
        return RunRecord(path.name, path, metrics.get("status", "incomplete"), None, metrics, env)
    metrics = RunMetrics.read(path / "metrics.json") if (path / "metrics.json").exists() else None
    return RunRecord(path.name, path, metrics.status if metrics else "incomplete", cfg, metrics, env)


RUN_COLUMNS = ("run_id", "name", "paper", "status", "config_hash", "backbone", "head", "head_params", "data",
               "batch_size", "seed", "steps", "wall_time_s", "train_time_s", "images_per_s", "amp", "final_loss",
               "created_utc", "git_sha", "git_dirty", "device")


def headline(result: dict[str, Any]) -> tuple[str, float]:
    """The one number a recorded result is summarised by: verification accuracy (label ``""``), all-pairs
    TAR at FAR 1e-4 (or the lowest FAR the protocol resolved), identification rank-1."""
    if "accuracy" in result:
        return "", float(result["accuracy"])
    if "cmc" in result:
        return "rank-1", float(result["cmc"]["1"])
    tars = {k: v for k, v in result.get("tar_at_far", {}).items() if v is not None}
    if tars:
        far = "1e-04" if "1e-04" in tars else min(tars, key=float)
        return f"TAR@FAR={far}", float(tars[far])
    return "?", float("nan")


def flatten_result(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The columns :func:`load_runs` gives one recorded result: ``<name>.accuracy``/``.spread``/``.protocol``/
    ``.sha256``/``.n_pairs`` (verification), ``<name>.tar@<far>`` (all-pairs, ``None`` where the pairs cannot
    resolve the FAR), ``<name>.rank<k>`` (identification). Accuracies, TARs and rank-k rates are fractions."""
    out = {f"{name}.{k}": result[k] for k in ("accuracy", "spread", "protocol", "sha256", "n_pairs") if k in result}
    for far, tar in (result.get("tar_at_far") or {}).items() if "accuracy" not in result else ():
        out[f"{name}.tar@{far}"] = tar
    for k, rate in (result.get("cmc") or {}).items():
        out[f"{name}.rank{k}"] = rate
    return out


def load_runs(root: str | Path | None = None, *, name: str | None = None, paper: str | None = None,
              include_incomplete: bool = False) -> pd.DataFrame:
    """One row per run folder under ``<root>/runs``: identity, headline settings, wall time and, per
    verification set, ``<set>.accuracy`` / ``<set>.spread`` / ``<set>.protocol`` / ``<set>.sha256``.

    ``name``/``paper`` filter on the config; incomplete runs are left out unless asked for."""
    rows = []
    base = runs_root(root)
    for p in sorted(base.iterdir()) if base.is_dir() else []:
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            rec = load_run(p)
        except Exception as e:  # a foreign or damaged folder should not hide the others
            rows.append({"run_id": p.name, "status": f"unreadable: {e}"})
            continue
        if not rec.complete and not include_incomplete:
            continue
        cfg = rec.config
        if cfg is None or (name is not None and cfg.name != name) or (paper is not None and cfg.paper != paper):
            continue
        row = {"run_id": rec.run_id, "name": cfg.name, "paper": cfg.paper, "status": rec.status,
               "config_hash": config_hash(cfg), "backbone": cfg.backbone.name, "head": cfg.head.name,
               "head_params": json.dumps(cfg.head.params, sort_keys=True), "data": cfg.data.train,
               "batch_size": cfg.data.batch_size, "seed": cfg.runtime.seed, "amp": cfg.runtime.amp,
               "git_sha": rec.env.get("git", {}).get("sha"), "git_dirty": rec.env.get("git", {}).get("dirty"),
               "device": rec.env.get("device"), "gpu": rec.env.get("gpu"), "sample_rate": cfg.head.sample_rate,
               "world_size": rec.env.get("world_size"), "dist_backend": rec.env.get("dist_backend")}
        m = rec.metrics
        if m is not None:
            row.update({"steps": m.steps, "wall_time_s": m.wall_time_s, "train_time_s": m.train_time_s,
                        "images_per_s": m.train["images_per_s"], "final_loss": m.train["final_loss"],
                        "created_utc": m.created_utc})
            for set_name, r in m.metrics.items():
                row.update(flatten_result(set_name, r))
        rows.append(row)
    df = pd.DataFrame(rows)
    # the identity columns exist even when nothing is recorded, so callers can filter an empty table
    return df.reindex(columns=list(dict.fromkeys([*RUN_COLUMNS, *df.columns])))
