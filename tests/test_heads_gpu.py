"""Every registered head on a CUDA device: the same loss, gradients and state as on the CPU, and finite under
bf16 autocast and behind Partial FC. Deselected by default (marker ``gpu``); run with ``pytest -m gpu`` on a
GPU machine."""
from __future__ import annotations

import copy

import pytest
import torch

import fr

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _batch(seed: int, batch: int = 32, classes: int = 20, dim: int = 64):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(batch, dim, generator=g) * 8
    labels = torch.randint(0, classes, (batch,), generator=g)
    labels[-2:] = -1  # rows not on this shard are ignored on every device
    return emb, labels


def _draws_random_numbers(head, emb, labels) -> bool:
    """Whether the head's training-mode loss depends on the global generator (ElasticFace's margins)."""
    losses = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        losses.append(float(copy.deepcopy(head)(emb, labels).loss))
    return losses[0] != losses[1]


@pytest.mark.parametrize("name", fr.list_heads())
def test_cuda_matches_cpu_on_loss_gradients_and_state(name):
    """Heads that draw random numbers in training (CPU and CUDA generators differ) are compared in eval mode."""
    torch.manual_seed(0)
    cpu = fr.create_head(name, num_classes=20, embedding_size=64).train()
    if _draws_random_numbers(cpu, *_batch(0)):
        cpu.eval()
    gpu = copy.deepcopy(cpu).cuda()
    for step in range(3):  # several steps, so stateful heads update their buffers on both devices
        emb, labels = _batch(step)
        e_cpu, e_gpu = emb.clone().requires_grad_(True), emb.cuda().requires_grad_(True)
        out_cpu, out_gpu = cpu(e_cpu, labels), gpu(e_gpu, labels.cuda())
        out_cpu.loss.backward()
        out_gpu.loss.backward()
        torch.testing.assert_close(out_gpu.loss.cpu(), out_cpu.loss, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"{name} step {step} loss: {m}")
        torch.testing.assert_close(e_gpu.grad.cpu(), e_cpu.grad, rtol=1e-3, atol=1e-5,
                                   msg=lambda m: f"{name} step {step} embedding gradient: {m}")
        torch.testing.assert_close(gpu.classifier.weight.grad.cpu(), cpu.classifier.weight.grad, rtol=1e-3,
                                   atol=1e-5, msg=lambda m: f"{name} step {step} centre gradient: {m}")
    for k, v in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[k].cpu(), v, rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"{name} state {k}: {m}")


@pytest.mark.parametrize("name", fr.list_heads())
def test_bf16_autocast_and_partial_fc_on_cuda_are_finite(name):
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=2000, embedding_size=64, sample_rate=0.5).cuda().train()
    emb, labels = _batch(1, batch=64, classes=2000)
    emb = emb.cuda().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = head(emb, labels.cuda())
    out.loss.backward()
    assert torch.isfinite(out.loss), f"{name}: loss {out.loss}"
    assert torch.isfinite(emb.grad).all(), f"{name}: non-finite embedding gradient"
