"""Training runs end to end on a tiny synthetic problem: bitwise resume, run records, the NaN guard and
checkpoints that survive a crash during their own write."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import fr.engine.trainer
import fr.train
from fr.config import config_hash, load_config
from fr.engine import NonFiniteLossError, Trainer, load_checkpoint, scalars
from fr.results import load_runs, run_id

TINY = {
    "name": "tiny",
    "data.train": "synthetic", "data.synthetic_classes": 16, "data.synthetic_per_class": 4, "data.batch_size": 8,
    "data.augment": {"p_flip": 0.5, "p_lowres": 0.3, "p_crop": 0.3, "p_photo": 0.3},
    "backbone.name": "iresnet_tiny",
    "backbone.params": {"input_size": 16, "embedding_size": 32, "width": 0.25, "dropout": 0.2},
    # AdaFace keeps EMA buffers; Partial FC sampling draws random negatives: both must resume exactly
    "head.name": "adaface", "head.sample_rate": 0.5,
    "optim.lr": 0.05, "optim.clip_grad_norm": 5.0,
    "schedule.kind": "multistep", "schedule.steps": 10, "schedule.milestones": [1.0],
    "runtime.device": "cpu", "runtime.threads": 1, "runtime.progress": False,
}


def tiny(**extra):
    return load_config(None, {**TINY, **extra})


def _tensors(obj, prefix=""):
    if torch.is_tensor(obj):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def test_resume_is_bitwise_equal_and_records_are_found_not_repeated(tmp_path, toy_bin, monkeypatch):
    cfg = tiny(**{"eval.sets": ["toy"], "eval.every_steps": 4, "eval.pairs": 10})
    a = fr.train.run(cfg, results_root=tmp_path / "a")
    assert a.complete and a.run_id == run_id(cfg) and a.run_id.endswith(config_hash(cfg)[:8])

    b1 = fr.train.run(cfg, results_root=tmp_path / "b", stop_after=5)  # "killed" after step 5
    assert b1.status == "incomplete" and not (b1.path / "metrics.json").exists()
    assert load_checkpoint(b1.path / "ckpt" / "last.pt")["step"] == 5
    b = fr.train.run(cfg, results_root=tmp_path / "b")  # new objects, resumes from the checkpoint
    assert b.complete and b.metrics.steps == 10

    la, lb = a.train_log(), b.train_log()
    assert list(la["step"]) == list(lb["step"]) == list(range(1, 11))
    for col in ("loss", "acc", "lr"):
        assert la[col].tolist() == lb[col].tolist(), col  # exact, not approximate
    ca, cb = load_checkpoint(a.path / "ckpt" / "last.pt"), load_checkpoint(b.path / "ckpt" / "last.pt")
    for part in ("backbone", "head", "optimizer"):
        ta, tb = dict(_tensors(ca[part])), dict(_tensors(cb[part]))
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{part}{k} differs after resume"
    assert any("batch_mean" in k for k in dict(_tensors(ca["head"])))  # the EMA buffers were compared
    assert a.accuracy("toy") == b.accuracy("toy") == a.metrics.metrics["toy"]["accuracy"]
    assert pd.read_csv(a.path / "eval_log.csv")["accuracy"].tolist() == \
        pd.read_csv(b.path / "eval_log.csv")["accuracy"].tolist()

    # the record: resolved config, env with git, metrics with protocol and data fingerprint
    assert config_hash(load_config(a.path / "config.yaml")) == config_hash(cfg)
    env = json.loads((a.path / "env.json").read_text())
    assert {"python", "torch", "device", "git"} <= env.keys() and {"sha", "dirty"} <= env["git"].keys()
    toy = a.metrics.metrics["toy"]
    assert toy["protocol"].startswith("insightface/") and len(toy["sha256"]) == 64 and toy["n_pairs"] == 20
    assert a.metrics.wall_time_s > 0 and a.metrics.train["data"]["num_classes"] == 16

    # a complete record is returned as it is, without training
    monkeypatch.setattr(fr.train, "Trainer", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    again = fr.train.run(cfg, results_root=tmp_path / "a")
    assert again.metrics.created_utc == a.metrics.created_utc

    table = load_runs(tmp_path / "a")
    assert len(table) == 1 and table.loc[0, "run_id"] == a.run_id
    assert table.loc[0, "toy.accuracy"] == toy["accuracy"] and table.loc[0, "toy.sha256"] == toy["sha256"]
    assert len(load_runs(tmp_path / "a", name="other")) == 0


def test_nan_loss_stops_with_step_and_loss_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny()
    trainer = Trainer(cfg, run_dir=tmp_path)
    trainer.fit(stop_after=3)
    ckpt = tmp_path / "ckpt" / "last.pt"
    before = ckpt.stat().st_mtime_ns
    with torch.no_grad():  # a diverged weight, as after an exploding step
        trainer.backbone.fc.weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 4 .*last good checkpoint .*last\.pt \(step 3\)"):
        trainer.fit()
    assert trainer.step == 3
    assert ckpt.stat().st_mtime_ns == before
    state = load_checkpoint(ckpt)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["backbone"].values()
                                      if v.is_floating_point())


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    cfg = tiny()
    trainer = Trainer(cfg, run_dir=tmp_path)
    trainer.fit(stop_after=2)
    ckpt = tmp_path / "ckpt" / "last.pt"
    real_save = torch.save

    def crash(obj, f, *a, **k):
        f.write(b"\x80partial checkpoint" * 1000)
        raise OSError("simulated crash in the middle of the write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="simulated crash"):
        trainer.fit(stop_after=3)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.pt"]  # no temporary file left behind
    assert load_checkpoint(ckpt)["step"] == 2
    # a new process resumes from step 2 and forgets the log rows written after it
    again = Trainer(cfg, run_dir=tmp_path)
    assert again.step == 2 and again.resumed_from == 2
    assert pd.read_csv(tmp_path / "train_log.csv")["step"].tolist() == [1, 2]


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    Trainer(tiny(), run_dir=tmp_path).fit(stop_after=1)
    with pytest.raises(RuntimeError, match="refusing to resume"):
        Trainer(tiny(**{"optim.lr": 0.01}), run_dir=tmp_path)


def test_print_config_cli(capsys):
    root = Path(__file__).resolve().parents[1]
    assert fr.train.main(["--config", str(root / "configs/cpu/smoke.yaml"), "--set", "head.params.m=0.4",
                          "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "m: 0.4" in out and "# config_hash:" in out and '"total_steps": 6' in out


def test_step_statistics_stay_tensors_until_a_logged_step(tmp_path, monkeypatch):
    """Converting a device tensor to a float waits for the device: only logged steps convert (on CPU the
    conversions are counted; on a GPU each would be a sync)."""
    trainer = Trainer(tiny(**{"runtime.log_every": 3, "schedule.steps": 7}), run_dir=tmp_path)
    converted = []
    monkeypatch.setattr(fr.engine.trainer, "scalars", lambda stats: converted.append(stats) or scalars(stats))
    res = trainer.fit()
    assert len(converted) == 3 and [r["step"] for r in res.history] == [3, 6, 7]  # every 3rd step, and the last
    assert all(torch.is_tensor(converted[0][k]) for k in ("loss", "acc", "grad_norm"))
    assert all(isinstance(v, float) for r in res.history for v in r.values() if not isinstance(v, int))
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["step"].tolist() == [3, 6, 7] and log["loss"].tolist() == [r["loss"] for r in res.history]


def test_ema_is_checkpointed_resumed_evaluated_and_exported(tmp_path, toy_bin):
    cfg = tiny(**{"optim.ema_decay": 0.5, "schedule.steps": 4, "eval.sets": ["toy"], "eval.pairs": 10})
    a = fr.train.run(cfg, results_root=tmp_path / "a")
    fr.train.run(cfg, results_root=tmp_path / "b", stop_after=2)
    b = fr.train.run(cfg, results_root=tmp_path / "b")  # resumes the average too
    ca, cb = load_checkpoint(a.path / "ckpt" / "last.pt"), load_checkpoint(b.path / "ckpt" / "last.pt")
    assert int(ca["ema"]["updates"]) == 4 and ca["ema"].keys() == cb["ema"].keys()
    assert all(torch.equal(v, cb["ema"][k]) for k, v in ca["ema"].items())
    assert a.accuracy("toy") == b.accuracy("toy")
    exported = torch.load(a.path / "ckpt" / "model.pt", weights_only=False)["state_dict"]
    ema = {k.removeprefix("module."): v for k, v in ca["ema"].items() if k.startswith("module.")}
    assert exported.keys() == ema.keys() and all(torch.equal(v, ema[k]) for k, v in exported.items())
    assert not torch.equal(exported["fc.weight"], ca["backbone"]["fc.weight"])  # the average, not the last step
    trainer = Trainer(cfg, run_dir=a.path)
    assert trainer.step == 4 and trainer.eval_model is trainer.ema.module  # what evaluate() runs


def test_label_noise_corrupts_the_stated_fraction_the_same_way_for_every_head_of_a_seed():
    """``data.label_noise`` replaces round(fraction * N) training labels by other classes, drawn from the run's
    seed: two heads with the same seed train on the same corrupted labels, another seed corrupts others."""
    clean = Trainer(tiny()).train_set
    noisy = Trainer(tiny(**{"data.label_noise": 0.25})).train_set
    changed = (noisy.labels != clean.labels).nonzero().flatten()
    assert len(changed) == round(0.25 * len(clean)) == 16
    assert noisy.images is not None and torch.equal(noisy.images, clean.images) and "label_noise" in noisy.source
    other_head = Trainer(tiny(**{"data.label_noise": 0.25, "head.name": "cosface"})).train_set
    assert torch.equal(other_head.labels, noisy.labels)
    other_seed = Trainer(tiny(**{"data.label_noise": 0.25, "runtime.seed": 1})).train_set
    assert not torch.equal((other_seed.labels != Trainer(tiny(**{"runtime.seed": 1})).train_set.labels),
                           noisy.labels != clean.labels)
