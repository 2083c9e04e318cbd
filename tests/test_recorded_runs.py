"""Every run recorded under ``results/runs/`` still loads, and its config still hashes to its folder name.

A refactor or a new config field that changed the hash of an old config would orphan its record (the same
experiment would be trained again under another name); this keeps the records and the code in step."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fr.config import config_hash, from_dict
from fr.results import load_run

RUNS_DIR = Path(__file__).resolve().parents[1] / "results" / "runs"
# training runs carry config.yaml; calibration records (scripts/record_calibration.py) carry calibration.yaml
RUNS = sorted(p for p in RUNS_DIR.glob("*") if p.is_dir() and not (p / "calibration.yaml").exists())
CALIBRATIONS = sorted(p for p in RUNS_DIR.glob("*") if (p / "calibration.yaml").exists())


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: p.name)
def test_recorded_run_loads_and_keeps_its_config_hash(run_dir):
    cfg = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()), source=str(run_dir))
    assert run_dir.name.endswith("-" + config_hash(cfg)[:8])
    rec = load_run(run_dir)
    assert rec.complete and rec.metrics["config_hash"] == config_hash(cfg)


@pytest.mark.parametrize("run_dir", CALIBRATIONS, ids=lambda p: p.name)
def test_calibration_record_loads_and_keeps_its_settings_hash(run_dir):
    import hashlib

    settings = yaml.safe_load((run_dir / "calibration.yaml").read_text())
    digest = hashlib.sha256(yaml.safe_dump(settings, sort_keys=True).encode()).hexdigest()
    assert run_dir.name == f"{settings['name']}-{digest[:8]}"
    rec = load_run(run_dir)
    assert rec.complete and rec.config is None and rec.metrics["config_hash"] == digest
    assert rec.metrics["kind"] == "calibration" and set(rec.metrics["metrics"]) <= set(settings["protocols"])
