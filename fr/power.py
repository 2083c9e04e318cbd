"""Statistical power of a seed-paired comparison: the smallest difference an experiment can detect.

Two heads trained with the same seeds (same initialisation, same batches, same augmentation draws) give paired
results; their per-seed differences ``d_1 .. d_n`` are tested with a two-sided paired t-test. The *minimum
detectable difference* (MDD) is the true mean difference that this test detects with probability ``power``
at level ``alpha``, given the standard deviation of the paired differences: the solution ``delta`` of

    P(|T| > t_{1-alpha/2, n-1}) = power,   T ~ noncentral t(df = n - 1, nc = delta * sqrt(n) / sd)

(Cohen, *Statistical Power Analysis for the Behavioral Sciences*, 1988, ch. 2; computed exactly with
``scipy.stats.nct`` rather than the normal approximation, which is optimistic for 3-5 seeds). A verdict of
"not distinguishable" means: any true difference larger than the MDD would very likely have been seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

__all__ = ["paired_t_power", "min_detectable_difference", "SeedSummary", "summarise_seeds"]


def _check(n: int, alpha: float, power: float) -> None:
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 seeds, got n={n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")


def paired_t_power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Probability that a two-sided paired t-test on ``n`` seeds rejects when the true mean difference is
    ``delta`` and the paired differences have standard deviation ``sd``."""
    _check(n, alpha, 0.5)
    if sd <= 0:
        raise ValueError(f"the standard deviation of the paired differences must be > 0, got {sd}")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = delta * math.sqrt(n) / sd
    # the lower tail as sf(crit, -nc), the same by symmetry; scipy's cdf returns nan far in that tail
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def min_detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The true mean difference a two-sided paired t-test on ``n`` seeds detects with probability ``power``
    (in the units of ``sd``, the standard deviation of the per-seed paired differences). ``nan`` when ``sd``
    is not a positive finite number (e.g. a single seed)."""
    _check(n, alpha, power)
    if not (sd > 0 and math.isfinite(sd)):
        return float("nan")
    f = lambda d: paired_t_power(d, sd, n, alpha) - power  # noqa: E731 - increasing in d
    hi = sd
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-10 * sd))


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation (ddof 1) and count of a metric over seeds."""

    n: int
    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} (n={self.n})"


def summarise_seeds(values) -> SeedSummary:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return SeedSummary(0, float("nan"), float("nan"))
    return SeedSummary(int(v.size), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"))
