"""Fabricated run records for tests: a run folder as ``fr.train`` leaves it (``config.yaml`` and a complete
``metrics.json``), holding only the results a test gives; and the overrides of a tiny config that really trains."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from fr.config import config_hash, dump_yaml
from fr.results import RunMetrics, run_id, runs_root


def write_record(root: Path, cfg, metrics: Mapping[str, Any], *, steps: int = 10, wall: float = 1.0) -> str:
    """A complete record of ``cfg`` under ``<root>/runs`` with the per-protocol ``metrics`` (as ``metrics.json``
    holds them), ``steps`` training steps and ``wall`` seconds of wall, training and session time; its run id."""
    rid = run_id(cfg)
    d = runs_root(root) / rid
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(dump_yaml(cfg))
    rm = RunMetrics(run_id=rid, name=cfg.name, paper=cfg.paper, config_hash=config_hash(cfg),
                    created_utc="2026-01-01T00:00:00+00:00", steps=steps, epochs=1.0, wall_time_s=wall,
                    train_time_s=wall, eval_time_s=0.0, session_time_s=wall, derived={},
                    train={"final_loss": 1.0, "final_acc": 0.5, "images_per_s": 1.0,
                           "data": {"source": "fabricated", "sha256": None, "num_images": 1, "num_classes": 1}},
                    metrics=dict(metrics), model={"path": "ckpt/model.pt", "sha256": "0", "input_spec": {}})
    (d / "metrics.json").write_text(json.dumps(rm.to_dict()))
    return rid


def tiny_overrides(name: str, *, steps: int) -> dict[str, Any]:
    """Overrides (of the defaults) of a config that trains for real in a second or two: a quarter-width IResNet at
    16 px on 8 synthetic classes, ``steps`` steps, one CPU thread, no progress bar."""
    return {
        "name": name,
        "data.train": "synthetic", "data.synthetic_classes": 8, "data.synthetic_per_class": 4, "data.batch_size": 8,
        "backbone.name": "iresnet_tiny", "backbone.params": {"input_size": 16, "embedding_size": 32, "width": 0.25},
        "head.name": "cosface", "optim.lr": 0.05,
        "schedule.kind": "multistep", "schedule.steps": steps, "schedule.milestones": [1.0],
        "runtime.device": "cpu", "runtime.threads": 1, "runtime.progress": False,
    }
