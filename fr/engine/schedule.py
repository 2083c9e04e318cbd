"""Learning-rate schedules of the reproduced papers, as per-step factors of the base learning rate.

* ``multistep`` (ArcFace MXNet, CurricularFace, AdaFace, ReCurricularFace): ``gamma ** k`` after ``k``
  milestones; milestones are epochs converted to steps by :func:`fr.config.derive`. The schedule is
  stepped every iteration, so a milestone at epoch ``e`` takes effect at step ``e * steps_per_epoch``
  exactly as an epoch-level ``MultiStepLR`` would.
* ``poly`` (insightface ``arcface_torch`` ``PolynomialLRWarmup``): ``step / warmup`` during warm-up, then
  ``(1 - (step - warmup) / (total - warmup)) ** power`` (``power=1``: linear to zero).

:class:`LRFactor` is a plain picklable object, so ``LambdaLR.state_dict()`` carries the schedule itself
and a checkpoint restores it exactly.
"""
from __future__ import annotations

import bisect

import torch

from ..config import Derived, ScheduleCfg, check_choice


class LRFactor:
    """``factor(step)``: multiplier of the base learning rate at optimiser step ``step`` (0-based)."""

    def __init__(self, kind: str, total_steps: int, warmup_steps: int = 0, milestones: tuple[int, ...] = (),
                 gamma: float = 0.1, power: float = 1.0):
        check_choice("schedule.kind", kind)
        self.kind, self.total_steps, self.warmup_steps = kind, int(total_steps), int(warmup_steps)
        self.milestones, self.gamma, self.power = tuple(int(m) for m in milestones), float(gamma), float(power)

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            warm = step / self.warmup_steps
            if self.kind == "poly":
                return warm
        else:
            warm = 1.0
        if self.kind == "multistep":
            return warm * self.gamma ** bisect.bisect_right(self.milestones, step)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return (1.0 - progress) ** self.power

    def __repr__(self) -> str:
        return (f"LRFactor(kind={self.kind!r}, total_steps={self.total_steps}, warmup_steps={self.warmup_steps}, "
                f"milestones={self.milestones}, gamma={self.gamma}, power={self.power})")


def lr_factor(cfg: ScheduleCfg, derived: Derived) -> LRFactor:
    return LRFactor(cfg.kind, derived.total_steps, derived.warmup_steps, derived.milestone_steps, cfg.gamma,
                    cfg.power)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleCfg, derived: Derived) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per optimiser step. (Multi-step with warm-up ramps linearly to the base
    rate, then steps; insightface-style poly ramps from zero.)"""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, derived))
