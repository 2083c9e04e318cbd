"""AdaSin (arXiv:2503.03528), RECONSTRUCTED: the method section was not available, so this rule is our
reading of the abstract (sine-based difficulty, dual adaptive penalty on hard samples, curriculum) in
CurricularFace's form. Results with it must be labelled "AdaSin-reconstructed"."""
from __future__ import annotations

import torch

from .registry import register_head
from .base import MarginRule, ShardContext, arc_target
from .curricularface import _check_ema_weight, ema_update_, negative_fraction

DIFFICULTIES = ("half_angle", "sine")
POS_MODES = ("none", "scale", "add")


@register_head(
    "adasin",
    paper="AdaSin: enhancing hard sample metrics with dual adaptive penalty for face recognition, 2025 "
          "(arXiv:2503.03528); only the abstract was available",
    equation="not available; reconstruction: D = sin(theta_y/2), Phi = t + h D, CurricularFace-form penalties",
    tex=(r"D_i = \sin\tfrac{\theta_{y_i}}{2},\ \Phi_i = t + h D_i,\quad "
         r"L = -\log \frac{e^{s\cos(\theta_y + m_i)}}{e^{s\cos(\theta_y + m_i)} + \sum_{j\ne y} e^{s N_{ij}}},"
         r"\quad N_{ij} = \begin{cases} c_j & c_j \le \cos(\theta_y + m) \\ c_j(\Phi_i + c_j) & "
         r"\text{otherwise} \end{cases},\quad m_i = \begin{cases} m(1 + \max(\Phi_i, 0)) & i \text{ hard} \\ m & "
         r"\text{otherwise}\end{cases}"),
    official="none public",
    reconstructed=True,
    notes=(
        "Certain (abstract): the difficulty is 'the sine of the angle between a sample's embedding and its "
        "ground-truth class centre'; a 'dual adaptive penalty' acts on the positive and negative cosines of "
        "hard samples; curriculum learning moves the boundaries over training. Everything else is assumed.",
        "difficulty='half_angle' (default): D = sin(theta_y / 2) = ||x^ - W^_y|| / 2, monotone on [0, pi]: our "
        "reading, since AdaSin's abstract (arXiv:2503.03528) names only 'the sine of the angle' and a difficulty "
        "metric must grow with the angle. difficulty='sine': D = sin(theta_y), the abstract's literal wording "
        "(not monotone on [0, pi]). D carries no gradient.",
        "t: CurricularFace's EMA of the mean target cosine (weight 0.01 on the new batch mean, init 0, "
        "updated before use, training only). Phi_i = t + h D_i; h is unknown (default 0.2; sweep 0.1-0.3).",
        "Negative penalty: CurricularFace's form with t replaced by Phi_i: N_ij = c_j (Phi_i + c_j) on hard "
        "negatives c_j > cos(theta_y + m) (no th/mm in the mask).",
        "Positive penalty (pos_mode): 'scale' (default) margin m (1 + Phi_i) on hard samples (rows with at "
        "least one hard negative); 'add' margin m + Phi_i; 'none' plain m. Phi_i is clamped at 0 "
        "in the margin (t < 0 early in training must not shrink it below m). Target cos(theta_y + m_i) with "
        "ArcFace's th/mm fallback per row. s=64, m=0.5 as CurricularFace (assumed).",
        "cos(theta_y + m_i) uses CurricularFace's clamped sqrt(1 - c_y^2) (see its notes): where the clamp is "
        "active (in float32 only at c_y = 1 exactly) the target cosine is 3.2e-4 sin m_i below cos(m_i).",
        "No paper numbers were found to compare against.",
    ),
    summary="Reconstruction: CurricularFace-style hard-sample penalties driven by t + h sin(theta_y/2), on "
            "both the negatives and the target margin of hard samples.",
)
class AdaSin(MarginRule):
    """AdaSin, reconstructed (see the notes): difficulty ``D_i`` (detached), modulation
    ``Phi_i = t + h D_i``; hard negatives ``s c_j (Phi_i + c_j)``; target ``s cos(theta_y + m_i)`` with
    ``m_i`` enlarged by ``Phi_i`` on hard samples according to ``pos_mode``.

    State: ``t`` (scalar buffer, init 0), updated before use in training only.
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, h: float = 0.2, difficulty: str = "half_angle",
                 pos_mode: str = "scale", ema_weight: float = 0.01):
        super().__init__()
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"adasin: difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        if pos_mode not in POS_MODES:
            raise ValueError(f"adasin: pos_mode must be one of {POS_MODES}, got {pos_mode!r}")
        if h < 0 or m < 0:
            raise ValueError(f"adasin: h and m must be >= 0, got h={h}, m={m}")
        _check_ema_weight("adasin", ema_weight)
        self.s, self.m, self.h = float(s), float(m), float(h)
        self.difficulty, self.pos_mode, self.ema_weight = difficulty, pos_mode, float(ema_weight)
        self.register_buffer("t", torch.zeros(()))

    def difficulty_of(self, c_y: torch.Tensor) -> torch.Tensor:
        """``D`` from the target cosine: ``sin(theta/2) = sqrt((1 - c)/2)`` or ``sin(theta) = sqrt(1 - c^2)``."""
        if self.difficulty == "half_angle":
            return torch.sqrt(((1.0 - c_y) / 2.0).clamp_min(0.0))
        return torch.sqrt((1.0 - c_y * c_y).clamp_min(0.0))

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        c_y = ctx.target(cos)
        if self.training:
            ema_update_(self.t, c_y, ctx, self.ema_weight)
        valid = ctx.valid
        with torch.no_grad():
            cy = c_y.detach()
            d = self.difficulty_of(cy)
            phi = self.t.to(cos.dtype) + self.h * d
            hard = (cos > arc_target(cy, self.m, th_mm=False)[:, None]) & ~ctx.onehot(cos) & valid[:, None]
            hard_row = (ctx.sum_classes(hard.to(cos.dtype)) > 0) & valid
            extra = phi.clamp_min(0.0)  # early in training t < 0: the penalty never shrinks the margin
            if self.pos_mode == "scale":
                margin = torch.where(hard_row, self.m * (1.0 + extra), torch.full_like(phi, self.m))
            elif self.pos_mode == "add":
                margin = torch.where(hard_row, self.m + extra, torch.full_like(phi, self.m))
            else:
                margin = torch.full_like(phi, self.m)
        out = torch.where(hard, cos * (phi[:, None] + cos), cos)
        out = ctx.replace_target(out, arc_target(c_y, margin))
        w = valid.to(cos.dtype)
        n_valid = w.sum().clamp_min(1.0)
        self.stat(t=self.t, hard_neg_frac=negative_fraction(hard, ctx),
                  hard_sample_frac=(hard_row.to(cos.dtype) * w).sum() / n_valid,
                  mean_difficulty=(d * w).sum() / n_valid, mean_phi=(phi * w).sum() / n_valid,
                  mean_margin=(margin * w).sum() / n_valid)
        return self.s * out
