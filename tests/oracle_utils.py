"""Shared machinery for the head oracle tests.

An *oracle* is a naive per-sample float64 implementation written straight from a paper's equation:
``oracle(cos_row, y, norm) -> scalar loss`` using torch scalar operations (so autograd gives its
gradient), looping over rows in Python. :func:`check_rule` compares a vectorised rule with it on the
loss and on the gradients with respect to the cosines and the norms, in float32 and float64.
"""
from __future__ import annotations

import torch

from fr.heads.base import MarginRule, ShardContext


def random_case(batch: int = 6, classes: int = 7, seed: int = 0, lo: float = -0.95, hi: float = 0.95,
                norm_range: tuple[float, float] = (5.0, 40.0)):
    g = torch.Generator().manual_seed(seed)
    cos = lo + (hi - lo) * torch.rand(batch, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch,), generator=g)
    norms = norm_range[0] + (norm_range[1] - norm_range[0]) * torch.rand(batch, generator=g, dtype=torch.float64)
    return cos, labels, norms


def make_ctx(labels: torch.Tensor) -> ShardContext:
    return ShardContext(labels, labels.clone())


def rule_loss_and_grads(rule: MarginRule, cos, labels, norms, dtype):
    c = cos.detach().to(dtype).requires_grad_(True)
    n = norms.detach().to(dtype).requires_grad_(True)
    out = rule(c, make_ctx(labels), n)
    gc, gn = torch.autograd.grad(out.loss, (c, n), allow_unused=True)
    gn = torch.zeros_like(n) if gn is None else gn
    return out.loss.detach().double(), gc.double(), gn.double()


def oracle_loss_and_grads(oracle, cos, labels, norms):
    c = cos.detach().double().requires_grad_(True)
    n = norms.detach().double().requires_grad_(True)
    rows = [oracle(c[i], int(labels[i]), n[i]) for i in range(c.shape[0]) if int(labels[i]) >= 0]
    loss = torch.stack(rows).mean()
    gc, gn = torch.autograd.grad(loss, (c, n), allow_unused=True)
    gn = torch.zeros_like(n) if gn is None else gn
    return loss.detach(), gc, gn


TOL = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=2e-4, atol=2e-4)}


def check_rule(rule: MarginRule, oracle, cos, labels, norms, dtype=torch.float64, tol=None):
    """Assert the rule matches the oracle on loss and gradients. Returns both for further checks."""
    tol = tol or TOL[dtype]
    got = rule_loss_and_grads(rule, cos, labels, norms, dtype)
    want = oracle_loss_and_grads(oracle, cos, labels, norms)
    for name, a, b in zip(("loss", "dL/dcos", "dL/dnorm"), got, want):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{type(rule).__name__} {name}: {m}", **tol)
    return got, want


def softmax_ce(logits_row: torch.Tensor, y: int) -> torch.Tensor:
    """-log softmax(logits)[y] for one row, computed naively in float64 (max-subtracted)."""
    mx = logits_row.max().detach()
    z = sum(torch.exp(logits_row[j] - mx) for j in range(logits_row.shape[0]))
    return -(logits_row[y] - mx - torch.log(z))
