"""Two gloo processes (torchrun, the real command line) follow the loss trajectory of one process on the same
global batch, with the class centres sharded over the two ranks; their checkpoint is one file with all
centres, which one process can load."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
import yaml

import fr.train
from fr.backbones import InputSpec
from fr.config import dump_yaml, load_config
from fr.engine import Trainer, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class PlainNet(nn.Module):
    """A backbone without batch statistics: BatchNorm would normalise each rank's half-batch on its own,
    which is what DDP does (insightface, AdaFace) but is not the single-process computation."""

    def __init__(self, input_size: int = 16, embedding_size: int = 32):
        super().__init__()
        self.input_spec = InputSpec(size=(input_size, input_size))
        self.embedding_size = embedding_size
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.PReLU(8),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.PReLU(16), nn.Flatten(),
                                  nn.Linear(16 * (input_size // 4) ** 2, embedding_size))

    def forward(self, x):
        emb = self.body(x)
        return emb, emb.norm(dim=1)


def make_plain_net(**kw) -> PlainNet:
    return PlainNet(**kw)


CFG = {
    "name": "ddp_check",
    "data.train": "synthetic", "data.synthetic_classes": 16, "data.synthetic_per_class": 4, "data.batch_size": 16,
    "data.augment": {"p_flip": 0.0},  # augmentation is seeded per rank; leave it out of the comparison
    "backbone.name": "test_train_ddp:make_plain_net", "backbone.params": {"input_size": 16, "embedding_size": 32},
    "head.name": "arcface", "head.params": {"s": 16.0, "m": 0.3}, "head.sample_rate": 1.0,
    "optim.lr": 0.1, "optim.clip_grad_norm": 5.0,
    "schedule.steps": 6, "schedule.milestones": [1.0],
    "runtime.device": "cpu", "runtime.channels_last": False, "runtime.threads": 1, "runtime.progress": False,
}


def _subprocess_env() -> dict[str, str]:
    """One thread per process, the test folder (for ``make_plain_net``) and the repository importable, and no
    ``WORLD_SIZE`` inherited from an outer launcher (only torchrun sets it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(nproc: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=<nproc> <args>`` (the real command line)."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           *args], env=_subprocess_env(), cwd=cwd, capture_output=True, text=True, timeout=240)


def _torchrun_train(nproc: int, cfg, tmp_path: Path, results: Path) -> None:
    cfg_file = tmp_path / f"{cfg.name}.yaml"
    cfg_file.write_text(dump_yaml(cfg))
    proc = _torchrun(nproc, "-m", "fr.train", "--config", str(cfg_file), "--results", str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _train_in_this_process(cfg, results: Path):
    """``fr.train.run`` sets the thread count from the config; the session's is restored afterwards."""
    n = torch.get_num_threads()
    try:
        return fr.train.run(cfg, results_root=results)
    finally:
        torch.set_num_threads(n)


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_gloo_ranks_follow_the_single_process_trajectory(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = load_config(None, CFG)
    _torchrun_train(2, cfg, tmp_path, tmp_path / "two")
    one = _train_in_this_process(cfg, tmp_path / "one")
    two_dir = tmp_path / "two" / "runs" / one.run_id  # same config, same run id
    l1, l2 = one.train_log(), pd.read_csv(two_dir / "train_log.csv")
    assert list(l1["step"]) == list(l2["step"]) == list(range(1, 7))
    assert l1["loss"].std() > 0.1  # a trajectory that moves, not a constant
    torch.testing.assert_close(torch.tensor(l2["loss"].values), torch.tensor(l1["loss"].values),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.tensor(l2["acc"].values), torch.tensor(l1["acc"].values))

    c1, c2 = load_checkpoint(one.path / "ckpt" / "last.pt"), load_checkpoint(two_dir / "ckpt" / "last.pt")
    assert c2["world_size"] == 2 and len(c2["rng"]) == 2
    w1, w2 = c1["head"]["classifier.weight"], c2["head"]["classifier.weight"]
    assert w2.shape == w1.shape == (16, 32)  # both shards gathered into one file
    torch.testing.assert_close(w2, w1, rtol=1e-4, atol=1e-5)
    mom = c2["optimizer"]["state"]
    assert any(v["momentum_buffer"].shape == (16, 32) for v in mom.values())
    for k, v in c1["backbone"].items():
        torch.testing.assert_close(c2["backbone"][k], v, rtol=1e-4, atol=1e-5)

    # one process resumes the two-rank checkpoint (all centres in its single shard)
    shutil.rmtree(two_dir / "ckpt" / "model.pt", ignore_errors=True)
    (two_dir / "metrics.json").unlink()
    t = Trainer(cfg, run_dir=two_dir)
    assert t.step == 6 and torch.equal(t.head.classifier.weight.detach(), w2)
    assert yaml.safe_load((two_dir / "config.yaml").read_text())["backbone"]["name"] == CFG["backbone.name"]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_torchrun_with_one_process_runs_in_a_process_group_of_one(tmp_path, monkeypatch):
    """``torchrun --nproc_per_node=1`` (one GPU, where the group is NCCL) initialises a group of one and follows
    the plain single-process run exactly; a plain ``python -m fr.train`` has no group."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = load_config(None, {**CFG, "schedule.steps": 3})
    probe = tmp_path / "probe.py"
    probe.write_text("import fr.dist as D, torch.distributed as dist\nok = D.init_from_env('gloo')\n"
                     "print('group', ok, D.world_size(), dist.get_backend() if ok else '-')\n")
    launched = _torchrun(1, str(probe), cwd=tmp_path)
    assert "group True 1 gloo" in launched.stdout, launched.stdout + launched.stderr[-2000:]
    plain = subprocess.run([sys.executable, str(probe)], env=_subprocess_env(), capture_output=True, text=True,
                           timeout=120)
    assert "group False 1 -" in plain.stdout, plain.stdout + plain.stderr[-2000:]

    _torchrun_train(1, cfg, tmp_path, tmp_path / "torchrun")
    one = _train_in_this_process(cfg, tmp_path / "plain")
    l1 = one.train_log()
    l2 = pd.read_csv(tmp_path / "torchrun" / "runs" / one.run_id / "train_log.csv")
    torch.testing.assert_close(torch.tensor(l2["loss"].values), torch.tensor(l1["loss"].values),
                               rtol=1e-6, atol=1e-6)
    assert load_checkpoint(tmp_path / "torchrun" / "runs" / one.run_id / "ckpt" / "last.pt")["world_size"] == 1
    env = json.loads((tmp_path / "torchrun" / "runs" / one.run_id / "env.json").read_text())
    assert env["dist_backend"] == "gloo" and env["world_size"] == 1
    assert json.loads((one.path / "env.json").read_text())["dist_backend"] is None
