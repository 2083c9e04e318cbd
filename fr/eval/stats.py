"""How much a verification accuracy, or a gap between two models, can be trusted.

Face-recognition papers report LFW/CFP accuracies to two decimals and claim gains of 0.05 %. On 6,000 pairs one
pair is 0.017 %, so such a gap is three pairs. This module gives the numbers needed to say whether it means
anything:

* :func:`fold_ci` — the t-interval from the k fold accuracies, ``mean ± t_{k-1} · std(ddof=1)/sqrt(k)``. It treats
  the folds as independent, which they are not quite (their thresholds are fitted on overlapping training folds).
* :func:`bootstrap_accuracy_ci` — percentile bootstrap over pairs of the held-out correctness vector. The
  thresholds are held fixed, so the variance of threshold fitting is not included.
* :func:`mcnemar_test` — exact McNemar test: under "both models are equally accurate" each of the ``b + c``
  discordant pairs (one model right, the other wrong) is equally likely to go either way, so
  ``p = min(1, 2 · P[Binomial(b + c, 1/2) <= min(b, c)])``.
* :func:`paired_bootstrap` — percentile CI of the accuracy difference and a two-sided p-value (the bootstrap
  distribution shifted to the null: ``p = (1 + #{|d* - d| >= |d|}) / (1 + B)``).

Resampling pairs with replacement from a boolean vector draws the number of correct pairs from a binomial
(for two paired vectors: the four outcome counts from a multinomial), so the bootstraps here draw those counts
directly — the same distribution as index resampling, at a cost independent of the number of pairs.

The Student t and binomial distributions come from :mod:`scipy.stats` / :mod:`scipy.special`; the
functions below only name them in this module's terms and check their arguments.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


# --- Student t and binomial distributions (scipy) ---------------------------------------------------------

def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``
    (:func:`scipy.special.betainc`)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got {x}")
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a, b > 0, got a={a}, b={b}")
    from scipy import special  # scipy is imported where used: fr.eval loads on every training run

    return float(special.betainc(a, b, x))


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom (:data:`scipy.stats.t`)."""
    _check_df(df)
    from scipy import stats

    return float(stats.t.cdf(t, df))


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t, the inverse of :func:`t_cdf` (:data:`scipy.stats.t`)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile needs 0 < p < 1, got {p}")
    _check_df(df)
    from scipy import stats

    return float(stats.t.ppf(p, df))


# --- intervals --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval at ``level`` (fractions, not percent)."""

    estimate: float
    low: float
    high: float
    level: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(level)


def _bool_vector(x, name: str) -> np.ndarray:
    if hasattr(x, "correct") and not isinstance(x, np.ndarray):   # a VerificationResult
        x = x.correct
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector of per-pair correctness, got shape {x.shape}")
    if x.dtype != bool:
        if not np.all(np.isin(np.unique(x), (0, 1))):
            raise ValueError(f"{name} must be boolean or 0/1")
        x = x.astype(bool)
    return x


def fold_ci(fold_accuracies, level: float = 0.95) -> Interval:
    """t-interval for the mean fold accuracy: ``mean ± t_{k-1}((1+level)/2) · std(ddof=1) / sqrt(k)``."""
    level = _check_level(level)
    a = np.asarray(getattr(fold_accuracies, "fold_accuracies", fold_accuracies), dtype=np.float64)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"fold_ci needs at least 2 fold accuracies, got {a.size}")
    k = a.size
    mean = float(a.mean())
    half = t_quantile((1.0 + level) / 2.0, k - 1) * float(a.std(ddof=1)) / math.sqrt(k)
    return Interval(mean, mean - half, mean + half, level, f"t-interval over {k} folds")


def bootstrap_accuracy_ci(correct, *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the accuracy, resampling pairs (``correct``: per-pair booleans or a
    :class:`~fr.eval.verification.VerificationResult`). Deterministic for a given ``seed``."""
    level = _check_level(level)
    c = _bool_vector(correct, "correct")
    n, k = c.size, int(c.sum())
    rng = np.random.default_rng(seed)
    acc = rng.binomial(n, k / n, size=int(n_boot)) / n
    lo, hi = np.quantile(acc, [(1 - level) / 2, (1 + level) / 2])
    return Interval(k / n, float(lo), float(hi), level, f"percentile bootstrap over {n} pairs, B={n_boot}, "
                                                         f"seed={seed}")


# --- paired comparisons -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairedTest:
    """Model A against model B on the same pairs.

    diff = acc_A - acc_B; ``a_only``/``b_only``: pairs only A / only B got right (the discordant pairs);
    ``ci_low``/``ci_high``: interval of the difference (NaN where the test gives none)."""

    method: str
    diff: float
    p_value: float
    ci_low: float
    ci_high: float
    level: float
    n_pairs: int
    a_only: int
    b_only: int

    def to_dict(self) -> dict:
        return asdict(self)


def _paired(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _bool_vector(correct_a, "correct_a"), _bool_vector(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"paired tests need the same pairs: got {a.size} and {b.size} pairs")
    sa, sb = getattr(correct_a, "sha256", None), getattr(correct_b, "sha256", None)
    if sa and sb and sa != sb:
        raise ValueError(f"paired tests need the same pairs: data sha256 differ ({sa[:12]}… vs {sb[:12]}…)")
    return a, b


def binom_cdf_half(k: int, n: int) -> float:
    """``P[Binomial(n, 1/2) <= k]`` (:data:`scipy.stats.binom`), for any ``n, k >= 0``."""
    if n < 0 or k < 0:
        raise ValueError(f"need n, k >= 0, got n={n}, k={k}")
    from scipy import stats

    return float(stats.binom.cdf(k, n, 0.5))


def mcnemar_test(correct_a, correct_b) -> PairedTest:
    """Exact (binomial) McNemar test of equal accuracy on the same pairs. ``p = 1`` when no pair is discordant."""
    a, b = _paired(correct_a, correct_b)
    n01, n10 = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    n = n01 + n10
    p = 1.0 if n == 0 else min(1.0, 2.0 * binom_cdf_half(min(n01, n10), n))
    return PairedTest("McNemar exact binomial", (n01 - n10) / a.size, p, math.nan, math.nan, math.nan,
                      int(a.size), n01, n10)


def paired_bootstrap(correct_a, correct_b, *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> PairedTest:
    """Paired bootstrap of ``acc_A - acc_B`` over pairs: percentile CI and a two-sided p-value from the
    bootstrap distribution centred on the null (module docstring). Deterministic for a given ``seed``."""
    level = _check_level(level)
    a, b = _paired(correct_a, correct_b)
    n = a.size
    n01, n10 = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(~a & b))
    d = (n01 - n10) / n
    rng = np.random.default_rng(seed)
    probs = np.array([n01, n10, n - n01 - n10], dtype=np.float64) / n
    counts = rng.multinomial(n, probs, size=int(n_boot))
    boot = (counts[:, 0] - counts[:, 1]) / n
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    p = (1 + int(np.count_nonzero(np.abs(boot - d) >= abs(d) - 1e-15))) / (1 + int(n_boot))
    return PairedTest(f"paired bootstrap over {n} pairs, B={n_boot}, seed={seed}", d, float(p), float(lo),
                      float(hi), level, n, n01, n10)


def compare(result_a, result_b, *, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> dict[str, PairedTest]:
    """Both paired tests for two :class:`~fr.eval.verification.VerificationResult` on the same pairs."""
    return {"mcnemar": mcnemar_test(result_a, result_b),
            "bootstrap": paired_bootstrap(result_a, result_b, level=level, n_boot=n_boot, seed=seed)}
