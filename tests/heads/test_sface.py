"""SFace (fr/heads/sface.py): oracle, the angle gradients, the re-scale functions."""
from __future__ import annotations

import pytest
import torch

import fr
from fr.heads import create_rule
from fr.heads.sface import r_inter, r_intra
from oracles import DTYPES, check_rule, make_ctx, oracle_sface, random_case


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("params", [{}, dict(a=0.87, b=1.2), dict(s=32.0, k=20.0, a=1.0, b=1.4)])
def test_sface_oracle(dtype, params):
    p = dict(s=64.0, k=80.0, a=0.8, b=1.23) | params
    # cosines spanning the angles where both sigmoids switch (theta in [0.6, 1.5])
    cos, labels, norms = random_case(batch=8, classes=9, seed=12, lo=0.07, hi=0.83)
    labels[2] = -1
    check_rule(create_rule("sface", **params), oracle_sface(**p), cos, labels, norms, dtype=dtype)
    cos, labels, norms = random_case(batch=8, classes=9, seed=13, lo=-1.0, hi=1.0)
    check_rule(create_rule("sface", **params), oracle_sface(**p), cos, labels, norms, dtype=dtype)


def test_sface_angle_gradients_are_the_rescaled_sines():
    """dL/dtheta_y = r_intra(theta_y) sin theta_y and dL/dtheta_j = -r_inter(theta_j) sin theta_j (per row)."""
    g = torch.Generator().manual_seed(14)
    theta = (0.3 + 1.4 * torch.rand(5, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    labels = torch.tensor([0, 3, 5, 1, 1])
    rule = create_rule("sface")
    loss = rule(torch.cos(theta), make_ctx(labels), torch.ones(5, dtype=torch.float64)).loss
    grad, = torch.autograd.grad(loss * 5, theta)  # undo the mean over rows
    th = theta.detach()
    onehot = torch.nn.functional.one_hot(labels, 6).bool()
    want = torch.where(onehot, r_intra(th, 64.0, 80.0, 0.8) * torch.sin(th),
                       -r_inter(th, 64.0, 80.0, 1.23) * torch.sin(th))
    torch.testing.assert_close(grad, want)


def test_sface_rescale_check_values():
    t = torch.tensor([0.8, 0.75, 0.85], dtype=torch.float64)
    torch.testing.assert_close(r_intra(t, 64.0, 80.0, 0.8), torch.tensor([32.0, 1.1512, 62.8488], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(r_inter(t + 0.43, 64.0, 80.0, 1.23),
                               torch.tensor([32.0, 62.8488, 1.1512], dtype=torch.float64), atol=1e-4, rtol=0)


def test_sface_logits_stats_and_init():
    cos, labels, norms = random_case(seed=15, lo=0.05, hi=0.95)  # positive cosines: the pull term is negative
    out = create_rule("sface")(cos, make_ctx(labels), norms)
    torch.testing.assert_close(out.logits, 64.0 * cos)
    assert float(out.stats["intra"]) + float(out.stats["inter"]) == pytest.approx(float(out.loss))
    assert float(out.stats["intra"]) < 0 and float(out.stats["cos_y"]) == pytest.approx(float(cos.gather(1, labels[:, None]).mean()))
    assert fr.heads.head_info("sface")["default_init"] == "xavier"
    assert fr.heads.head_defaults("sface") == dict(s=64.0, k=80.0, a=0.8, b=1.23)
