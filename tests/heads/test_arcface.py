"""ArcFace (fr/heads/arcface.py): the exact gradient with its th/mm and easy-margin branches against the oracle,
the detached gradient, and the m = 0 identities."""
from __future__ import annotations

import pytest
import torch

from fr.heads import create_rule
from oracles import DTYPES, check_rule, make_ctx, oracle_arcface, random_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("easy", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arcface_exact_oracle(dtype, easy, seed):
    # cosines spanning the th/mm fallback region (c_y < cos(pi - m) = -0.878)
    cos, labels, norms = random_case(seed=seed, lo=-0.999, hi=0.999)
    check_rule(create_rule("arcface", easy_margin=easy), oracle_arcface(64.0, 0.5, easy), cos, labels, norms,
               dtype=dtype)


def test_arcface_detached_forward_equals_exact_but_gradient_is_cosface():
    cos, labels, norms = random_case(seed=3, lo=-0.8, hi=0.8)  # away from the th/mm region
    exact, det = create_rule("arcface"), create_rule("arcface", grad_mode="detached")
    c1 = cos.clone().requires_grad_(True)
    c2 = cos.clone().requires_grad_(True)
    l_det = det(c2, make_ctx(labels), norms).loss
    torch.testing.assert_close(exact(c1, make_ctx(labels), norms).loss, l_det)
    # the detached gradient is that of the softmax evaluated at the margin logits
    g_det, = torch.autograd.grad(l_det, c2)
    logits = det(cos, make_ctx(labels), norms).logits
    p = torch.softmax(logits, 1)
    onehot = torch.nn.functional.one_hot(labels, cos.shape[1]).double()
    torch.testing.assert_close(g_det, 64.0 * (p - onehot) / cos.shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_margins_zero_equal_softmax(dtype):
    cos, labels, norms = random_case(seed=4)
    ctx = make_ctx(labels)
    ref = create_rule("softmax")(cos.to(dtype), ctx, norms).loss
    for rule in (create_rule("cosface", m=0.0), create_rule("arcface", m=0.0),
                 create_rule("arcface", m=0.0, grad_mode="detached")):
        torch.testing.assert_close(rule(cos.to(dtype), ctx, norms).loss, ref)
