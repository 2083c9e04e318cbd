"""Engine parts: weight-decay groups, sampler, accuracy, atomic writes, world-invariant centre init."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

from fr.heads import create_head
from fr.config import OptimCfg
from fr.engine import EpochBatchSampler, atomic_write_text, param_groups
from fr.engine.atomic import atomic_open
from fr.engine.checkpoint import shard_bounds
from fr.engine.trainer import batch_accuracy, init_centres_world_invariant
from fr.heads import HeadOutput


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.PReLU(4)
        self.fc = nn.Linear(4, 8)
        self.features = nn.BatchNorm1d(8)
        self.features.weight.requires_grad_(False)  # insightface freezes it


def _names(module, params):
    ids = {id(p) for p in params}
    return sorted(n for n, p in module.named_parameters() if id(p) in ids)


def test_weight_decay_groups_follow_the_papers():
    net, head = Net(), create_head("adaface", num_classes=5, embedding_size=8)
    groups = {g["name"]: g for g in param_groups(net, head, OptimCfg(weight_decay=5e-4, no_decay="norm_bias_prelu"))}
    assert _names(net, groups["backbone"]["params"]) == ["conv.weight", "fc.weight"]
    assert _names(net, groups["no_decay"]["params"]) == ["act.weight", "bn.bias", "bn.weight", "fc.bias",
                                                         "features.bias"]
    assert groups["centres"]["params"] == [head.classifier.weight] and groups["centres"]["weight_decay"] == 5e-4
    assert groups["no_decay"]["weight_decay"] == 0.0
    # AdaFace's code: only BatchNorm is exempt
    g = {g["name"]: g for g in param_groups(net, head, OptimCfg(no_decay="bn", head_weight_decay=1e-3))}
    assert _names(net, g["backbone"]["params"]) == ["act.weight", "conv.weight", "fc.bias", "fc.weight"]
    assert g["centres"]["weight_decay"] == 1e-3
    # insightface: everything decayed; the frozen BN1d weight is never in the optimiser
    g = param_groups(net, head, OptimCfg(no_decay="none"))
    every = [p for grp in g for p in grp["params"]]
    assert net.features.weight not in [p for p in every if p is net.features.weight]
    assert len(every) == sum(p.requires_grad for p in net.parameters()) + 1


def test_sampler_is_deterministic_and_rank_slices_make_the_global_batch():
    one = EpochBatchSampler(50, 8, seed=3)
    ranks = [EpochBatchSampler(50, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    assert one.batches_per_epoch == 6  # drop_last
    for b in range(6):
        glob = one.local_indices(1, b)
        assert torch.equal(torch.cat([s.local_indices(1, b) for s in ranks]), glob)
    seen = torch.cat([one.local_indices(0, b) for b in range(6)])
    assert len(set(seen.tolist())) == 48  # no repeats within an epoch
    assert not torch.equal(one.local_indices(0, 0), one.local_indices(1, 0))  # reshuffled per epoch


def test_sampler_position_resumes_with_the_next_batch():
    s = EpochBatchSampler(40, 8, seed=0)
    it = s.remaining()
    for _ in range(7):  # crosses an epoch boundary (5 batches per epoch)
        next(it, None)
        s.advance()
        if s.position.batch == 0:
            it = s.remaining()
    expected = next(s.remaining())
    t = EpochBatchSampler(40, 8, seed=0)
    t.load_state_dict(s.state_dict())
    assert (t.position.epoch, t.position.batch) == (1, 2)
    assert next(t.remaining()) == expected
    with pytest.raises(ValueError, match="global_batch"):
        EpochBatchSampler(40, 4, seed=0).load_state_dict(s.state_dict())


def test_accuracy_on_margin_logits_ignores_unlabelled_rows():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0], [1.0, 0.0, 0.0], [9.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 0, -1])
    out = HeadOutput(loss=torch.tensor(0.0), logits=logits, labels=labels)
    assert batch_accuracy(out) == pytest.approx(2 / 3)
    assert batch_accuracy(HeadOutput(loss=torch.tensor(0.0), logits=None)) != batch_accuracy(out)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    p = tmp_path / "metrics.json"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(p, "w") as f:
            f.write("new, half")
            raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["metrics.json"]  # the temporary file is gone
    atomic_write_text(p, "new")
    assert p.read_text() == "new"


@pytest.mark.parametrize("init", ["normal", "unit_uniform", "xavier"])
def test_centre_init_does_not_depend_on_the_world_size(init, monkeypatch):
    full = create_head("cosface", num_classes=11, embedding_size=6)
    init_centres_world_invariant(full, init, seed=7, chunk_rows=4)
    for ws in (2, 3):
        rows = []
        for r in range(ws):
            head = create_head("cosface", num_classes=11, embedding_size=6)
            start, count = shard_bounds(11, ws, r)
            pfc = head.classifier  # pretend to be rank r of ws
            pfc.class_start, pfc.num_local = start, count
            pfc.weight = nn.Parameter(torch.empty(count, 6))
            init_centres_world_invariant(head, init, seed=7, chunk_rows=4)
            rows.append(pfc.weight.detach())
        assert torch.equal(torch.cat(rows), full.classifier.weight.detach())
    if init == "unit_uniform":
        assert torch.allclose(full.classifier.weight.norm(dim=1), torch.ones(11))


def test_ema_follows_timm_warmup_and_lerps_float_buffers_only():
    from fr.engine.ema import ModelEma

    net = Net()
    ema = ModelEma(net, decay=0.9)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(1000) == pytest.approx(0.9)
    before = ema.module.conv.weight.clone()
    with torch.no_grad():
        net.conv.weight.add_(1.0)
        net.bn.num_batches_tracked.fill_(7)
    ema.update(net)  # d = 0.1: the average moves 90% of the way to the new weights
    assert torch.allclose(ema.module.conv.weight, before + 0.9)
    assert int(ema.module.bn.num_batches_tracked) == 7 and int(ema.updates) == 1
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        ModelEma(net, decay=1.0)
