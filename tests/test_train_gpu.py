"""The CUDA paths of the training loop (autocast bf16; fp16 with GradScaler; NCCL is exercised by torchrun on a
multi-GPU machine). Deselected by default (marker ``gpu``); run with ``pytest -m gpu`` on a GPU machine."""
from __future__ import annotations

import math

import pytest
import torch

from fr.config import load_config
from fr.engine import Trainer, load_checkpoint

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("amp", ["bf16", "fp16", "none"])
def test_amp_training_steps_and_resume_on_cuda(amp, tmp_path):
    cfg = load_config("configs/cpu/smoke.yaml", {"runtime.device": "cuda", "runtime.amp": amp,
                                                 "runtime.progress": False, "head.sample_rate": 0.5})
    t = Trainer(cfg, run_dir=tmp_path)
    res = t.fit(stop_after=3)
    assert all(math.isfinite(r["loss"]) for r in res.history)
    assert next(t.backbone.parameters()).is_cuda
    state = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert state["step"] == 3 and (amp != "fp16" or state["scaler"]["scale"] > 0)
    again = Trainer(cfg, run_dir=tmp_path)
    assert again.step == 3
    again.fit()
    assert again.step == cfg.schedule.steps
