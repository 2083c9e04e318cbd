"""python -m fr.evaluate: protocols missing from a recorded run, measured from its exported model and merged into
its metrics.json, on a seconds-long smoke run whose final evaluation is lfw alone (miniature data root,
tests/ident_fixture.py)."""
from __future__ import annotations

import json

import pytest
import torch

import ident_fixture
from fr.config import config_hash
from fr.evaluate import EvaluateError, load_run_model, main, reevaluate
from fr.results import load_run

SMOKE = "configs/cpu/smoke.yaml"


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    from fr.paths import repo_root
    from fr.train import run

    root = ident_fixture.build(tmp_path / "data")["root"]
    monkeypatch.setenv("FR_DATA", str(root))
    monkeypatch.setenv("FR_CACHE", str(tmp_path / "cache"))
    rec = run(repo_root() / SMOKE, ["eval.suite=[lfw]", "backbone.params.input_size=16", "schedule.steps=2"],
              results_root=tmp_path / "results", progress=False)
    assert rec.complete and set(rec.metrics.metrics) == {"lfw"}
    return rec.path


def test_missing_protocols_are_added_and_nothing_recorded_moves(run_dir):
    before = json.loads((run_dir / "metrics.json").read_text())
    config = (run_dir / "config.yaml").read_bytes()
    out = reevaluate(run_dir, ["lfw", "lfw_lq", "cfp_fp"])
    assert out.evaluated == ("lfw_lq", "cfp_fp") and out.skipped == ("lfw",) and out.written
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["metrics"]["lfw"] == before["metrics"]["lfw"]
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    added = after["metrics"]["lfw_lq"]["added"]
    assert added["by"] == "fr.evaluate" and added["code"] and added["utc"] and added["replaced"] is False
    assert "second-image-lq" in after["metrics"]["lfw_lq"]["protocol"] and after["metrics"]["cfp_fp"]["accuracy"]
    rec = load_run(run_dir)
    assert (run_dir / "config.yaml").read_bytes() == config
    assert rec.complete and rec.metrics.config_hash == config_hash(rec.config) and "lfw_lq" in rec.summary()
    # a second call finds nothing to do
    again = reevaluate(run_dir, ["lfw_lq"])
    assert again.evaluated == () and not again.written
    assert json.loads((run_dir / "metrics.json").read_text()) == after


def test_forced_reevaluation_reproduces_the_recorded_metric_exactly(run_dir):
    """The re-built model (memory format of the run's runtime.channels_last) gives the trainer's numbers bit for
    bit: per-pair correctness, thresholds, norms."""
    recorded = json.loads((run_dir / "metrics.json").read_text())["metrics"]["lfw"]
    out = reevaluate(run_dir, ["lfw"], force=True, write=False)
    got = dict(out.records["lfw"])
    assert got.pop("added")["replaced"] is True
    assert got == recorded
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["lfw"] == recorded   # not written


def test_clear_errors(run_dir, capsys):
    with pytest.raises(EvaluateError, match="unknown protocols"):
        reevaluate(run_dir, ["lfw_tinyface"])
    model = run_dir / "ckpt" / "model.pt"
    ckpt = torch.load(model, weights_only=True)
    torch.save({**ckpt, "params": {**ckpt["params"], "embedding_size": 64}}, model)
    with pytest.raises(EvaluateError, match="sha256 differs"):
        load_run_model(run_dir)
    with pytest.raises(EvaluateError, match="architecture 'iresnet_tiny'.*embedding_size': 64"):
        load_run_model(run_dir, check_sha256=False)
    torch.save({**ckpt, "state_dict": {k: v[:1] if v.dim() else v for k, v in ckpt["state_dict"].items()}}, model)
    with pytest.raises(EvaluateError, match="do not fit"):
        load_run_model(run_dir, check_sha256=False)
    model.unlink()
    assert main([str(run_dir), "--protocols", "cfp_fp"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main([str(run_dir.parent / "nope")]) == 2
