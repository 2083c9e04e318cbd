"""AdaFace (quality-adaptive margin from the feature norm), and the margin machinery the SMAFace family reuses.

The "AdaFace margin" is three pieces, all here and shared by :mod:`fr.heads.smaface`:

* the norm score ``ẑ = clip((a - μ) / (σ + eps) · h, -1, 1)`` of each row, with ``a = clip(||x||, 0.001, 100)``
  detached and ``μ``, ``σ`` exponential moving averages of the batch mean and (unbiased) standard deviation of ``a``
  (:func:`adaface_norm_score`, fed by :meth:`NormAdaptiveMargin.norm_score`);
* the two margins ``g_angle = -m ẑ`` and ``g_add = m ẑ + m`` (:func:`adaface_margins`);
* the target logit ``s (cos(clip(θ_y + g_angle, eps, π - eps)) - g_add)`` (angular form, AdaFace / SMAFace) or
  ``s (cos θ_y - g_add)`` (cosine form, SM-CosFace) (:func:`adaface_target`).
"""
from __future__ import annotations

import math

import torch

from .registry import register_head
from .base import MarginRule, ShardContext

#: AdaFace's single stability constant (official ``self.eps``): cosine clamp, angle clip and ``σ + eps``.
ADAFACE_EPS = 1e-3
#: Range the official code clips the feature norm to before computing statistics.
NORM_CLIP = (0.001, 100.0)


def adaface_norm_score(a: torch.Tensor, mu: float | torch.Tensor, sigma: float | torch.Tensor, h: float,
                       eps: float = ADAFACE_EPS) -> torch.Tensor:
    """``ẑ = clip((a - μ) / (σ + eps) · h, -1, 1)`` for feature norms ``a`` already clipped to :data:`NORM_CLIP`
    and the running mean ``μ`` and standard deviation ``σ`` of the norms."""
    return ((a - mu) / (sigma + eps) * h).clamp(-1.0, 1.0)


def adaface_margins(zhat: torch.Tensor, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_angle, g_add) = (-m ẑ, m ẑ + m)``, AdaFace's two margins (``m_angle``, ``m_add`` in SMAFace app. A).

    ``ẑ = -1`` gives ArcFace(m) (``g_angle = m``, ``g_add = 0``), ``ẑ = 0`` CosFace(m), ``ẑ = +1`` an angular
    margin of ``-m`` plus an additive ``2m``."""
    return -m * zhat, m * zhat + m


def adaface_target(c_y: torch.Tensor, zhat: torch.Tensor, m: float, *, angular: bool = True,
                   eps: float = ADAFACE_EPS) -> torch.Tensor:
    """The AdaFace target cosine (before the scale ``s``) for target cosines ``c_y`` and norm scores ``ẑ``.

    ``angular=True``: ``cos(clip(arccos(c_y) + g_angle, eps, π - eps)) - g_add`` with ``c_y`` clamped to
    ``±(1 - eps)`` first, as the official head does (gradient through ``arccos``: the exact one).
    ``angular=False``: ``c_y - g_add`` (SMAFace's SM-CosFace, eq. 4); no clamp is needed without ``arccos``.
    """
    g_angle, g_add = adaface_margins(zhat, m)
    if not angular:
        return c_y - g_add
    theta = torch.acos(c_y.clamp(-1.0 + eps, 1.0 - eps))
    theta_m = (theta + g_angle).clamp(eps, math.pi - eps)
    return torch.cos(theta_m) - g_add


class NormAdaptiveMargin(MarginRule):
    """Base class of the rules with the AdaFace margin (AdaFace, SM-CosFace, SMAFace and their star variants).

    Holds the norm statistics in two buffers, ``batch_mean`` (init 20) and ``batch_std`` (init 100), the
    official names and initial values. In training mode every forward first updates them from the valid rows,
    ``v ← t_alpha · batch_value + (1 - t_alpha) · v`` (unbiased std, as ``torch.std``), and then uses the updated
    values — the order of the official code. The mean is not updated when no row is valid, the std when fewer
    than two are (the official code would write NaN). Eval mode uses the buffers as they are.

    Subclasses set :attr:`angular` (the target form) and may override :meth:`loss`.
    """

    #: angular (AdaFace/SMAFace) or cosine (SM-CosFace) target form; see :func:`adaface_target`.
    angular: bool = True

    def __init__(self, s: float = 64.0, m: float = 0.4, h: float = 0.333, t_alpha: float = 0.01):
        super().__init__()
        if h < 0:
            raise ValueError(f"{type(self).__name__}: h must be >= 0, got {h}")
        if not 0.0 < t_alpha <= 1.0:
            raise ValueError(f"{type(self).__name__}: t_alpha must be in (0, 1], got {t_alpha}")
        self.s, self.m, self.h, self.t_alpha = float(s), float(m), float(h), float(t_alpha)
        self.register_buffer("batch_mean", torch.full((1,), 20.0))
        self.register_buffer("batch_std", torch.full((1,), 100.0))

    @torch.no_grad()
    def _update_norm_stats(self, a: torch.Tensor, ctx: ShardContext) -> None:
        v = a[ctx.valid]
        t = self.t_alpha
        if v.numel() >= 1:
            self.batch_mean.copy_(t * v.mean().to(self.batch_mean.dtype) + (1.0 - t) * self.batch_mean)
        if v.numel() >= 2:
            self.batch_std.copy_(t * v.std().to(self.batch_std.dtype) + (1.0 - t) * self.batch_std)

    def norm_score(self, norms: torch.Tensor, ctx: ShardContext) -> torch.Tensor:
        """``ẑ`` per row (no gradient), after the EMA update in training mode."""
        a = norms.detach().clamp(*NORM_CLIP)
        if self.training:
            self._update_norm_stats(a, ctx)
        mu, sigma = self.batch_mean.to(a.dtype), self.batch_std.to(a.dtype)
        zhat = adaface_norm_score(a, mu, sigma, self.h)
        self.stat(batch_mean=self.batch_mean, batch_std=self.batch_std, zhat_mean=ctx.mean_valid(zhat),
                  zhat_clipped=ctx.mean_valid((zhat.abs() >= 1.0).to(a.dtype)))
        return zhat

    def margin_logits(self, cos: torch.Tensor, ctx: ShardContext, zhat: torch.Tensor) -> torch.Tensor:
        """``s ·`` (cosines with the AdaFace target) for given norm scores ``ẑ``."""
        c = cos.clamp(-1.0 + ADAFACE_EPS, 1.0 - ADAFACE_EPS) if self.angular else cos
        c_y = c.gather(1, ctx.local_labels.clamp_min(0)[:, None]).squeeze(1)
        target = adaface_target(c_y, zhat, self.m, angular=self.angular)
        return self.s * ctx.replace_target(c, target)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        return self.margin_logits(cos, ctx, self.norm_score(norms, ctx))


@register_head(
    "adaface",
    paper="Kim, Jain, Liu, AdaFace: quality adaptive margin for face recognition, CVPR 2022 (arXiv:2204.00964)",
    equation="adaptive margin function f(theta_j, m)_AdaFace with g_angle, g_add and the EMA-normalised norm "
             "(restated verbatim as SMAFace Eq. 5 / appendix Eq. 11)",
    tex=(r"f(\theta_j) = \begin{cases} s\,\big(\cos(\theta_y + g_{angle}) - g_{add}\big) & j = y \\ "
         r"s\cos\theta_j & j \ne y \end{cases},\quad g_{angle} = -m\,\widehat{\|z\|},\ "
         r"g_{add} = m\,\widehat{\|z\|} + m,\ "
         r"\widehat{\|z\|} = \Big\lfloor \frac{\|z\| - \mu_z}{\sigma_z / h} \Big\rceil_{-1}^{1}"),
    official="mk-minchul/AdaFace head.py (AdaFace)",
    default_init="unit_uniform",
    notes=(
        "Follows the official head: every cosine clamped to ±(1-1e-3); the norm clipped to [0.001, 100] and "
        "detached; theta_y + g_angle clipped to [1e-3, pi - 1e-3]; sigma + 1e-3 in the denominator.",
        "EMA: the official code puts t_alpha on the NEW batch value and updates BEFORE using the statistics; the "
        "paper's 'alpha = 0.99' is the weight on the running value. The class default of the official head is "
        "t_alpha = 1.0 (no smoothing) but its config.py and training scripts use 0.01, which we take.",
        "Buffers batch_mean (init 20, about sqrt(512) for AdaFace's BatchNorm-ended backbone) and batch_std (init "
        "100) are updated only in training mode, from rows with a label; unbiased std, as torch.std.",
        "Under torchrun (sharded Partial FC) the batch mean and std are those of the whole all-gathered batch, "
        "identical on every rank, so that W processes follow one process on the same global batch. The official "
        "code (PyTorch Lightning DDP) runs the head on each GPU's share of the batch, so its statistics are "
        "those of one GPU's B/W rows (a noisier std, and per-GPU EMA updates).",
        "Defaults m = 0.4, h = 0.333, s = 64 from the official training scripts (config.py has m = 0.5, h = 0).",
    ),
    summary="Margin that moves from ArcFace (low-quality, small-norm samples) to CosFace-plus (high-quality ones) "
            "with the batch-normalised feature norm.",
)
class AdaFace(NormAdaptiveMargin):
    """AdaFace: target logit ``s (cos(θ_y + g_angle) - g_add)``, others ``s cos θ_j``, with
    ``g_angle = -m ẑ``, ``g_add = m ẑ + m`` and ``ẑ`` the clipped, batch-normalised feature norm.

    ``h`` sets how much of the norm distribution maps inside (-1, 1); ``t_alpha`` is the EMA weight of the new
    batch statistics. ``h = 0`` is CosFace(m) and ``ẑ = -1`` (e.g. a norm far below the running mean) is
    ArcFace(m) without ArcFace's th/mm fallback (the angle is clipped at ``π - 1e-3`` instead).
    """

    angular = True
