"""CurricularFace and ReCurricularFace (fr/heads/curricularface.py): oracles with the curriculum parameter t
set or updated, the EMA of t, and ReCurricularFace's coefficients and Fig. 1 boundaries."""
from __future__ import annotations

import math

import pytest
import torch

from fr.heads import create_rule
from fr.heads.curricularface import recurricular_coefficients
from oracles import (DTYPES, check_rule, ema_t, make_ctx, oracle_curricular, random_case, rich_case,
                     with_ignored_row)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", [0.0, 0.375, -0.25])
def test_curricularface_oracle_eval(dtype, t):
    rule = create_rule("curricularface").to(dtype).eval()
    rule.t.fill_(t)
    case = rich_case(seed=21)
    check_rule(rule, oracle_curricular(t), *case, dtype=dtype)
    assert float(rule.t) == t


@pytest.mark.parametrize("dtype", DTYPES)
def test_curricularface_oracle_training_updates_t_before_use(dtype):
    case = rich_case(seed=22)
    t_new = ema_t(0.3, case[0], case[1])
    rule = create_rule("curricularface").to(dtype).train()
    rule.t.fill_(0.3)
    check_rule(rule, oracle_curricular(t_new), *case, dtype=dtype)
    assert float(rule.t) == pytest.approx(t_new, rel=1e-6)


def test_curricularface_with_t0_and_no_hard_negative_is_arcface():
    g = torch.Generator().manual_seed(4)
    cos = -0.9 + 0.4 * torch.rand(6, 7, generator=g, dtype=torch.float64)  # negatives in (-0.9, -0.5)
    labels = torch.randint(0, 7, (6,), generator=g)
    cos[torch.arange(6), labels] = 0.6 + 0.39 * torch.rand(6, generator=g, dtype=torch.float64)
    norms = torch.full((6,), 30.0, dtype=torch.float64)
    ctx = make_ctx(labels)
    cur = create_rule("curricularface").eval()
    out = cur(cos, ctx, norms)
    assert out.stats["hard_neg_frac"] == 0.0
    torch.testing.assert_close(out.loss, create_rule("arcface")(cos, ctx, norms).loss, rtol=1e-12, atol=1e-12)
    # a hard negative (c_j > cos(theta_y + m)) breaks the identity, even with t = 0: N = c_j^2
    cos[0, (labels[0] + 1) % 7] = 0.9
    assert not torch.isclose(cur(cos, ctx, norms).loss, create_rule("arcface")(cos, ctx, norms).loss)


@pytest.mark.parametrize("name", ["curricularface", "recurricularface", "adasin"])
def test_curriculum_state_updates_only_in_training_and_round_trips(name):
    cos, labels, norms = with_ignored_row(random_case(seed=30))
    rule = create_rule(name)
    rule.eval()
    rule(cos, make_ctx(labels), norms)
    assert float(rule.t) == 0.0
    rule.train()
    t = 0.0
    for _ in range(3):
        out = rule(cos, make_ctx(labels), norms)
        t = ema_t(t, cos, labels)
        assert float(rule.t) == pytest.approx(t, rel=1e-6) and out.stats["t"] == pytest.approx(t, rel=1e-6)
    state = rule.state_dict()
    assert set(state) == {"t"}
    fresh = create_rule(name)
    fresh.load_state_dict(state)
    assert float(fresh.t) == float(rule.t)
    # no valid row: t unchanged
    rule(cos, make_ctx(torch.full_like(labels, -1)), norms)
    assert float(rule.t) == pytest.approx(t, rel=1e-6)


# --- ReCurricularFace ---------------------------------------------------------------------------------------

def test_recurricular_coefficient_is_paper_values():
    rule = create_rule("recurricularface")
    assert (rule.a, rule.b) == (1.1, 0.4)
    c = torch.linspace(-1, 1, 11, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        torch.testing.assert_close(rule.negative_logit(c, torch.tensor(t, dtype=torch.float64)),
                                   c * (1.1 * c + 0.4 * t))


def test_recurricular_equation_mode_numbers():
    # Eq. 5-6: E = 80 deg -> a = 1/cos((E-m)/2) = 1.1096, b = 0.5232; E = 55.71 deg (Eq. 2 for CASIA) -> 1.0286, 0.5623
    a, b = recurricular_coefficients(80.0, 0.5)
    assert a == pytest.approx(1.1096, abs=1e-4) and b == pytest.approx(0.5232, abs=1e-4)
    a, b = recurricular_coefficients(55.71, 0.5)
    assert a == pytest.approx(1.0286, abs=1e-4) and b == pytest.approx(0.5623, abs=1e-4)
    rule = create_rule("recurricularface", coef_mode="equation")
    assert (rule.a, rule.b) == recurricular_coefficients(80.0, 0.5)
    assert create_rule("recurricularface", mask_mode="fixed").fixed_threshold == pytest.approx(
        math.cos((math.radians(80.0) - 0.5) / 2))


def _boundary_deg(negative, t: float, m: float = 0.5) -> float:
    """Fig. 1 geometry (target and one centre 90 deg apart): theta_y where cos(theta_y + m) = N(t, sin theta_y)."""
    lo, hi = 0.0, math.pi / 2
    f = lambda th: math.cos(th + m) - float(negative(torch.tensor(math.sin(th), dtype=torch.float64),
                                                     torch.tensor(t, dtype=torch.float64)))
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return math.degrees(lo)


def test_recurricular_figure1_boundaries_converge_to_arcface():
    """Fig. 1 crossings for t = 0 ... 1: CurricularFace's boundary shrinks below ArcFace's 30.68 deg,
    ReCurricularFace's converges to it."""
    cur, rec = create_rule("curricularface"), create_rule("recurricularface")
    ts = (0.0, 0.3, 0.5, 0.8, 1.0)
    want_cur, want_rec = (38.53, 33.42, 30.54, 26.88, 24.80), (37.41, 35.37, 34.10, 32.31, 31.20)
    for t, wc, wr in zip(ts, want_cur, want_rec, strict=True):
        assert _boundary_deg(cur.negative_logit, t) == pytest.approx(wc, abs=0.01)
        assert _boundary_deg(rec.negative_logit, t) == pytest.approx(wr, abs=0.01)
    ideal = math.degrees((math.pi / 2 - 0.5) / 2)
    assert ideal == pytest.approx(30.68, abs=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("coef_mode", ["paper_values", "equation"])
@pytest.mark.parametrize("mask_mode", ["curricular", "fixed"])
def test_recurricularface_oracle(dtype, coef_mode, mask_mode):
    t = 0.4375
    a, b = (1.1, 0.4) if coef_mode == "paper_values" else recurricular_coefficients(80.0, 0.5)
    rule = create_rule("recurricularface", coef_mode=coef_mode, mask_mode=mask_mode).to(dtype).eval()
    rule.t.fill_(t)
    fixed = math.cos((math.radians(80.0) - 0.5) / 2) if mask_mode == "fixed" else None
    case = rich_case(seed=23)
    check_rule(rule, oracle_curricular(t, coef=lambda cj: a * cj + b * t, fixed_threshold=fixed), *case,
               dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_recurricularface_oracle_training(dtype):
    case = rich_case(seed=24, ignore_row=None)
    t_new = ema_t(0.5, case[0], case[1])
    rule = create_rule("recurricularface").to(dtype).train()
    rule.t.fill_(0.5)
    check_rule(rule, oracle_curricular(t_new, coef=lambda cj: 1.1 * cj + 0.4 * t_new), *case, dtype=dtype)
