"""What a training step reports, kept on the device until it is logged, and the loop's throughput.

A step's statistics are detached tensors (or Python floats): converting a CUDA tensor to a float waits for
the device, so the loop converts them with :func:`scalars` only on the steps it logs."""
from __future__ import annotations

import math
import time

import torch

from .. import dist as D

#: a step's statistics: detached tensors (possibly on the device) or Python floats
StepStats = dict[str, "torch.Tensor | float"]


def batch_accuracy(out) -> torch.Tensor:
    """Fraction of rows whose target logit is the largest over all (sampled) classes of all shards, as a
    0-dim float64 tensor on the logits' device (computing it does not wait for the device).

    Read on the head's margin-modified logits, so it is the accuracy *under the margin* (lower than plain
    top-1); NaN for heads without logits."""
    if out.logits is None or out.labels is None:
        return torch.tensor(math.nan, dtype=torch.float64)
    logits = out.logits.detach().float()
    lab = out.labels
    row_max = logits.max(1).values
    tgt = logits.gather(1, lab.clamp_min(0)[:, None]).squeeze(1)
    tgt = torch.where(lab >= 0, tgt, torch.full_like(tgt, -math.inf))
    if D.is_dist():
        row_max, tgt = D.all_max(row_max), D.all_max(tgt)
    valid = torch.isfinite(tgt)
    n = valid.sum().double()
    hits = ((tgt >= row_max) & valid).sum().double()
    return torch.where(n > 0, hits / n.clamp_min(1.0), torch.full_like(n, math.nan))


def scalars(stats: StepStats) -> dict[str, float]:
    """A step's statistics as Python floats (waits for the device's work on them)."""
    return {k: float(v) for k, v in stats.items()}


class Throughput:
    """Images per second over the steps counted since the last :meth:`rate`."""

    def __init__(self) -> None:
        self._since, self._images = time.perf_counter(), 0

    def count(self, images: int) -> None:
        self._images += images

    def rate(self) -> float:
        """The rate since the last reading; starts a new window."""
        now = time.perf_counter()
        rate = self._images / max(now - self._since, 1e-9)
        self._since, self._images = now, 0
        return rate
