"""The combined margin (fr/heads/combined.py): oracle, interclass filtering, and its identities with ArcFace and
CosFace."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule
from oracles import DTYPES, check_rule, make_ctx, oracle_combined, random_case, rich_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margins", [(1.0, 0.3, 0.2), (1.0, 0.5, 0.0), (0.9, 0.4, 0.15), (1.35, 0.0, 0.0)])
def test_combined_oracle(dtype, margins):
    rule = create_rule("combined", m1=margins[0], m2=margins[1], m3=margins[2])
    case = rich_case(seed=3)
    check_rule(rule, oracle_combined(64.0, *margins), *case, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_combined_interclass_filtering_oracle(dtype):
    rule = create_rule("combined", interclass_filtering_threshold=0.4)
    cos, labels, norms = random_case(seed=5, lo=-0.9, hi=0.95)
    cos[0, (labels[0] + 1) % 7], cos[1, (labels[1] + 1) % 7] = 0.41, 0.39  # either side of tau
    cos[2, labels[2]] = 0.9  # a target above tau is kept
    got, _ = check_rule(rule, oracle_combined(64.0, 1.0, 0.3, 0.2, tau=0.4), cos, labels, norms, dtype=dtype)
    filtered = (cos > 0.4) & ~torch.nn.functional.one_hot(labels, cos.shape[1]).bool()
    assert filtered.any() and bool((got[1][filtered] == 0).all()), "filtered classes must get no gradient"
    out = rule(cos.to(dtype), make_ctx(labels), norms.to(dtype))
    assert out.stats["filtered_frac"] == pytest.approx(filtered.sum().item() / (cos.numel() - cos.shape[0]))


def test_combined_identities_with_arcface_and_cosface():
    cos, labels, norms = random_case(seed=8, lo=-0.85, hi=0.99)  # theta_y <= pi - m: no th/mm region
    ctx = make_ctx(labels)

    def loss_grad(rule, c):
        c = c.clone().requires_grad_(True)
        loss = rule(c, ctx, norms).loss
        return (loss, *torch.autograd.grad(loss, c))

    for a, b in [(create_rule("combined", m1=1.0, m2=0.5, m3=0.0), create_rule("arcface", m=0.5)),
                 (create_rule("combined", m1=1.0, m2=0.0, m3=0.35), create_rule("cosface", m=0.35))]:
        for x, y in zip(loss_grad(a, cos), loss_grad(b, cos), strict=True):
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)
    # beyond theta_y = pi - m the MXNet formula has no th/mm fallback: it departs from ArcFace
    cos_far = cos.clone()
    cos_far[0, labels[0]] = -0.95
    l_comb = create_rule("combined", m1=1.0, m2=0.5, m3=0.0)(cos_far, ctx, norms).loss
    l_arc = create_rule("arcface", m=0.5)(cos_far, ctx, norms).loss
    assert not torch.isclose(l_comb, l_arc)
