"""The cosine-distance harmonic loss (fr/heads/harmonic.py)."""
from __future__ import annotations

import math

import pytest
import torch

from fr.heads import create_rule
from oracles import DTYPES, check_rule, make_ctx, oracle_harmonic, random_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1.0, 3.5])
def test_harmonic_oracle(dtype, n):
    cos, labels, norms = random_case(seed=16, lo=-0.99, hi=0.99)
    check_rule(create_rule("harmonic", n=n), oracle_harmonic(n, 1e-4), cos, labels, norms, dtype=dtype)


@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e3])
def test_harmonic_is_scale_invariant(scale):
    """Scaling every distance by one constant (the repository's d / min d, for instance) leaves the loss."""
    cos, labels, norms = random_case(seed=17)
    check_rule(create_rule("harmonic"), oracle_harmonic(1.0, 1e-4, scale), cos, labels, norms)


def test_harmonic_at_unit_cosine_and_predictions():
    cos = torch.tensor([[1.0, 0.2, -1.0], [0.3, 0.9, 0.95]], dtype=torch.float64, requires_grad=True)
    rule = create_rule("harmonic", n=2.0)
    logits = rule(cos, make_ctx(torch.tensor([0, 1])), torch.ones(2)).logits
    torch.testing.assert_close(logits[0, 0], torch.tensor(-2.0 * math.log(1e-4), dtype=torch.float64))
    grad, = torch.autograd.grad(logits[0, 0], cos)
    assert float(grad[0, 0]) == pytest.approx(2.0 / 1e-4)  # n / (1 - c + eps) at c = 1
    assert logits.argmax(1).tolist() == cos.argmax(1).tolist()  # HarMax predicts the nearest centre
    with pytest.raises(ValueError, match="n must be > 0"):
        create_rule("harmonic", n=0.0)
    with pytest.raises(ValueError, match="eps"):
        create_rule("harmonic", eps=0.0)
