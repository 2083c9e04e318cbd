"""Oracles, identities and state checks for SphereFace (+ SphereFace-R), CombinedMargin, CurricularFace,
ReCurricularFace, MV-Softmax (AM, Arc) and AdaSin (reconstructed).

Every oracle is a naive per-sample float64 function written from the paper's equation (or, where the
rule follows the official code, from that code's formula), compared with the vectorised rule by
``oracle_utils.check_rule`` on the loss and on the gradients with respect to the cosines and the norms.
Stateful rules: the buffer is set explicitly; in training mode the oracle applies the update first.
"""
from __future__ import annotations

import math

import pytest
import torch

import fr
from fr.heads import create_rule, head_info
from fr.heads.sphereface import a_softmax_psi
from fr.heads.curricularface import recurricular_coefficients
from oracle_utils import check_rule, make_ctx, random_case, softmax_ce

DTYPES = [torch.float64, torch.float32]


def with_ignored_row(case, row=2):
    cos, labels, norms = case
    labels = labels.clone()
    labels[row] = -1
    return cos, labels, norms


def rich_case(seed: int, ignore_row: int | None = 2):
    """A random batch (cosines in (-0.99, 0.99)) plus targets placed on every regime boundary: the th/mm
    region (c_y < cos(pi - 0.5) = -0.878), around the easy-margin switch at 0, and near +1; one row ignored."""
    cos, labels, norms = random_case(batch=12, classes=9, seed=seed, lo=-0.99, hi=0.99)
    rows = torch.arange(6)
    cos[rows, labels[rows]] = torch.tensor([-0.95, -0.5, -0.02, 0.02, 0.41, 0.97], dtype=cos.dtype)
    cos[0, (labels[0] + 1) % 9] = -0.99  # below cos(theta_y + m) without th/mm (-0.983), above c_y - m sin m
    cos[0, (labels[0] + 2) % 9] = -0.97  # above both
    if ignore_row is not None:
        labels = labels.clone()
        labels[ignore_row + 6] = -1
    return cos, labels, norms


def val(x) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def ce_row(logits: list, y: int) -> torch.Tensor:
    return softmax_ce(torch.stack(logits), y)


def arc_with_fallback(cy: torch.Tensor, m: float) -> torch.Tensor:
    """cos(theta + m), or c - m sin m beyond theta = pi - m (insightface's th/mm), from the definitions."""
    if val(cy) > math.cos(math.pi - m):
        return torch.cos(torch.acos(cy) + m)
    return cy - m * math.sin(m)


# --- SphereFace (A-Softmax, official Caffe semantics) ----------------------------------------------

def caffe_lambda(iteration: int) -> float:
    return max(5.0, 1000.0 * (1.0 + 0.12 * iteration) ** -1.0)


def oracle_sphereface(lam: float, m: int = 4, s: float | None = None):
    def psi(cy):
        theta = math.acos(val(cy))
        k = min(math.floor(m * theta / math.pi), m - 1)
        return (-1) ** k * torch.cos(m * torch.acos(cy)) - 2 * k

    def f(c, y, a):
        scale = a if s is None else s
        return ce_row([scale * (lam * c[j] + psi(c[j])) / (1 + lam) if j == y else scale * c[j]
                       for j in range(c.shape[0])], y)
    return f


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


# --- SphereFace-R (opensphere) ------------------------------------------------------------------------

def oracle_sphereface_r(s: float, m: float, detached: bool):
    def psi(cy):
        u = m * torch.acos(cy)
        k = math.floor(val(u) / math.pi)
        return (-1) ** k * torch.cos(u) - 2 * k

    def f(c, y, a):
        def target(cy):
            return cy + (psi(cy) - cy).detach() if detached else psi(cy)
        return ce_row([s * target(c[j]) if j == y else s * c[j] for j in range(c.shape[0])], y)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad_mode", ["detached", "exact"])
@pytest.mark.parametrize("m", [1.5, 1.7])
def test_sphereface_r_oracle(dtype, grad_mode, m):
    rule = create_rule("sphereface_r", m=m, grad_mode=grad_mode)
    case = rich_case(seed=11)
    check_rule(rule, oracle_sphereface_r(30.0, m, grad_mode == "detached"), *case, dtype=dtype)


# --- CombinedMargin -------------------------------------------------------------------------------------

def oracle_combined(s, m1, m2, m3, tau=0.0):
    def f(c, y, a):
        logits = []
        for j in range(c.shape[0]):
            if j == y:
                logits.append(s * (torch.cos(m1 * torch.acos(c[j]) + m2) - m3))
            elif tau > 0 and val(c[j]) > tau:
                logits.append(0.0 * c[j])
            else:
                logits.append(s * c[j])
        return ce_row(logits, y)
    return f


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
        for x, y in zip(loss_grad(a, cos), loss_grad(b, cos)):
            torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)
    # beyond theta_y = pi - m the MXNet formula has no th/mm fallback: it departs from ArcFace
    cos_far = cos.clone()
    cos_far[0, labels[0]] = -0.95
    l_comb = create_rule("combined", m1=1.0, m2=0.5, m3=0.0)(cos_far, ctx, norms).loss
    l_arc = create_rule("arcface", m=0.5)(cos_far, ctx, norms).loss
    assert not torch.isclose(l_comb, l_arc)


# --- CurricularFace and ReCurricularFace ----------------------------------------------------------

def oracle_curricular(t: float, s=64.0, m=0.5, coef=None, fixed_threshold=None):
    coef = coef or (lambda cj: t + cj)

    def f(c, y, a):
        threshold = fixed_threshold if fixed_threshold is not None else math.cos(math.acos(val(c[y])) + m)
        logits = []
        for j in range(c.shape[0]):
            if j == y:
                logits.append(s * arc_with_fallback(c[y], m))
            elif val(c[j]) > threshold:
                logits.append(s * c[j] * coef(c[j]))
            else:
                logits.append(s * c[j])
        return ce_row(logits, y)
    return f


def ema_t(t0: float, cos, labels, weight=0.01) -> float:
    valid = labels >= 0
    c_y = cos[valid].gather(1, labels[valid][:, None]).squeeze(1)
    return (1 - weight) * t0 + weight * float(c_y.mean())


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


def test_recurricular_coefficient_is_paper_values():
    rule = create_rule("recurricularface")
    assert (rule.a, rule.b) == (1.1, 0.4)
    c = torch.linspace(-1, 1, 11, dtype=torch.float64)
    for t in (0.0, 0.3, 1.0):
        torch.testing.assert_close(rule.negative_logit(c, torch.tensor(t, dtype=torch.float64)),
                                   c * (1.1 * c + 0.4 * t))


def test_recurricular_equation_mode_numbers():
    # heads.md 4.2: E = 80 deg -> 1/cos((E-m)/2) = 1.1096, Eq. 5 alpha = 0.5232; E = 55.71 deg -> 1.0286, 0.5623
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


def test_recurricular_figure1_boundaries_match_the_reference():
    """heads.md 4.2 crossings: CurricularFace shrinks below ArcFace's 30.68 deg, ReCurricularFace converges to it."""
    cur, rec = create_rule("curricularface"), create_rule("recurricularface")
    ts = (0.0, 0.3, 0.5, 0.8, 1.0)
    want_cur, want_rec = (38.53, 33.42, 30.54, 26.88, 24.80), (37.41, 35.37, 34.10, 32.31, 31.20)
    for t, wc, wr in zip(ts, want_cur, want_rec):
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


# --- MV-Softmax -------------------------------------------------------------------------------------------

def oracle_mv(kind: str, s=32.0, m=0.35, t=0.2, easy_margin=True, mode="adaptive"):
    """The paper's form: softmax with weights h(t, theta_k, I_k) on the negatives' exponentials."""
    def f(c, y, a):
        cy = c[y]
        fm = cy - m if kind == "am" else torch.cos(torch.acos(cy) + m)
        target = fm if (not easy_margin or val(cy) > 0) else cy
        terms = [s * target]
        for k in range(c.shape[0]):
            if k == y:
                continue
            hard = val(fm) - val(c[k]) < 0
            log_h = (s * t * (c[k] + 1) if mode == "adaptive" else s * t) if hard else 0.0
            terms.append(s * c[k] + log_h)
        return ce_row(terms, 0)
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["am", "arc"])
@pytest.mark.parametrize("easy_margin", [True, False])
@pytest.mark.parametrize("mode", ["adaptive", "fixed"])
def test_mv_softmax_oracle(dtype, kind, easy_margin, mode):
    rule = create_rule(f"mv_{kind}", easy_margin=easy_margin, mode=mode)
    case = rich_case(seed=31)
    check_rule(rule, oracle_mv(kind, easy_margin=easy_margin, mode=mode), *case, dtype=dtype)


def test_mv_softmax_defaults_and_hard_fraction():
    for name in ("mv_am", "mv_arc"):
        info = head_info(name)
        assert {k: info["defaults"][k] for k in ("s", "m", "t", "easy_margin", "mode")} == dict(
            s=32.0, m=0.35, t=0.2, easy_margin=True, mode="adaptive")
    cos = torch.tensor([[0.8, 0.7, 0.1, -0.2]], dtype=torch.float64)  # c_y - m = 0.45: one hard negative of 3
    out = create_rule("mv_am")(cos, make_ctx(torch.tensor([0])), torch.ones(1, dtype=torch.float64))
    assert out.stats["hard_neg_frac"] == pytest.approx(1 / 3)
    torch.testing.assert_close(out.logits, 32.0 * torch.tensor([[0.45, 1.2 * 0.7 + 0.2, 0.1, -0.2]],
                                                                dtype=torch.float64))


# --- AdaSin (reconstruction) -------------------------------------------------------------------------

def oracle_adasin(t: float, s=64.0, m=0.5, h=0.2, difficulty="half_angle", pos_mode="scale"):
    def f(c, y, a):
        theta_y = math.acos(val(c[y]))
        d = math.sin(theta_y / 2) if difficulty == "half_angle" else math.sin(theta_y)
        phi = t + h * d
        threshold = math.cos(theta_y + m)
        hard = [j != y and val(c[j]) > threshold for j in range(c.shape[0])]
        extra = max(phi, 0.0)
        m_i = m
        if any(hard) and pos_mode == "scale":
            m_i = m * (1 + extra)
        elif any(hard) and pos_mode == "add":
            m_i = m + extra
        logits = [s * arc_with_fallback(c[j], m_i) if j == y else
                  (s * c[j] * (phi + c[j]) if hard[j] else s * c[j]) for j in range(c.shape[0])]
        return ce_row(logits, y)
    return f


def test_adasin_is_registered_as_a_reconstruction():
    info = head_info("adasin")
    assert info["reconstructed"] and info["summary"].startswith("Reconstruction:")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_mode", ["none", "scale", "add"])
@pytest.mark.parametrize("difficulty", ["half_angle", "sine"])
def test_adasin_oracle_eval(dtype, pos_mode, difficulty):
    t = 0.3125
    rule = create_rule("adasin", pos_mode=pos_mode, difficulty=difficulty).to(dtype).eval()
    rule.t.fill_(t)
    case = rich_case(seed=41)
    check_rule(rule, oracle_adasin(t, difficulty=difficulty, pos_mode=pos_mode), *case, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t0", [0.6, -0.2])
def test_adasin_oracle_training(dtype, t0):
    case = rich_case(seed=42)
    t_new = ema_t(t0, case[0], case[1])
    rule = create_rule("adasin", h=0.3).to(dtype).train()
    rule.t.fill_(t0)
    check_rule(rule, oracle_adasin(t_new, h=0.3), *case, dtype=dtype)


def test_adasin_with_h0_and_pos_mode_none_is_curricularface():
    cos, labels, norms = rich_case(seed=43)
    ada, cur = create_rule("adasin", h=0.0, pos_mode="none").eval(), create_rule("curricularface").eval()
    ada.t.fill_(0.4), cur.t.fill_(0.4)
    torch.testing.assert_close(ada(cos, make_ctx(labels), norms).loss, cur(cos, make_ctx(labels), norms).loss,
                               rtol=1e-12, atol=1e-12)


def test_adasin_stats():
    cos, labels, norms = random_case(seed=44, lo=-0.99, hi=0.99)
    out = create_rule("adasin").eval()(cos, make_ctx(labels), norms)
    for key in ("t", "hard_neg_frac", "hard_sample_frac", "mean_difficulty", "mean_phi", "mean_margin"):
        assert key in out.stats
    c_y = cos.gather(1, labels[:, None]).squeeze(1)
    assert out.stats["mean_difficulty"] == pytest.approx(float(torch.sqrt((1 - c_y) / 2).mean()))
    assert out.stats["mean_margin"] >= 0.5


@pytest.mark.parametrize("name, kwargs, match", [
    ("recurricularface", dict(coef_mode="eq6"), "coef_mode"),
    ("recurricularface", dict(mask_mode="loose"), "mask_mode"),
    ("recurricularface", dict(E=200.0), "degrees"),
    ("adasin", dict(difficulty="cosine"), "difficulty"),
    ("adasin", dict(pos_mode="mul"), "pos_mode"),
    ("mv_am", dict(mode="soft"), "mode"),
    ("sphereface_r", dict(grad_mode="sloppy"), "grad_mode"),
    ("combined", dict(interclass_filtering_threshold=1.5), "interclass_filtering_threshold"),
    ("curricularface", dict(ema_weight=2.0), "ema_weight"),
])
def test_bad_options_fail_naming_the_parameter(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_rule(name, **kwargs)


# --- sharded Partial FC in float64, two training steps (state included) ------------------------------------

SHARD_HEADS = ("sphereface", "sphereface_r", "combined", "curricularface", "recurricularface", "mv_am", "mv_arc",
               "adasin")


def _shard_setup(name):
    torch.manual_seed(0)
    full_w = torch.randn(13, 16, dtype=torch.float64) * 0.01
    kw = {"interclass_filtering_threshold": 0.2} if name == "combined" else {}
    head = fr.create_head(name, num_classes=13, embedding_size=16, **kw).double().train()
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(8, 16, generator=g, dtype=torch.float64) * 10
    labels = torch.randint(0, 13, (8,), generator=g)
    labels[3] = -1
    return head, full_w, emb, labels


def _shard_worker64(rank, world, port, out_dir):
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        for name in SHARD_HEADS:
            head, full_w, emb, labels = _shard_setup(name)
            c = head.classifier
            with torch.no_grad():
                c.weight.copy_(full_w[c.class_start:c.class_start + c.num_local])
            local = emb[rank * 4:rank * 4 + 4].clone().requires_grad_(True)
            for _ in range(2):
                out = head(local, labels[rank * 4:rank * 4 + 4])
                out.loss.backward()
            results[name] = dict(loss=out.loss.detach(), emb_grad=local.grad.clone(), w_grad=c.weight.grad.clone(),
                                 start=c.class_start, stats=out.stats,
                                 buffers={k: v.clone() for k, v in head.rule.state_dict().items()})
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_sharded_float64_two_steps_match_one_process(tmp_path):
    """Tighter than the registry-wide contract test: float64, two steps (so the EMA/counter state is used
    after an update), statistics included; the two ranks must agree with one process to 1e-10."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_shard_worker64, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    tol = dict(rtol=1e-10, atol=1e-10)
    for name in SHARD_HEADS:
        head, full_w, emb, labels = _shard_setup(name)
        with torch.no_grad():
            head.classifier.weight.copy_(full_w)
        emb.requires_grad_(True)
        for _ in range(2):
            out = head(emb, labels)
            out.loss.backward()
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
