"""Contract tests over every registered head.

Whatever its paper, a head must: give finite losses and gradients at cosines of exactly +1 and -1 and at
extreme feature norms; ignore rows labelled -1; work behind Partial FC; keep its state in buffers that
round-trip through ``state_dict``; be deterministic under a fixed seed; agree between float32 and float64;
and give the same loss and gradients when its class centres are sharded over processes.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fr
from fr.heads import create_rule, head_info
from fr.heads.base import ShardContext
from sharding import run_on_ranks

HEAD_NAMES = fr.list_heads()


def ctx_for(labels, cos):
    """A one-process context; ``centres`` (for rules with proxy terms, e.g. LH2Face) fixed unit rows."""
    ctx = ShardContext(labels, labels.clone())
    g = torch.Generator().manual_seed(7)
    ctx.centres = torch.nn.functional.normalize(torch.randn(cos.shape[1], 4, generator=g), dim=1).to(cos.dtype)
    return ctx


def _inputs(seed, batch=8, classes=12, dim=16, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(batch, dim, generator=g, dtype=dtype) * 10
    labels = torch.randint(0, classes, (batch,), generator=g)
    return emb, labels


def test_registry_has_every_replicated_head():
    required = {"softmax", "sphereface", "cosface", "arcface", "combined", "curricularface", "mv_am", "mv_arc",
                "adaface", "magface", "elastic_arc", "elastic_cos", "elastic_arc_plus", "elastic_cos_plus", "sface",
                "sm_cosface", "smaface", "smaface_star", "nsmaface_star", "recurricularface", "adasin", "lh2face",
                "harmonic"}
    missing = required - set(HEAD_NAMES)
    assert not missing, f"heads not registered: {sorted(missing)}"


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_metadata_is_complete(name):
    info = head_info(name)
    for key in ("paper", "equation", "tex", "official", "summary"):
        assert info[key], f"{name}: empty {key}"
    if info["reconstructed"]:
        assert "reconstruct" in info["summary"].lower(), f"{name}: a reconstruction must say so in its summary"
    assert info["doc"], f"{name}: the rule class needs a docstring"


@pytest.mark.parametrize("name", HEAD_NAMES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sign=st.sampled_from([1.0, -1.0]), log_norm=st.floats(-3.0, 4.0), seed=st.integers(0, 2**16),
       training=st.booleans())
def test_finite_at_unit_cosines_and_extreme_norms(name, sign, log_norm, seed, training):
    """Embeddings equal to +-(their class centre): target cosine exactly +-1 after the clamp."""
    torch.manual_seed(seed)
    head = fr.create_head(name, num_classes=6, embedding_size=8)
    head.train(training)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    w = torch.nn.functional.normalize(head.classifier.weight.detach(), dim=1)
    emb = (sign * w[labels] * (10.0 ** log_norm)).requires_grad_(True)
    out = head(emb, labels)
    assert torch.isfinite(out.loss), f"{name}: loss {out.loss}"
    out.loss.backward()
    assert torch.isfinite(emb.grad).all(), f"{name}: non-finite embedding gradient"
    assert torch.isfinite(head.classifier.weight.grad).all(), f"{name}: non-finite centre gradient"
    for k, v in out.stats.items():
        assert v == v, f"{name}: stat {k} is NaN"


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_rule_finite_with_exact_plus_minus_one_in_cosines(name):
    rule = create_rule(name)
    cos = torch.tensor([[1.0, -1.0, 0.0, 0.5], [-1.0, 1.0, 1.0, -1.0], [0.3, -0.2, 1.0, -1.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 3])
    norms = torch.tensor([1e-3, 30.0, 1e4], requires_grad=True)
    for training in (True, False):
        rule.train(training)
        out = rule(cos, ctx_for(labels, cos), norms)
        gc, gn = torch.autograd.grad(out.loss, (cos, norms), allow_unused=True)
        assert torch.isfinite(out.loss), f"{name} (training={training})"
        assert torch.isfinite(gc).all(), f"{name}: dL/dcos not finite (training={training})"
        assert gn is None or torch.isfinite(gn).all(), f"{name}: dL/dnorm not finite"


@pytest.mark.parametrize("name", HEAD_NAMES)
@pytest.mark.parametrize("training", [False, True])
def test_rows_labelled_minus_one_are_ignored(name, training):
    g = torch.Generator().manual_seed(1)
    cos = (torch.rand(10, 7, generator=g, dtype=torch.float64) * 1.8 - 0.9)
    labels = torch.randint(0, 7, (10,), generator=g)
    labels[[1, 4, 7]] = -1
    norms = 5 + 30 * torch.rand(10, generator=g, dtype=torch.float64)
    keep = labels >= 0

    def run(c, y, n):
        torch.manual_seed(0)
        rule = create_rule(name).double().train(training)
        c = c.clone().requires_grad_(True)
        out = rule(c, ctx_for(y, c), n)
        grad, = torch.autograd.grad(out.loss, c)
        return out.loss, grad

    loss_all, grad_all = run(cos, labels, norms)
    loss_sub, grad_sub = run(cos[keep], labels[keep], norms[keep])
    torch.testing.assert_close(loss_all, loss_sub, msg=f"{name}: rows labelled -1 changed the loss")
    assert (grad_all[~keep] == 0).all(), f"{name}: rows labelled -1 received gradient"
    torch.testing.assert_close(grad_all[keep] * keep.sum() / keep.sum(), grad_sub)


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_works_behind_partial_fc(name):
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=40, embedding_size=16, sample_rate=0.5).train()
    emb, labels = _inputs(0, classes=40)
    emb.requires_grad_(True)
    out = head(emb, labels)
    assert out.logits is None or out.logits.shape == (8, 20)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(emb.grad).all()
    index = head.classifier.last_index
    untouched = torch.ones(40, dtype=torch.bool)
    untouched[index] = False
    assert (head.classifier.weight.grad[untouched] == 0).all(), f"{name}: unsampled centres got gradient"


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_state_round_trips_through_state_dict(name):
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=12, embedding_size=16).train()
    for s in range(3):
        emb, labels = _inputs(s)
        head(emb, labels).loss.backward()
    state = {k: v.clone() for k, v in head.state_dict().items()}
    fresh = fr.create_head(name, num_classes=12, embedding_size=16)
    fresh.load_state_dict(state)
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=f"{name}: {k} did not round-trip")
    head.eval(), fresh.eval()
    emb, labels = _inputs(9)
    torch.testing.assert_close(head(emb, labels).loss, fresh(emb, labels).loss)


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_eval_mode_updates_no_state(name):
    torch.manual_seed(0)
    head = fr.create_head(name, num_classes=12, embedding_size=16).eval()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    emb, labels = _inputs(3)
    l1 = head(emb, labels).loss
    l2 = head(emb, labels).loss
    torch.testing.assert_close(l1, l2, msg=f"{name}: eval mode is not deterministic")
    for k, v in head.state_dict().items():
        assert torch.equal(v, before[k]), f"{name}: eval forward changed {k}"


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_deterministic_under_fixed_seed(name):
    def once():
        torch.manual_seed(123)
        head = fr.create_head(name, num_classes=12, embedding_size=16).train()
        losses = []
        for s in range(2):
            emb, labels = _inputs(s)
            out = head(emb, labels)
            out.loss.backward()
            losses.append(out.loss.detach())
        return torch.stack(losses), head.classifier.weight.grad.clone()

    (l1, g1), (l2, g2) = once(), once()
    assert torch.equal(l1, l2) and torch.equal(g1, g2), f"{name}: not deterministic under a fixed seed"


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_float32_agrees_with_float64(name):
    g = torch.Generator().manual_seed(2)
    cos = torch.rand(16, 9, generator=g, dtype=torch.float64) * 1.8 - 0.9
    labels = torch.randint(0, 9, (16,), generator=g)
    norms = 5 + 30 * torch.rand(16, generator=g, dtype=torch.float64)
    results = []
    for dtype in (torch.float64, torch.float32):
        torch.manual_seed(0)
        rule = create_rule(name).to(dtype).eval()
        c = cos.to(dtype).requires_grad_(True)
        out = rule(c, ctx_for(labels, c), norms.to(dtype))
        grad, = torch.autograd.grad(out.loss, c)
        results.append((out.loss.double(), grad.double()))
    (l64, g64), (l32, g32) = results
    torch.testing.assert_close(l32, l64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g32, g64, rtol=1e-3, atol=1e-4)


# --- sharded Partial FC: 2 gloo processes versus 1 -----------------------------------------------

def _sharded_case(name, **overrides):
    """A float64 head, the full (13, 16) centre matrix and an 8-row batch (row 3 ignored), all seeded."""
    torch.manual_seed(0)
    full_w = torch.randn(13, 16, dtype=torch.float64) * 0.01
    head = fr.create_head(name, num_classes=13, embedding_size=16, **overrides).double().train()
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(8, 16, generator=g, dtype=torch.float64) * 10
    labels = torch.randint(0, 13, (8,), generator=g)
    labels[3] = -1
    return head, full_w, emb, labels


def _sharded_steps(rank, names, overrides, steps):
    """On one rank of 2: each head on its shard of the centres and its 4 rows of the batch, ``steps`` steps."""
    results = {}
    for name in names:
        head, full_w, emb, labels = _sharded_case(name, **overrides.get(name, {}))
        c = head.classifier
        with torch.no_grad():
            c.weight.copy_(full_w[c.class_start:c.class_start + c.num_local])
        mine = slice(rank * 4, rank * 4 + 4)
        local_emb = emb[mine].clone().requires_grad_(True)
        for _ in range(steps):
            torch.manual_seed(1)
            out = head(local_emb, labels[mine])
            out.loss.backward()
        results[name] = dict(loss=out.loss.detach(), emb_grad=local_emb.grad.clone(), w_grad=c.weight.grad.clone(),
                             start=c.class_start, stats=out.stats,
                             buffers={k: v.clone() for k, v in head.rule.state_dict().items()})
    return results


def _one_process(name, overrides, steps):
    head, full_w, emb, labels = _sharded_case(name, **overrides.get(name, {}))
    with torch.no_grad():
        head.classifier.weight.copy_(full_w)
    emb.requires_grad_(True)
    for _ in range(steps):
        torch.manual_seed(1)
        out = head(emb, labels)
        out.loss.backward()
    return head, emb, out


def test_sharded_partial_fc_matches_one_process(tmp_path):
    """Every head, its centres split over 2 gloo ranks, gives the one-process loss and gradients.

    (The all-gather's backward multiplies by the world size to cancel DDP's averaging of backbone
    gradients, so a rank's embedding gradient is world_size times its share of the one-process one.)
    Run in float64 so that the comparison can be tight: a float32 run differs only by summation order."""
    names = HEAD_NAMES
    ranks = run_on_ranks(_sharded_steps, (names, {}, 1), world_size=2, out_dir=tmp_path)
    for name in names:
        head, emb, out = _one_process(name, {}, 1)
        for r, res in enumerate(ranks):
            got = res[name]
            torch.testing.assert_close(got["loss"], out.loss.detach(), rtol=1e-9, atol=1e-9,
                                       msg=lambda m, name=name: f"{name}: sharded loss differs: {m}")
            torch.testing.assert_close(got["emb_grad"] / 2, emb.grad[r * 4:r * 4 + 4], rtol=1e-7, atol=1e-9,
                                       msg=lambda m, name=name: f"{name}: sharded embedding gradient differs: {m}")
            n = got["w_grad"].shape[0]
            torch.testing.assert_close(got["w_grad"], head.classifier.weight.grad[got["start"]:got["start"] + n],
                                       rtol=1e-7, atol=1e-9,
                                       msg=lambda m, name=name: f"{name}: sharded centre gradient differs: {m}")
            for k, v in head.rule.state_dict().items():
                torch.testing.assert_close(got["buffers"][k], v, msg=lambda m, name=name, k=k: f"{name}: buffer {k} differs: {m}")


SHARD_HEADS = ("sphereface", "sphereface_r", "combined", "curricularface", "recurricularface", "mv_am", "mv_arc",
               "adasin")
SHARD_OVERRIDES = {"combined": {"interclass_filtering_threshold": 0.2}}


@pytest.mark.slow
def test_sharded_float64_two_steps_match_one_process(tmp_path):
    """Tighter than the registry-wide test above: float64, two steps (so the EMA/counter state is used
    after an update), statistics included; the two ranks must agree with one process to 1e-10."""
    ranks = run_on_ranks(_sharded_steps, (SHARD_HEADS, SHARD_OVERRIDES, 2), world_size=2, out_dir=tmp_path)
    tol = dict(rtol=1e-10, atol=1e-10)
    for name in SHARD_HEADS:
        head, emb, out = _one_process(name, SHARD_OVERRIDES, 2)
        for r, got in enumerate(ranks):
            got = got[name]
            n = got["w_grad"].shape[0]
            torch.testing.assert_close(got["loss"], out.loss.detach(), **tol)
            torch.testing.assert_close(got["emb_grad"] / 2, emb.grad[r * 4:r * 4 + 4], **tol)
            torch.testing.assert_close(got["w_grad"], head.classifier.weight.grad[got["start"]:got["start"] + n],
                                       **tol)
            for k, v in head.rule.state_dict().items():
                torch.testing.assert_close(got["buffers"][k], v, **tol)
            assert got["stats"] == pytest.approx(out.stats, rel=1e-9, abs=1e-12), name
