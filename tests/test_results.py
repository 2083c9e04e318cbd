"""The run record has one definition (``RunMetrics``): every recorded ``metrics.json`` reads into it and writes
back byte for byte, foreign files are refused with the keys that are wrong, and the readers (``load_run``,
``load_runs``) take their columns from it."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from fr.config import ExperimentCfg, config_hash, dump_yaml, load_config
from fr.results import RunMetrics, load_run, load_runs, run_id

ROOT = Path(__file__).resolve().parents[1]
ALL_RECORDS = sorted((ROOT / "results" / "runs").glob("*/metrics.json"))
# calibration records (a pretrained model evaluated, scripts/record_calibration.py) have no training: no RunMetrics
RECORDS = [p for p in ALL_RECORDS if not (p.parent / "calibration.yaml").exists()]
CALIBRATIONS = [p for p in ALL_RECORDS if (p.parent / "calibration.yaml").exists()]


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.parent.name)
def test_every_recorded_run_reads_into_the_schema_and_writes_back_unchanged(path):
    m = RunMetrics.read(path)
    assert m.run_id == path.parent.name and m.schema == 1 and m.status == "complete"
    assert json.dumps(m.to_dict(), indent=2) + "\n" == path.read_text()  # key order and values included
    assert 0 <= m.accuracy("lfw") <= 1 and m.train["data"]["num_classes"] > 0


@pytest.mark.parametrize("path", CALIBRATIONS, ids=lambda p: p.parent.name)
def test_calibration_records_load_as_plain_metrics(path):
    rec = load_run(path.parent)
    assert rec.status == "complete" and isinstance(rec.metrics, dict)
    assert 0.9 < rec.metrics["metrics"]["lfw"]["accuracy"] <= 1


def _record(**changes) -> tuple[ExperimentCfg, RunMetrics]:
    cfg = load_config(None, {"name": "toy", "data.train": "synthetic"})
    fields = dict(run_id=run_id(cfg), name="toy", paper="", config_hash=config_hash(cfg),
                  created_utc="2026-01-01T00:00:00+00:00", steps=12, epochs=1.5, wall_time_s=3.0, train_time_s=2.0,
                  eval_time_s=1.0, session_time_s=3.5, derived={"world_size": 1},
                  train={"final_loss": 1.25, "final_acc": 0.5, "images_per_s": 100.0,
                         "data": {"source": "synthetic", "sha256": "ab", "num_images": 128, "num_classes": 16}},
                  metrics={"toy": {"accuracy": 0.75, "spread": 0.1, "protocol": "insightface/x", "sha256": "cd",
                                   "n_pairs": 20}},
                  model={"path": "ckpt/model.pt", "sha256": "ef", "input_spec": {"size": [16, 16]}})
    return cfg, RunMetrics(**{**fields, **changes})


def test_round_trip_and_refusals():
    _, m = _record()
    d = m.to_dict()
    assert list(d)[:3] == ["schema", "status", "run_id"] and list(d)[-4:] == ["derived", "train", "metrics", "model"]
    assert RunMetrics.from_dict(json.loads(json.dumps(d))) == m
    with pytest.raises(ValueError, match=r"x/metrics\.json is not a run record: unknown keys \['wall_time'\]; "
                                         r"missing keys \['wall_time_s'\]"):
        RunMetrics.from_dict({**{k: v for k, v in d.items() if k != "wall_time_s"}, "wall_time": 1.0},
                             source="x/metrics.json")
    assert RunMetrics.from_dict({k: v for k, v in d.items() if k not in ("schema", "status")}) == m  # defaults
    with pytest.raises(KeyError, match="no verification set 'lfw'"):
        m.accuracy("lfw")


def test_load_run_and_load_runs_read_the_schema(tmp_path):
    cfg, m = _record()
    done = tmp_path / "runs" / m.run_id
    done.mkdir(parents=True)
    (done / "config.yaml").write_text(dump_yaml(cfg))
    (done / "metrics.json").write_text(json.dumps(m.to_dict()))
    (done / "env.json").write_text(json.dumps({"git": {"sha": "123", "dirty": False}, "device": "cpu"}))
    rec = load_run(done)
    assert rec.complete and rec.metrics == m and rec.accuracy("toy") == 0.75
    assert rec.summary() == f"{m.run_id}: toy 75.00% (3 s)"

    other = load_config(None, {"name": "toy", "data.train": "synthetic", "runtime.seed": 1})
    running = tmp_path / "runs" / run_id(other)
    running.mkdir()
    (running / "config.yaml").write_text(dump_yaml(other))
    rec = load_run(running)
    assert rec.status == "incomplete" and rec.metrics is None and rec.summary().endswith(": incomplete")
    with pytest.raises(ValueError, match="is incomplete: no metrics.json"):
        rec.accuracy("toy")

    table = load_runs(tmp_path, include_incomplete=True).set_index("run_id")
    row = table.loc[m.run_id]
    assert (row["steps"], row["train_time_s"], row["images_per_s"], row["final_loss"]) == (12, 2.0, 100.0, 1.25)
    assert (row["toy.accuracy"], row["toy.n_pairs"], row["git_sha"]) == (0.75, 20, "123")
    assert table.loc[run_id(other), "status"] == "incomplete" and math.isnan(table.loc[run_id(other), "steps"])
    assert list(load_runs(tmp_path)["run_id"]) == [m.run_id]

    broken = dataclasses.replace(m, run_id="broken").to_dict()
    del broken["model"]
    (done / "metrics.json").write_text(json.dumps(broken))
    status = load_runs(tmp_path).loc[0, "status"]  # a damaged record is listed, not fatal to the table
    assert status.startswith("unreadable: ") and "missing keys ['model']" in status
