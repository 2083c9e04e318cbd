"""Oracles for the head tests, and the machinery that compares a rule with one.

An *oracle* is a naive per-sample float64 implementation written straight from a paper's equation (or, where the
rule follows the official code, from that code's formula): ``oracle(cos_row, y, norm) -> scalar loss`` using
torch scalar operations (so autograd gives its gradient), looping over rows in Python. :func:`check_rule` compares
a vectorised rule with it on the loss and on the gradients with respect to the cosines and the norms, in float32
and float64. Stateful rules: the test sets the buffer explicitly; in training mode the oracle is given the
state after the rule's update (the rules update before use).
"""
from __future__ import annotations

import math

import torch

from fr.heads.base import MarginRule, ShardContext

DTYPES = [torch.float64, torch.float32]
#: AdaFace's stability constant (cosine clamp, angle clip, sigma + eps)
EPS = 1e-3


# --- cases and comparison -----------------------------------------------------------------------------------

def random_case(batch: int = 6, classes: int = 7, seed: int = 0, lo: float = -0.95, hi: float = 0.95,
                norm_range: tuple[float, float] = (5.0, 40.0)):
    g = torch.Generator().manual_seed(seed)
    cos = lo + (hi - lo) * torch.rand(batch, classes, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch,), generator=g)
    norms = norm_range[0] + (norm_range[1] - norm_range[0]) * torch.rand(batch, generator=g, dtype=torch.float64)
    return cos, labels, norms


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
    for name, a, b in zip(("loss", "dL/dcos", "dL/dnorm"), got, want, strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{type(rule).__name__} {name}: {m}", **tol)
    return got, want


def softmax_ce(logits_row: torch.Tensor, y: int) -> torch.Tensor:
    """-log softmax(logits)[y] for one row, computed naively in float64 (max-subtracted)."""
    mx = logits_row.max().detach()
    z = sum(torch.exp(logits_row[j] - mx) for j in range(logits_row.shape[0]))
    return -(logits_row[y] - mx - torch.log(z))


def val(x) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def ce_row(logits: list, y: int) -> torch.Tensor:
    return softmax_ce(torch.stack(logits), y)


def arc_with_fallback(cy: torch.Tensor, m: float) -> torch.Tensor:
    """cos(theta + m), or c - m sin m beyond theta = pi - m (insightface's th/mm), from the definitions."""
    if val(cy) > math.cos(math.pi - m):
        return torch.cos(torch.acos(cy) + m)
    return cy - m * math.sin(m)


# --- softmax, CosFace, ArcFace ------------------------------------------------------------------------------

def oracle_softmax(s):
    def f(c, y, a):
        return softmax_ce(torch.stack([s * c[j] for j in range(c.shape[0])]), y)
    return f


def oracle_cosface(s, m):
    def f(c, y, a):
        return softmax_ce(torch.stack([s * (c[j] - m) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


def oracle_arcface(s, m, easy_margin=False):
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def target(cy):
        if easy_margin:
            return torch.cos(torch.acos(cy) + m) if cy > 0 else cy
        return torch.cos(torch.acos(cy) + m) if cy > th else cy - mm

    def f(c, y, a):
        return softmax_ce(torch.stack([s * target(c[j]) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


# --- SphereFace (official Caffe semantics) and SphereFace-R (opensphere) ------------------------------------

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


# --- CombinedMargin -----------------------------------------------------------------------------------------

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


# --- CurricularFace, ReCurricularFace -----------------------------------------------------------------------

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


# --- MV-Softmax ---------------------------------------------------------------------------------------------

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


# --- AdaSin (reconstruction) --------------------------------------------------------------------------------

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


# --- AdaFace and the SMAFace family -------------------------------------------------------------------------

def adaface_zhat(a, mu, sigma, h):
    """AdaFace's norm score from a (detached) norm: clip to [0.001, 100], normalise, scale by h, clip to [-1, 1]."""
    a = min(max(float(a.detach()), 0.001), 100.0)
    return max(-1.0, min(1.0, (a - mu) / (sigma + EPS) * h))


def adaface_logits(c, y, a, *, s, m, h, mu, sigma, angular=True):
    z = adaface_zhat(a, mu, sigma, h)
    out = []
    for j in range(c.shape[0]):
        cj = c[j].clamp(-1 + EPS, 1 - EPS) if angular else c[j]
        if j != y:
            out.append(s * cj)
        elif angular:  # cos(clip(theta - m z, eps, pi - eps)) - (m z + m)
            theta_m = (torch.acos(cj) - m * z).clamp(EPS, math.pi - EPS)
            out.append(s * (torch.cos(theta_m) - (m * z + m)))
        else:
            out.append(s * (cj - (m * z + m)))
    return torch.stack(out)


def oracle_adaface(s=64.0, m=0.4, h=0.333, mu=20.0, sigma=100.0):
    def f(c, y, a):
        return softmax_ce(adaface_logits(c, y, a, s=s, m=m, h=h, mu=mu, sigma=sigma), y)
    return f


def mining_indicator(p, alpha, p0=0.6, star=False, variant="standard", beta=1.0, alpha0=1.0):
    """SMAFace eq. 3 / 38 / 39 / 40 written out: 1 + a (1/(1 + e^{x}) - 0.5) with x the (modified) exponent."""
    x = p - p0
    amp = alpha
    if variant == "weak":
        x = torch.minimum(x, torch.zeros_like(x))
    elif variant == "strong":
        x = torch.maximum(x, torch.zeros_like(x))
    elif variant == "beta":
        x, amp = beta * x, alpha0
    w = 1 + amp * (1 / (1 + torch.exp(x)) - 0.5)
    return w * abs(7 / (7 + alpha)) if star else w


def oracle_smaface(s=64.0, m=0.4, h=0.333, mu=20.0, sigma=100.0, angular=True, detach_weight=False, **ind):
    def f(c, y, a):
        log_p = -softmax_ce(adaface_logits(c, y, a, s=s, m=m, h=h, mu=mu, sigma=sigma, angular=angular), y)
        p = torch.exp(log_p)
        w = mining_indicator(p.detach() if detach_weight else p, **ind)
        return -w * log_p
    return f


def set_norm_stats(rule, mu, sigma):
    with torch.no_grad():
        rule.batch_mean.fill_(mu)
        rule.batch_std.fill_(sigma)
    return rule.eval()


# --- MagFace ------------------------------------------------------------------------------------------------

def oracle_magface(s=64.0, l_a=10.0, u_a=110.0, l_m=0.45, u_m=0.8, lam=35.0, easy_margin=True, cos_form=False):
    def f(c, y, a):
        a = a.clamp(l_a, u_a)  # keeps the gradient inside the band
        mg = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
        cy = c[y]
        if cos_form:
            t = cy - mg
        else:
            phi = torch.cos(torch.acos(cy) + mg)
            if easy_margin:
                t = phi if cy > 0 else cy
            else:
                t = phi if cy > torch.cos(math.pi - mg) else cy - torch.sin(math.pi - mg) * mg
        logits = torch.stack([s * t if j == y else s * c[j] for j in range(c.shape[0])])
        return softmax_ce(logits, y) + lam * (a / u_a ** 2 + 1 / a)
    return f


# --- LH2Face (reconstruction) -------------------------------------------------------------------------------

def oracle_lh2face(mu, ratio=0.35, detach_kappa=False, lam_pps=1.0, lam_pns=1.0, s_p=32.0, delta=0.2):
    def f(c, y, a):
        k = a.detach() if detach_kappa else a
        logits = torch.stack([k * c[j] - ratio * mu if j == y else k * c[j] for j in range(c.shape[0])])
        pns = torch.log(1 + sum(torch.exp(s_p * (c[j] - delta)) for j in range(c.shape[0]) if j != y))
        return softmax_ce(logits, y) + lam_pps * (1 - c[y]) + lam_pns * pns
    return f


# --- ElasticFace --------------------------------------------------------------------------------------------

def naive_plus_assignment(margins: list[float], cos_y: list[float], mode: str) -> list[float]:
    """Per-row margin after the ElasticFace+ assignment, by plain Python sorting."""
    sorted_m = sorted(margins)
    by_cos_desc = sorted(range(len(cos_y)), key=lambda i: -cos_y[i])  # by_cos_desc[k]: row of k-th largest
    if mode == "official":  # fdbtrs/ElasticFace: row i receives margin[idx[i]]
        return [sorted_m[by_cos_desc[i]] for i in range(len(cos_y))]
    out = [0.0] * len(cos_y)
    for k, row in enumerate(by_cos_desc):  # the paper: k-th smallest margin to the k-th largest cos_y
        out[row] = sorted_m[k]
    return out


def oracle_elastic(kind, s, cos, labels, margins, plus_mode=None, th_mm=False):
    """Oracle for one batch: ``margins`` are the raw draws of the valid rows, in row order."""
    valid = [i for i in range(len(labels)) if int(labels[i]) >= 0]
    m_valid = [float(v) for v in margins]
    if plus_mode is not None:
        cos_y = [float(cos[i, int(labels[i])]) for i in valid]
        m_valid = naive_plus_assignment(m_valid, cos_y, plus_mode)
    row_margins = iter(m_valid)

    def target(cy, m):
        if kind == "cos":
            return cy - m
        if th_mm and cy <= math.cos(math.pi - m):
            return cy - math.sin(math.pi - m) * m
        return torch.cos(torch.acos(cy) + m)  # no fallback: the official ElasticFace target

    def f(c, y, a):
        m = next(row_margins)  # check_rule calls the oracle once per valid row, in row order
        return softmax_ce(torch.stack([s * target(c[j], m) if j == y else s * c[j] for j in range(c.shape[0])]), y)
    return f


def seeded_draws(seed, n, mean, sigma):
    torch.manual_seed(seed)
    return torch.normal(mean, sigma, size=(n,)).double()


# --- SFace --------------------------------------------------------------------------------------------------

def oracle_sface(s, k, a, b):
    def r_in(theta):
        return s / (1.0 + math.exp(-k * (theta - a)))

    def r_out(theta):
        return s / (1.0 + math.exp(k * (theta - b)))

    def f(c, y, norm):
        loss = -r_in(math.acos(float(c[y].detach()))) * c[y]  # the re-scales are constants: [.]_sg
        for j in range(c.shape[0]):
            if j != y:
                loss = loss + r_out(math.acos(float(c[j].detach()))) * c[j]
        return loss
    return f


# --- cosine-distance harmonic loss --------------------------------------------------------------------------

def oracle_harmonic(n, eps, scale=1.0):
    """HarMax of the (scaled, min-normalised as in the repository) cosine distances, then -log p_y."""
    def f(c, y, norm):
        d = [scale * (1.0 - c[j] + eps) for j in range(c.shape[0])]
        dmin = min(float(v.detach()) for v in d)
        w = [(v / dmin) ** (-n) for v in d]
        return -torch.log(w[y] / sum(w))
    return f
