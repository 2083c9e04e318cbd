"""SphereFace (A-Softmax, multiplicative angular margin) as the official Caffe layer trains it, and
SphereFace-R (opensphere's revived SphereFace on normalised features)."""
from __future__ import annotations

import math

import torch

from .registry import register_head
from .base import MarginRule, ShardContext

GRAD_MODES = ("detached", "exact")


def chebyshev_cos(c: torch.Tensor, m: int) -> torch.Tensor:
    """``cos(m * arccos c)`` as the Chebyshev polynomial ``T_m(c)`` (``T_{n+1} = 2c T_n - T_{n-1}``).

    A polynomial has a finite derivative everywhere, so unlike ``cos(m * acos(c))`` it needs no clamp
    at ``c = +-1``. The official Caffe layer hard-codes the same polynomials for m = 1..4."""
    prev, cur = torch.ones_like(c), c
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, cur = cur, 2.0 * c * cur - prev
    return cur


def psi_k(c: torch.Tensor, m: int) -> torch.Tensor:
    """The branch index ``k = floor(m theta / pi)`` of A-Softmax's ``psi``, from detached data and
    clamped to ``[0, m-1]`` (so ``theta = pi`` uses the last branch, as the Caffe layer's sign trick does;
    ``psi`` is continuous, but ``k = m`` there would flip the sign of ``d psi / d c``)."""
    theta = torch.acos(c.detach().clamp(-1.0, 1.0))
    return torch.floor(m * theta / math.pi).clamp(0, m - 1)


def a_softmax_psi(c: torch.Tensor, m: int) -> torch.Tensor:
    """``psi(theta) = (-1)^k cos(m theta) - 2k`` for ``theta in [k pi/m, (k+1) pi/m]`` (SphereFace
    Eq. 7), as a function of ``c = cos theta``; monotone decreasing from 1 to ``1 - 2m`` over [0, pi]."""
    k = psi_k(c, m).to(c.dtype)
    sign = 1.0 - 2.0 * torch.remainder(k, 2.0)
    return sign * chebyshev_cos(c, m) - 2.0 * k


def sphereface_lambda(iteration: int | torch.Tensor, base: float, gamma: float, power: float,
                      lambda_min: float) -> torch.Tensor:
    """``lambda = max(lambda_min, base (1 + gamma iteration)^(-power))``, the Caffe layer's schedule (float64)."""
    it = torch.as_tensor(iteration, dtype=torch.float64)
    lam = base * (1.0 + gamma * it) ** (-power)
    return lam.clamp_min(lambda_min)


def sphereface_target(c_y: torch.Tensor, lam: torch.Tensor | float, m: int) -> torch.Tensor:
    """The official layer's target logit divided by the feature norm: ``(lambda c_y + psi(theta_y)) / (1 + lambda)``
    (``lambda = 0`` is the paper's A-Softmax target ``psi``)."""
    return (lam * c_y + a_softmax_psi(c_y, m)) / (1.0 + lam)


@register_head(
    "sphereface",
    paper="Liu et al., SphereFace: deep hypersphere embedding for face recognition, CVPR 2017 (arXiv:1704.08063)",
    equation="Eq. 7 (A-Softmax L_ang with psi), trained with the official layer's lambda-blended target",
    tex=(r"L = -\log \frac{e^{\|x\| \frac{\lambda\cos\theta_y + \psi(\theta_y)}{1+\lambda}}}"
         r"{e^{\|x\| \frac{\lambda\cos\theta_y + \psi(\theta_y)}{1+\lambda}} + \sum_{j\ne y} e^{\|x\|\cos\theta_j}},"
         r"\quad \psi(\theta) = (-1)^k\cos(m\theta) - 2k,\ k = \lfloor m\theta/\pi \rfloor,"
         r"\quad \lambda = \max(\lambda_{\min}, \beta (1 + \gamma\, \mathrm{iter})^{-p})"),
    official="wy1iu/sphereface tools/caffe-sphereface/src/caffe/layers/margin_inner_product_layer.cpp "
             "and train/code/sphereface_model.prototxt (type QUADRUPLE, base 1000, gamma 0.12, power 1, "
             "lambda_min 5)",
    notes=(
        "Features are NOT normalised: every logit is scaled by the feature norm ||x|| (the rule reads "
        "`norms`, with their gradient); only the class centres are normalised. `s=<float>` replaces ||x|| by "
        "a fixed scale, the normalised-feature variant of SV-X-Softmax and later reimplementations (not the "
        "paper's).",
        "The target logit blends plain and margin logits, ||x|| (lambda cos + psi)/(1 + lambda), with lambda "
        "annealed from base=1000 to lambda_min=5 (the Caffe layer's schedule; the paper's L_ang is the "
        "lambda = 0 limit). The Caffe layer increments its iteration counter BEFORE computing lambda, so the "
        "first training step uses iteration 1; here too. The counter is a buffer, advanced only in training; "
        "in eval the current counter's lambda is used. lambda reaches lambda_min at iteration 1659 "
        "(1000 / (1 + 0.12 i) = 5 at i = 1658.3).",
        "cos(m theta) is the Chebyshev polynomial of c (finite gradient at c = +-1); the branch k = floor(m "
        "theta / pi) is computed from detached data (as `cos_theta.data.acos()`) and clamped to m-1.",
        "Gradient: exact autograd. The Caffe backward differs in two ways: the class-centre gradient is that "
        "of the plain inner product x.W (margin and weight normalisation ignored), and the target's input "
        "gradient rescales its (W, x) coefficient pair (psi', psi - c psi') to unit length.",
        "SV-X-Softmax's SphereFace uses base 1000, gamma 1e-4, power 2, lambda_min 5 on normalised features; "
        "pass those values to reproduce it.",
    ),
    summary="Multiplicative angular margin m*theta on the target (A-Softmax), feature-norm logits, annealed.",
)
class SphereFace(MarginRule):
    """A-Softmax as trained by the official Caffe layer.

    Logits: ``a c_j`` for non-targets and ``a (lambda c_y + psi(theta_y)) / (1 + lambda)`` for the
    target, with ``a = ||x||`` (or the fixed ``s`` when given), ``psi`` of :func:`a_softmax_psi` with
    integer margin ``m``, and ``lambda = max(lambda_min, base (1 + gamma * iteration)^(-power))``.

    State: ``iteration`` (long buffer), incremented before use at every training forward.
    """

    def __init__(self, m: int = 4, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0,
                 lambda_min: float = 5.0, s: float | None = None):
        super().__init__()
        if int(m) != m or m < 1:
            raise ValueError(f"sphereface: the margin m must be a positive integer (A-Softmax), got {m!r}")
        if base < 0 or gamma < 0 or lambda_min < 0:
            raise ValueError(f"sphereface: base, gamma and lambda_min must be >= 0, got {base}, {gamma}, {lambda_min}")
        if s is not None and s <= 0:
            raise ValueError(f"sphereface: the fixed scale s must be positive (or None for ||x||), got {s}")
        self.m, self.base, self.gamma, self.power = int(m), float(base), float(gamma), float(power)
        self.lambda_min = float(lambda_min)
        self.s = None if s is None else float(s)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def lambda_at(self, iteration: int | torch.Tensor) -> torch.Tensor:
        """``lambda`` of the Caffe schedule at a given iteration (tensor, float64)."""
        return sphereface_lambda(iteration, self.base, self.gamma, self.power, self.lambda_min)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.iteration += 1
        lam = self.lambda_at(self.iteration).to(cos.dtype)
        c_y = ctx.target(cos)
        target = sphereface_target(c_y, lam, self.m)
        scale = norms[:, None] if self.s is None else self.s
        self.stat(lam=lam, iteration=self.iteration)
        if self.s is None:
            self.stat(mean_norm=ctx.mean_valid(norms.detach()))
        return scale * ctx.replace_target(cos, target)


@register_head(
    "sphereface_r",
    paper="Liu et al., SphereFace Revived: unifying hyperspherical face recognition, TPAMI 2022 "
          "(arXiv:2109.05565)",
    equation="SphereFace-R (v2) target s psi(m theta_y) with the detached-gradient trick",
    tex=(r"L = -\log \frac{e^{s\,\psi(m\theta_y)}}{e^{s\,\psi(m\theta_y)} + \sum_{j\ne y} e^{s\cos\theta_j}},"
         r"\quad \psi(u) = (-1)^k \cos u - 2k,\ k = \lfloor u/\pi \rfloor"),
    official="ydwen/opensphere model/head/sphereface.py (SphereFace, s=30, m=1.5)",
    notes=(
        "Normalised features and centres; s=30, m=1.5 as opensphere (third-party R100 reproductions use "
        "m=1.7). m need not be an integer.",
        "grad_mode='detached' (default, opensphere): d_theta = psi(m theta_y) - c_y is computed under no_grad "
        "and the logit is s (c + d_theta), so the gradient is that of a plain cosine softmax evaluated at the "
        "margin logits. theta comes from acos(c clamped to +-(1 - 1e-5)) as opensphere does.",
        "grad_mode='exact' differentiates psi(m acos c) (an option of ours, not in opensphere).",
    ),
    summary="Multiplicative angular margin on normalised features with opensphere's detached gradient.",
)
class SphereFaceR(MarginRule):
    """SphereFace-R: target logit ``s psi(m theta_y)``, others ``s c_j``; ``psi(u) = (-1)^k cos u - 2k``,
    ``k = floor(u / pi)``.

    ``grad_mode``: ``"detached"`` (opensphere: the margin is a constant shift of the target cosine for
    autograd) or ``"exact"``.
    """

    def __init__(self, s: float = 30.0, m: float = 1.5, grad_mode: str = "detached"):
        super().__init__()
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"sphereface_r: grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        if m < 1.0:
            raise ValueError(f"sphereface_r: the multiplicative margin m must be >= 1, got {m}")
        self.s, self.m, self.grad_mode = float(s), float(m), grad_mode

    def _psi(self, c_y: torch.Tensor) -> torch.Tensor:
        theta = torch.acos(c_y.clamp(-1.0 + 1e-5, 1.0 - 1e-5))
        u = self.m * theta
        k = torch.floor(u.detach() / math.pi)
        return (1.0 - 2.0 * torch.remainder(k, 2.0)) * torch.cos(u) - 2.0 * k

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        c_y = ctx.target(cos)
        if self.grad_mode == "detached":
            with torch.no_grad():
                d_theta = self._psi(c_y) - c_y
            out = cos + ctx.onehot(cos).to(cos.dtype) * d_theta[:, None]
        else:
            out = ctx.replace_target(cos, self._psi(c_y))
        return self.s * out
