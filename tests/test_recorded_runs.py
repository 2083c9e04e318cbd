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
# complete training records (a run in progress in this checkout has no metrics.json yet); calibration records
# (scripts/record_calibration.py) carry calibration.yaml instead of config.yaml
RUNS = sorted(p.parent for p in RUNS_DIR.glob("*/metrics.json") if (p.parent / "config.yaml").exists())
CALIBRATIONS = sorted(p for p in RUNS_DIR.glob("*") if (p / "calibration.yaml").exists())


@pytest.mark.parametrize("run_dir", RUNS, ids=lambda p: p.name)
def test_recorded_run_loads_and_keeps_its_config_hash(run_dir):
    cfg = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()), source=str(run_dir))
    assert run_dir.name.endswith("-" + config_hash(cfg)[:8])
    rec = load_run(run_dir)
    assert rec.complete and rec.metrics.config_hash == config_hash(cfg)


def test_suite_results_flatten_to_one_column_per_rate_and_summarise_by_their_headline():
    from fr.results import flatten_result, headline

    ver = {"accuracy": 0.8, "spread": 0.02, "protocol": "insightface", "sha256": "ab", "n_pairs": 6000}
    allp = {"protocol": "all-pairs pooled TAR@FAR", "sha256": "cd", "tar_at_far": {"1e-07": None, "1e-04": 0.3}}
    ident = {"protocol": "closed-set rank-N", "sha256": "cd", "cmc": {"1": 0.2, "5": 0.4}}
    assert flatten_result("lfw", ver) == {f"lfw.{k}": v for k, v in ver.items()}
    assert flatten_result("a", allp) == {"a.protocol": allp["protocol"], "a.sha256": "cd", "a.tar@1e-07": None,
                                         "a.tar@1e-04": 0.3}
    assert flatten_result("i", ident)["i.rank5"] == 0.4
    assert headline(ver) == ("", 0.8) and headline(allp) == ("TAR@FAR=1e-04", 0.3)
    assert headline(ident) == ("rank-1", 0.2)


@pytest.mark.parametrize("run_dir", CALIBRATIONS, ids=lambda p: p.name)
def test_calibration_record_loads_and_keeps_its_settings_hash(run_dir):
    import hashlib

    settings = yaml.safe_load((run_dir / "calibration.yaml").read_text())
    digest = hashlib.sha256(yaml.safe_dump(settings, sort_keys=True).encode()).hexdigest()
    assert run_dir.name == f"{settings['name']}-{digest[:8]}"
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config_hash"] == digest
    assert metrics["kind"] == "calibration" and set(metrics["metrics"]) <= set(settings["protocols"])
