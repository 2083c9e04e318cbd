"""Run records under ``results/runs/<run_id>/`` and a table of them.

A run folder holds::

    config.yaml     the resolved config (``fr.config.load_config`` on it gives the same config hash)
    env.json        interpreter, libraries, device, git SHA + dirty flag (``fr.envinfo``)
    train_log.csv   one row per logged step (loss, accuracy under the margin, lr, img/s, head statistics)
    eval_log.csv    periodic verification during training (when configured)
    metrics.json    written last: the completion marker. Final metrics, each with its protocol string and
                    the sha256 of the data it was measured on; wall time; derived values.
    ckpt/           checkpoints (not committed)

``run_id = <name>-<first 8 hex of the config hash>``, so the same config always maps to the same folder: a
complete record is found instead of re-training, an incomplete one is resumed. Every file is written
atomically, so a crash never leaves a half-written result.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ExperimentCfg, config_hash, from_dict
from .paths import results_root

SCHEMA = 1


def runs_root(root: str | Path | None = None) -> Path:
    """``<results root>/runs`` (``$FR_RESULTS`` or ``<repo>/results`` by default)."""
    return (Path(root) if root is not None else results_root()) / "runs"


def run_id(cfg: ExperimentCfg) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.name).strip("_.") or "run"
    return f"{name}-{config_hash(cfg)[:8]}"


@dataclass
class RunRecord:
    """A run folder read back. ``status`` is ``"complete"`` once ``metrics.json`` exists."""

    run_id: str
    path: Path
    status: str
    config: ExperimentCfg | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def accuracy(self, name: str) -> float:
        return float(self.metrics["metrics"][name]["accuracy"])

    def train_log(self):
        import pandas as pd

        return pd.read_csv(self.path / "train_log.csv")

    def summary(self) -> str:
        if not self.complete:
            return f"{self.run_id}: {self.status}"
        parts = [f"{k} {100 * v['accuracy']:.2f}%" for k, v in self.metrics.get("metrics", {}).items()]
        return f"{self.run_id}: {', '.join(parts) or 'no verification sets'} ({self.metrics.get('wall_time_s', 0):.0f} s)"


def load_run(path: str | Path) -> RunRecord:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder {path}")
    cfg = None
    if (path / "config.yaml").exists():
        import yaml

        cfg = from_dict(yaml.safe_load((path / "config.yaml").read_text()), source=str(path / "config.yaml"))
    env = json.loads((path / "env.json").read_text()) if (path / "env.json").exists() else {}
    metrics: dict[str, Any] = {}
    status = "incomplete"
    if (path / "metrics.json").exists():
        metrics = json.loads((path / "metrics.json").read_text())
        status = metrics.get("status", "complete")
    return RunRecord(path.name, path, status, cfg, metrics, env)


def find_run(cfg: ExperimentCfg, root: str | Path | None = None) -> RunRecord | None:
    """The record of ``cfg`` (by config hash) if its folder exists, complete or not."""
    p = runs_root(root) / run_id(cfg)
    return load_run(p) if p.is_dir() else None


RUN_COLUMNS = ("run_id", "name", "paper", "status", "config_hash", "backbone", "head", "head_params", "data",
               "batch_size", "seed", "steps", "wall_time_s", "train_time_s", "images_per_s", "amp", "final_loss",
               "created_utc", "git_sha", "git_dirty", "device")


def load_runs(root: str | Path | None = None, *, name: str | None = None, paper: str | None = None,
              include_incomplete: bool = False):
    """One row per run folder under ``<root>/runs``: identity, headline settings, wall time and, per
    verification set, ``<set>.accuracy`` / ``<set>.spread`` / ``<set>.protocol`` / ``<set>.sha256``.

    ``name``/``paper`` filter on the config; incomplete runs are left out unless asked for."""
    import pandas as pd

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
        m = rec.metrics
        row = {"run_id": rec.run_id, "name": cfg.name, "paper": cfg.paper, "status": rec.status,
               "config_hash": config_hash(cfg), "backbone": cfg.backbone.name, "head": cfg.head.name,
               "head_params": json.dumps(cfg.head.params, sort_keys=True), "data": cfg.data.train,
               "batch_size": cfg.data.batch_size, "seed": cfg.runtime.seed, "steps": m.get("steps"),
               "wall_time_s": m.get("wall_time_s"),
               "train_time_s": m.get("train_time_s"), "images_per_s": m.get("train", {}).get("images_per_s"),
               "amp": cfg.runtime.amp, "final_loss": m.get("train", {}).get("final_loss"),
               "created_utc": m.get("created_utc"), "git_sha": rec.env.get("git", {}).get("sha"),
               "git_dirty": rec.env.get("git", {}).get("dirty"), "device": rec.env.get("device"),
               "gpu": rec.env.get("gpu"), "sample_rate": cfg.head.sample_rate,
               "world_size": rec.env.get("world_size"), "dist_backend": rec.env.get("dist_backend")}
        for set_name, r in m.get("metrics", {}).items():
            for k in ("accuracy", "spread", "protocol", "sha256", "n_pairs"):
                row[f"{set_name}.{k}"] = r.get(k)
        rows.append(row)
    df = pd.DataFrame(rows)
    # the identity columns exist even when nothing is recorded, so callers can filter an empty table
    return df.reindex(columns=list(dict.fromkeys([*RUN_COLUMNS, *df.columns])))
