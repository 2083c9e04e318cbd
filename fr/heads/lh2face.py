"""LH2Face — a RECONSTRUCTION from the paper's abstract and a summary of it (no code, no full text available).

What is known (Xie et al., "LH2Face: loss function for hard high-quality face"): the similarity is the
log-density of a von Mises-Fisher distribution, ``log f(x^; μ, κ) = log c_n(κ) + κ μᵀx^``, with concentration
``κ = |z|`` (the feature norm); an "uncertainty-aware margin function" with ``m = 0.35 μ_|z|``; and
``L_FR = L_vMF + L_pps + L_pns + L_pp`` (proxy-positive-sample, proxy-negative-sample and proxy-proxy terms). The
3D-reconstruction branch of the paper is outside the head.

Our reading:

* ``log c_n(κ_i)`` is the same for every class of sample ``i`` and cancels in the class softmax, so the vMF logits
  are ``κ_i c_j = ||z_i|| cos θ_j`` (un-normalised-feature logits);
* the margin ``m = 0.35 μ_|z|`` (``μ_|z|`` the mean feature norm: an EMA, or the batch mean; no gradient) is
  subtracted from the target logit: ``κ_i c_y - m``. A sample at the mean norm sees CosFace(s = μ, m = 0.35);
  higher-norm samples get a relatively smaller cosine margin ``m / κ_i``;
* ``L_pps = mean_i (1 - c_{i,y})`` (pull each sample to its own proxy);
* ``L_pns = mean_i log(1 + Σ_{j≠y} exp(s_p (c_{ij} - δ)))``, the softplus of a smooth maximum of the non-target
  cosines (push each sample from the nearest other proxies; ``s_p → ∞`` gives ``s_p · relu(max_j c_ij - δ)``);
* ``L_pp = mean_{a≠b} relu(<W^_a, W^_b> - δ')`` over the classes present in the batch (spread the proxies).
  It needs the class centres, which a margin rule does not see: it is computed when the head provides them as
  ``ctx.centres`` (normalised rows aligned with the cosine columns) and skipped, with a warning, otherwise.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .registry import register_head
from .base import MarginRule, ShardContext

NORM_STATS = ("ema", "batch")


def _first_row_per_class(labels: torch.Tensor) -> torch.Tensor:
    """Indices of the first row of each distinct non-negative label."""
    valid = torch.nonzero(labels >= 0).squeeze(1)
    if valid.numel() == 0:
        return valid
    _, inverse = torch.unique(labels[valid], return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), labels.numel(), dtype=torch.long, device=labels.device)
    first = first.scatter_reduce(0, inverse, valid, reduce="amin")
    return first


def proxy_pair_loss(centres: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """``mean_{a≠b} relu(<W_a, W_b> - margin)`` over the rows of ``centres`` (l2-normalised here); 0 with fewer
    than two rows."""
    w = F.normalize(centres, dim=1)
    k = w.shape[0]
    if k < 2:
        return w.sum() * 0.0
    gram = w @ w.t()
    off = ~torch.eye(k, dtype=torch.bool, device=w.device)
    return torch.relu(gram[off] - margin).mean()


@register_head(
    "lh2face",
    paper="Xie, Wang, Jiao, Yuan, Chen, Zhao, LH2Face: loss function for hard high-quality face (abstract and "
          "a summary only)",
    equation="L_FR = L_vMF + L_pps + L_pns + L_pp with kappa = |z| and m = 0.35 mu_|z| (abstract/summary; the "
             "forms of the terms are our reading)",
    tex=(r"L = -\log\frac{e^{\kappa_i\cos\theta_y - m}}{e^{\kappa_i\cos\theta_y - m} + \sum_{j\ne y}"
         r"e^{\kappa_i\cos\theta_j}} + \lambda_{pps}(1 - \cos\theta_y) + \lambda_{pns}\log\Big(1 + \sum_{j\ne y}"
         r"e^{s_p(\cos\theta_j - \delta)}\Big) + \lambda_{pp}\,\overline{[\hat W_a^\top \hat W_b - \delta']_+},\ "
         r"\kappa_i = \|z_i\|,\ m = 0.35\,\mu_{\|z\|}"),
    official="none public",
    reconstructed=True,
    notes=(
        "Reconstruction: only the abstract of Xie, Wang, Jiao, Yuan, Chen and Zhao's 'LH2Face: loss function for "
        "hard high-quality face' and a summary of it (its TL;DR, which gives m = 0.35 mu_|z|, kappa = |z| and "
        "L_FR = L_vMF + L_pps + L_pns + L_pp) are available; the margin placement, the proxy-term forms, their "
        "weights (1, as the summary writes a plain sum) and scales are our choices.",
        "log c_n(kappa) of the vMF density is common to all classes of a sample and cancels in the softmax.",
        "detach_kappa=False lets the CE reach the norm through kappa (the literal vMF reading); with un-normalised "
        "logits this can grow norms on easy samples. detach_kappa=True makes kappa a per-sample scale.",
        "mu_|z| is an EMA (t_alpha on the new batch mean, the first training batch sets it) or the batch mean "
        "(norm_stat='batch'); before any training step the EMA mode uses the batch mean.",
        "L_pp needs the class centres: computed only when the head sets ctx.centres; otherwise skipped with a "
        "warning. Behind a sharded Partial FC it covers pairs within a shard only.",
    ),
    summary="Reconstruction: vMF logits ||z|| cos theta with a margin of 0.35 times the mean norm, plus "
            "proxy pull/push/spread terms.",
)
class LH2Face(MarginRule):
    """LH2Face (reconstruction): logits ``κ_i c_j`` with ``κ_i = ||z_i||``, target ``κ_i c_y - margin_ratio · μ``,
    plus ``λ_pps L_pps + λ_pns L_pns + λ_pp L_pp`` (see the module docstring).

    ``norm_stat``: ``"ema"`` (buffer ``mean_norm``, updated in training from the valid rows with weight
    ``t_alpha`` on the new batch mean; the first update sets it) or ``"batch"``. ``pns_scale``, ``pns_margin``:
    ``s_p``, ``δ`` of ``L_pns``; ``pp_margin``: ``δ'`` of ``L_pp``.
    """

    def __init__(self, margin_ratio: float = 0.35, detach_kappa: bool = False, norm_stat: str = "ema",
                 t_alpha: float = 0.01, lambda_pps: float = 1.0, lambda_pns: float = 1.0, lambda_pp: float = 1.0,
                 pns_scale: float = 32.0, pns_margin: float = 0.2, pp_margin: float = 0.2):
        super().__init__()
        if norm_stat not in NORM_STATS:
            raise ValueError(f"LH2Face: norm_stat must be one of {NORM_STATS}, got {norm_stat!r}")
        if not 0.0 < t_alpha <= 1.0:
            raise ValueError(f"LH2Face: t_alpha must be in (0, 1], got {t_alpha}")
        for k, v in dict(lambda_pps=lambda_pps, lambda_pns=lambda_pns, lambda_pp=lambda_pp).items():
            if v < 0:
                raise ValueError(f"LH2Face: {k} must be >= 0, got {v}")
        self.margin_ratio, self.detach_kappa, self.norm_stat = float(margin_ratio), bool(detach_kappa), norm_stat
        self.t_alpha = float(t_alpha)
        self.lambda_pps, self.lambda_pns, self.lambda_pp = float(lambda_pps), float(lambda_pns), float(lambda_pp)
        self.pns_scale, self.pns_margin, self.pp_margin = float(pns_scale), float(pns_margin), float(pp_margin)
        self.register_buffer("mean_norm", torch.zeros(1))
        self.register_buffer("num_updates", torch.zeros(1, dtype=torch.long))
        self._warned_no_centres = False

    def norm_mean(self, norms: torch.Tensor, ctx: ShardContext) -> torch.Tensor:
        """``μ_|z|`` (no gradient), after the EMA update in training mode."""
        batch_mu = ctx.mean_valid(norms.detach())
        if self.norm_stat == "batch":
            return batch_mu
        if self.training and bool(ctx.valid.any()):
            with torch.no_grad():
                first = bool(self.num_updates == 0)
                new = batch_mu.to(self.mean_norm.dtype)
                self.mean_norm.copy_(new if first else self.t_alpha * new + (1.0 - self.t_alpha) * self.mean_norm)
                self.num_updates += 1
        if bool(self.num_updates == 0):
            return batch_mu
        return self.mean_norm.to(norms.dtype).squeeze(0)

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        kappa = norms.detach() if self.detach_kappa else norms
        mu = self.norm_mean(norms, ctx)
        m = self.margin_ratio * mu
        self.stat(mean_norm=mu, margin=m)
        return kappa[:, None] * cos - m * ctx.onehot(cos).to(cos.dtype)

    def loss(self, logits: torch.Tensor, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        vmf = ctx.cross_entropy(logits)
        total = vmf
        parts = {"loss_vmf": vmf}
        if self.lambda_pps:
            pps = ctx.mean_valid(1.0 - ctx.target(cos))
            total = total + self.lambda_pps * pps
            parts["loss_pps"] = pps
        if self.lambda_pns:
            z = self.pns_scale * (cos - self.pns_margin)
            z = ctx.replace_target(z, torch.full_like(z[:, 0], torch.finfo(z.dtype).min / 4))
            pns = ctx.mean_valid(F.softplus(ctx.logsumexp(z)))
            total = total + self.lambda_pns * pns
            parts["loss_pns"] = pns
        if self.lambda_pp:
            centres = getattr(ctx, "centres", None)
            if centres is not None:
                # each row's own class centre, summed over shards (so sharded == one process), then one row
                # per class present in the batch
                own = centres[ctx.local_labels.clamp_min(0)] * ctx.has_target[:, None].to(centres.dtype)
                own = ctx.all_sum(own)
                first = _first_row_per_class(ctx.labels)
                pp = proxy_pair_loss(own[first], self.pp_margin)
                total = total + self.lambda_pp * pp
                parts["loss_pp"] = pp
            elif not self._warned_no_centres:
                self._warned_no_centres = True
                warnings.warn("LH2Face: the proxy-proxy term L_pp needs the class centres, which this head does "
                              "not pass to its margin rule (ctx.centres); L_pp is skipped. Set lambda_pp=0 to "
                              "silence this.", stacklevel=2)
        self.stat(**parts)
        return total
