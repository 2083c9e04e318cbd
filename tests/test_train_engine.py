"""Engine parts: weight-decay groups, sampler, accuracy, atomic writes, the class-centre shard split and its
world-invariant init."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn as nn

from fr.heads import create_head
from fr.config import OptimCfg
from fr.engine import EpochBatchSampler, ModelEma, atomic_write_text, batch_accuracy, param_groups
from fr.engine.atomic import atomic_open
from fr.heads import HeadOutput
from fr.heads.classifier import PartialFC, shard_bounds


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
    acc = batch_accuracy(out)
    assert acc.dim() == 0 and float(acc) == 2 / 3  # float64, as exact as the ratio of the two counts
    assert math.isnan(float(batch_accuracy(HeadOutput(loss=torch.tensor(0.0), logits=None))))
    nobody = HeadOutput(loss=torch.tensor(0.0), logits=logits, labels=torch.full((4,), -1))
    assert math.isnan(float(batch_accuracy(nobody)))


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


def _shard_of_rank(num_classes: int, dim: int, world_size: int, rank: int) -> PartialFC:
    """A ``PartialFC`` laid out as rank ``rank`` of ``world_size`` would lay it out, in this one process."""
    monkey = pytest.MonkeyPatch()
    with monkey.context() as m:
        m.setattr("fr.dist.world_size", lambda: world_size)
        m.setattr("fr.dist.rank", lambda: rank)
        return PartialFC(num_classes, dim)


def test_shard_split_covers_every_class_once_larger_shards_first():
    for n, ws in [(11, 1), (11, 2), (11, 3), (12, 4), (3, 5)]:
        bounds = [shard_bounds(n, ws, r) for r in range(ws)]
        assert [s for s, _ in bounds] == [sum(c for _, c in bounds[:r]) for r in range(ws)]  # contiguous
        assert sum(c for _, c in bounds) == n and max(c for _, c in bounds) - min(c for _, c in bounds) <= 1
        assert [c for _, c in bounds] == sorted((c for _, c in bounds), reverse=True)
    assert shard_bounds(11, 3, 0) == (0, 4) and shard_bounds(11, 3, 2) == (8, 3)  # insightface's split
    with pytest.raises(ValueError, match="rank 3 of world size 3"):
        shard_bounds(11, 3, 3)
    for r in range(3):  # the classifier shards by the same split
        pfc = _shard_of_rank(11, 6, 3, r)
        assert (pfc.class_start, pfc.num_local) == shard_bounds(11, 3, r) and pfc.weight.shape == (pfc.num_local, 6)


@pytest.mark.parametrize("init", ["normal", "unit_uniform", "xavier"])
def test_centre_init_does_not_depend_on_the_world_size(init):
    full = PartialFC(11, 6)
    rng = torch.get_rng_state()
    full.init_world_invariant(init, seed=7, chunk_rows=4)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left alone
    for ws in (2, 3):
        rows = []
        for r in range(ws):
            shard = _shard_of_rank(11, 6, ws, r)
            shard.init_world_invariant(init, seed=7, chunk_rows=4)
            rows.append(shard.weight.detach())
        assert torch.equal(torch.cat(rows), full.weight.detach())
    if init == "unit_uniform":
        assert torch.allclose(full.weight.norm(dim=1), torch.ones(11))


def test_ema_follows_timm_warmup_and_lerps_float_buffers_only():
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
