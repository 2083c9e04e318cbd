"""SphereFace (A-Softmax, official Caffe semantics) and SphereFace-R (opensphere), fr/heads/sphereface.py."""
from __future__ import annotations

import math

import pytest
import torch

from fr.heads import create_rule
from fr.heads.sphereface import a_softmax_psi
from oracles import (DTYPES, caffe_lambda, check_rule, make_ctx, oracle_sphereface, oracle_sphereface_r,
                     random_case, rich_case)


def test_a_softmax_psi_values_and_end_slopes():
    theta = torch.tensor([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi], dtype=torch.float64)
    c = torch.cos(theta).requires_grad_(True)
    psi = a_softmax_psi(c, 4)
    torch.testing.assert_close(psi.detach(), torch.tensor([1.0, -1.0, -3.0, -5.0, -7.0], dtype=torch.float64))
    grid = torch.cos(torch.linspace(0, math.pi, 2001, dtype=torch.float64))
    assert bool((a_softmax_psi(grid, 4).diff() < 0).all()), "psi must decrease monotonically in theta"
    # d psi/dc at c = +1 (k = 0 branch, T4'(1) = 16) and at c = -1 (k = 3 branch: -T4'(-1) = 16), both finite
    grad, = torch.autograd.grad(psi.sum(), c)
    assert grad[0].item() == pytest.approx(16.0) and grad[-1].item() == pytest.approx(16.0)


def test_sphereface_lambda_schedule_check_values():
    rule = create_rule("sphereface")
    assert float(rule.lambda_at(0)) == 1000.0
    assert float(rule.lambda_at(1)) == pytest.approx(1000 / 1.12)
    assert float(rule.lambda_at(1658)) == pytest.approx(5.0010, abs=1e-4) and float(rule.lambda_at(1658)) > 5.0
    assert float(rule.lambda_at(1659)) == 5.0 and float(rule.lambda_at(10**6)) == 5.0
    its = torch.arange(0, 3000)
    first = int(its[rule.lambda_at(its) <= 5.0][0])
    assert first == 1659  # 1000 / (1 + 0.12 i) = 5 at i = 1658.3


def test_sphereface_counter_advances_before_use_and_only_in_training():
    rule = create_rule("sphereface")
    cos, labels, norms = random_case(seed=0)
    rule.train()
    for step in (1, 2, 3):
        out = rule(cos, make_ctx(labels), norms)
        assert int(rule.iteration) == step and out.stats["lam"] == pytest.approx(caffe_lambda(step))
    rule.eval()
    out = rule(cos, make_ctx(labels), norms)
    assert int(rule.iteration) == 3 and out.stats["lam"] == pytest.approx(caffe_lambda(3))
    fresh = create_rule("sphereface")
    fresh.load_state_dict(rule.state_dict())
    assert int(fresh.iteration) == 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iteration", [0, 40, 5000])
def test_sphereface_oracle_eval(dtype, iteration):
    rule = create_rule("sphereface").to(dtype).eval()
    rule.iteration.fill_(iteration)
    case = rich_case(seed=iteration)
    check_rule(rule, oracle_sphereface(caffe_lambda(iteration)), *case, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sphereface_oracle_training_uses_the_advanced_counter(dtype):
    rule = create_rule("sphereface").to(dtype).train()
    rule.iteration.fill_(10)
    check_rule(rule, oracle_sphereface(caffe_lambda(11)), *rich_case(seed=7), dtype=dtype)
    assert int(rule.iteration) == 11


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [2, 3])
def test_sphereface_fixed_scale_and_other_margins(dtype, m):
    rule = create_rule("sphereface", m=m, s=30.0).to(dtype).eval()
    rule.iteration.fill_(3000)
    (_, _, grad_norms), _ = check_rule(rule, oracle_sphereface(5.0, m=m, s=30.0),
                                       *rich_case(seed=m), dtype=dtype)
    assert bool((grad_norms == 0).all()), "with a fixed scale the loss must not depend on the norms"


def test_sphereface_rejects_non_integer_margin():
    with pytest.raises(ValueError, match="positive integer"):
        create_rule("sphereface", m=1.5)


# --- SphereFace-R -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", ["detached", "exact"])
@pytest.mark.parametrize("m", [1.5, 1.7])
def test_sphereface_r_oracle(dtype, grad_mode, m):
    rule = create_rule("sphereface_r", m=m, grad_mode=grad_mode)
    case = rich_case(seed=11)
    check_rule(rule, oracle_sphereface_r(30.0, m, grad_mode == "detached"), *case, dtype=dtype)
