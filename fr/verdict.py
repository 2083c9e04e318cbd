"""The verdict on a paper's claim, computed from recorded runs (never typed).

The rule, stated once (the book's Methods page repeats it). For a claim with treatment T, baseline B and
metric M, take the seeds both rows have recorded; ``d_i = M(T, seed i) - M(B, seed i)`` in percentage points,
with the sign flipped when the paper's direction is "less" (an error rate), so that ``d > 0`` always means "as
the paper claims". With ``n >= 2`` paired seeds: the mean of ``d``, its two-sided 95% Student-t interval across
seeds (``mean ± t_{0.975, n-1} · sd / sqrt(n)``), the minimum detectable difference (MDD) of a paired t-test at
80% power for ``n`` seeds with that ``sd`` (:func:`fr.power.min_detectable_difference`), and, per seed, a paired
test on the same pairs (exact McNemar and a paired bootstrap over pairs, :mod:`fr.eval.stats`, where the runs
recorded per-pair results, i.e. verification accuracy; "n/a" otherwise).

* **confirmed**: the interval lies entirely above 0 (the paper's direction);
* **contradicted**: the interval lies entirely below 0;
* **not distinguishable at this scale**: otherwise, always printed with the MDD ("could have detected a true
  difference of at least x pp with 80% power");
* **not run**: fewer than 2 paired seeds recorded.

Why across seeds and not per seed: a per-seed test compares two *trained models* on the same pairs; it says
nothing about how much training itself varies from seed to seed, which is the variation a claim about a loss
function has to beat. The per-seed tests are shown as supporting evidence only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from .eval.stats import mcnemar_test, paired_bootstrap
from .power import min_detectable_difference

__all__ = ["CONFIRMED", "CONTRADICTED", "NOT_DISTINGUISHABLE", "NOT_RUN", "VERDICTS", "DIRECTIONS", "Verdict",
           "paired_differences", "decide", "SeedTest", "seed_test"]

CONFIRMED = "confirmed"
CONTRADICTED = "contradicted"
NOT_DISTINGUISHABLE = "not distinguishable at this scale"
NOT_RUN = "not run"
VERDICTS = (CONFIRMED, CONTRADICTED, NOT_DISTINGUISHABLE, NOT_RUN)
#: the paper's claim: treatment > baseline ("greater") or treatment < baseline ("less", e.g. an error rate)
DIRECTIONS = ("greater", "less")
LEVEL = 0.95
POWER = 0.8


@dataclass(frozen=True)
class Verdict:
    """The verdict on one claim and metric. Differences are in percentage points, in the paper's direction
    (positive = as claimed); ``sd`` is the standard deviation of the per-seed differences (ddof 1)."""

    verdict: str
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    mdd: float
    level: float = LEVEL
    power: float = POWER

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: the verdict with the numbers it rests on."""
        if self.verdict == NOT_RUN:
            return f"{NOT_RUN} ({self.n} paired seed{'s' if self.n != 1 else ''} recorded, 2 needed)"
        text = (f"{self.verdict}: {self.mean:+.2f} pp, {100 * self.level:.0f}% CI [{self.ci_low:+.2f}, "
                f"{self.ci_high:+.2f}], n={self.n} seeds")
        if math.isfinite(self.mdd):
            text += f"; could have detected ≥ {self.mdd:.2f} pp ({100 * self.power:.0f}% power)"
        else:
            text += "; MDD not defined (the seeds' differences do not vary)"
        return text


def paired_differences(treatment: Mapping[int, float], baseline: Mapping[int, float], *,
                       direction: str = "greater", scale: float = 100.0) -> dict[int, float]:
    """``{seed: d}`` over the seeds both mappings hold a finite value for: ``scale * (T - B)``, negated when
    ``direction == "less"``. Metric values are fractions, so the default ``scale`` gives percentage points."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    sign = 1.0 if direction == "greater" else -1.0
    out = {}
    for seed in sorted(set(treatment) & set(baseline)):
        t, b = treatment[seed], baseline[seed]
        if t is None or b is None or not (math.isfinite(t) and math.isfinite(b)):
            continue
        out[seed] = sign * scale * (float(t) - float(b))
    return out


def decide(diffs: Sequence[float], *, level: float = LEVEL, power: float = POWER) -> Verdict:
    """The verdict of the module's rule on the per-seed differences ``diffs`` (already in the paper's
    direction, in percentage points)."""
    d = np.asarray(list(diffs), dtype=float)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"diffs must be a 1-D sequence of finite numbers, got {list(diffs)!r}")
    n = int(d.size)
    if n < 2:
        mean = float(d.mean()) if n else math.nan
        return Verdict(NOT_RUN, n, mean, math.nan, math.nan, math.nan, math.nan, level, power)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    mdd = min_detectable_difference(sd, n, alpha=1 - level, power=power)
    verdict = CONFIRMED if low > 0 else CONTRADICTED if high < 0 else NOT_DISTINGUISHABLE
    return Verdict(verdict, n, mean, sd, low, high, mdd, level, power)


@dataclass(frozen=True)
class SeedTest:
    """One seed's paired test of two trained models on the same pairs: the difference (pp, paper's direction),
    McNemar's exact p-value and the paired-bootstrap interval of the difference (pp)."""

    diff: float
    mcnemar_p: float
    ci_low: float
    ci_high: float
    discordant: int

    def to_dict(self) -> dict:
        return asdict(self)


def seed_test(correct_t, correct_b, *, direction: str = "greater", level: float = LEVEL, n_boot: int = 10_000,
              seed: int = 0) -> SeedTest:
    """McNemar and the paired bootstrap (:mod:`fr.eval.stats`) of treatment against baseline on the same pairs
    (per-pair correctness vectors), in percentage points and in the paper's direction."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    mc = mcnemar_test(correct_t, correct_b)
    pb = paired_bootstrap(correct_t, correct_b, level=level, n_boot=n_boot, seed=seed)
    lo, hi = 100 * pb.ci_low, 100 * pb.ci_high
    if direction == "less":
        lo, hi = -hi, -lo
    sign = 1.0 if direction == "greater" else -1.0
    return SeedTest(sign * 100 * pb.diff, mc.p_value, lo, hi, mc.a_only + mc.b_only)
