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
        losses.append(float(copy.deepcopy(head)(emb, labels).loss.detach()))
    return losses[0] != losses[1]


def _error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.detach().cpu().double() - ref.detach()).abs().max())


def _assert_as_accurate(cpu: torch.Tensor, gpu: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """CUDA's error against the float64 reference within 4x the CPU's, plus 1e-5 of the reference's scale."""
    err_cpu, err_gpu = _error(cpu, ref), _error(gpu, ref)
    floor = 1e-5 * (1.0 + float(ref.detach().abs().max()))
    assert err_gpu <= 4 * err_cpu + floor, (f"{what}: CUDA error {err_gpu:.2e} against float64, "
                                           f"CPU float32 error {err_cpu:.2e}")


@pytest.mark.parametrize("name", fr.list_heads())
def test_cuda_is_as_accurate_as_the_cpu_on_loss_gradients_and_state(name):
    """The CUDA head in float32 against a float64 CPU reference must be about as close as the float32 CPU head
    is (within 4x its error, plus 1e-5 of the reference's scale): some heads are ill-conditioned (the harmonic
    loss divides by 1 - cos + eps), so an elementwise tolerance between two float32 devices would be arbitrary.
    Heads that draw random numbers in training (CPU and CUDA generators differ) are compared in eval mode."""
    torch.manual_seed(0)
    cpu = fr.create_head(name, num_classes=20, embedding_size=64).train()
    if _draws_random_numbers(cpu, *_batch(0)):
        cpu.eval()
    gpu = copy.deepcopy(cpu).cuda()
    ref = copy.deepcopy(cpu).double()
    for step in range(3):  # several steps, so stateful heads update their buffers on every copy
        emb, labels = _batch(step)
        e = {"cpu": emb.clone(), "gpu": emb.cuda(), "ref": emb.double()}
        heads = {"cpu": cpu, "gpu": gpu, "ref": ref}
        out = {}
        for k, head in heads.items():
            e[k].requires_grad_(True)
            out[k] = head(e[k], labels.to(e[k].device))
            out[k].loss.backward()
        pairs = {"loss": {k: o.loss for k, o in out.items()},
                 "embedding gradient": {k: t.grad for k, t in e.items()},
                 "centre gradient": {k: h.classifier.weight.grad for k, h in heads.items()}}
        for what, t in pairs.items():
            _assert_as_accurate(t["cpu"], t["gpu"], t["ref"], f"{name} step {step} {what}")
    for k, v in ref.state_dict().items():
        if v.is_floating_point():
            _assert_as_accurate(cpu.state_dict()[k], gpu.state_dict()[k], v, f"{name} state {k}")
        else:
            assert torch.equal(gpu.state_dict()[k].cpu(), v), f"{name} state {k}"


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
