"""Recipe studies: how noisy is a training recipe across seeds, and what difference can it detect?

A recipe is judged on seed-paired runs of two heads (by default CosFace and ArcFace, the comparison most
papers start from): for each metric, the mean and seed-to-seed standard deviation of each head, the mean
and standard deviation of the per-seed paired difference, and the minimum detectable difference
(:func:`fr.power.min_detectable_difference`) of a paired t-test at 3 and at 5 seeds. Everything is read from
recorded runs (:func:`fr.results.load_runs`); nothing is trained here.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .power import min_detectable_difference, summarise_seeds

__all__ = ["GOALS", "metric_columns", "recipe_goals", "recipe_table", "trial_table"]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The rate columns of a :func:`~fr.results.load_runs` table that have values: verification accuracy
    (``<set>.accuracy``), all-pairs TAR (``<set>.tar@<far>``) and identification rank-k (``<set>.rank<k>``)."""
    import re

    pat = re.compile(r"\.(accuracy|tar@[0-9e.+-]+|rank\d+)$")
    return [c for c in runs.columns if pat.search(c) and runs[c].notna().any()]


def recipe_table(runs_by_recipe: Mapping[str, pd.DataFrame], *, heads: tuple[str, str] = ("cosface", "arcface"),
                 metrics: Iterable[str] | None = None, mdd_seeds: Iterable[int] = (3, 5),
                 alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """One row per (recipe, metric): per-head mean/std over seeds, the paired difference ``heads[1] -
    heads[0]`` over the seeds both heads have, its std, and the minimum detectable difference at each of
    ``mdd_seeds`` seeds. Metrics are fractions in the records and percentage points here.

    ``runs_by_recipe`` maps a recipe label to its runs (rows of :func:`~fr.results.load_runs`, any seeds)."""
    base, other = heads
    rows = []
    for recipe, runs in runs_by_recipe.items():
        runs = runs[runs["head"].isin(heads) & (runs["steps"].fillna(0) > 0)]
        cols = list(metrics) if metrics is not None else metric_columns(runs)
        for col in cols:
            if col not in runs.columns:
                continue
            wide = runs.pivot_table(index="seed", columns="head", values=col, aggfunc="first") * 100
            row = {"recipe": recipe, "metric": col.removesuffix(".accuracy")}
            wide = wide.astype(float)
            for h in heads:
                s = summarise_seeds(wide[h]) if h in wide else summarise_seeds([])
                row.update({f"{h}_n": s.n, f"{h}_mean": s.mean, f"{h}_std": s.std})
            paired = wide.dropna(subset=[h for h in heads if h in wide]) if set(heads) <= set(wide) else None
            d = summarise_seeds((paired[other] - paired[base]) if paired is not None else [])
            row.update({"paired_n": d.n, "diff_mean": d.mean, "diff_std": d.std})
            for n in mdd_seeds:
                row[f"mdd_{n}_seeds"] = min_detectable_difference(d.std, n, alpha=alpha, power=power)
            t = runs.groupby("head")[["train_time_s", "wall_time_s"]].mean()
            row["train_time_s"] = float(t["train_time_s"].mean()) if len(t) else np.nan
            row["run_time_s"] = float(t["wall_time_s"].mean()) if len(t) else np.nan
            # the shortest run had the machine (nearly) to itself: the mean includes runs slowed by other work
            row["run_time_min_s"] = float(runs["wall_time_s"].min()) if runs["wall_time_s"].notna().any() else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


#: the recipe's goals (issue "a CPU recipe quiet enough to tell heads apart"): seed-to-seed std of LFW accuracy,
#: std of the paired ArcFace-minus-CosFace difference, LFW mean (all in points), one run's wall time (s)
GOALS = {"lfw_std_max": 0.5, "diff_std_max": 0.7, "lfw_mean_min": 85.0, "run_time_max_s": 600.0}


def recipe_goals(table: pd.DataFrame, goals: Mapping[str, float] = GOALS, *, metric: str = "lfw",
                 heads: tuple[str, str] = ("cosface", "arcface")) -> pd.DataFrame:
    """For each recipe of a :func:`recipe_table`, whether it meets each goal on ``metric`` (``None`` where the
    seeds recorded cannot tell yet: fewer than 2 per head, or no paired seeds). The time goal is judged on the
    shortest recorded run (``run_time_min_s``: the machine to itself; the mean of a shared machine's runs is an
    upper bound), or on the mean for a table without it."""
    time_col = "run_time_min_s" if "run_time_min_s" in table else "run_time_s"
    rows = []
    for _, r in table[table["metric"] == metric].iterrows():
        stds = [r[f"{h}_std"] for h in heads]
        means = [r[f"{h}_mean"] for h in heads]
        ok = lambda v, test: None if not np.isfinite(v) else bool(test(v))  # noqa: E731
        rows.append({
            "recipe": r["recipe"], "seeds": int(min(r[f"{h}_n"] for h in heads)),
            "lfw std (max over heads)": max(stds), "meets std": ok(max(stds), lambda v: v <= goals["lfw_std_max"]),
            "paired diff std": r["diff_std"], "meets diff std": ok(r["diff_std"], lambda v: v <= goals["diff_std_max"]),
            "lfw mean (min over heads)": min(means),
            "meets mean": ok(min(means), lambda v: v >= goals["lfw_mean_min"]),
            "run time (s, shortest)": r[time_col],
            "meets time": ok(r[time_col], lambda v: v <= goals["run_time_max_s"]),
        })
    return pd.DataFrame(rows)


def trial_table(runs: pd.DataFrame, configs: Mapping[str, Any]) -> pd.DataFrame:
    """The recipe trials (runs of one head and seed that differ in augmentation or weight averaging): what
    each changed and its LFW accuracy. ``configs`` maps run ids to their :class:`~fr.config.ExperimentCfg`."""
    rows = []
    for _, r in runs.iterrows():
        cfg = configs[r["run_id"]]
        a = cfg.data.augment
        aug = ", ".join(f"{k} {getattr(a, k)}" for k in ("p_gray", "p_crop", "p_lowres", "p_photo") if getattr(a, k))
        rows.append({"run": r["run_id"], "head": r["head"], "seed": r["seed"], "augmentation": aug or "flip only",
                     "weight EMA": cfg.optim.ema_decay or "no", "epochs": cfg.schedule.epochs,
                     "LFW %": 100 * r["lfw.accuracy"], "train s": r["train_time_s"], "run s": r["wall_time_s"]})
    return pd.DataFrame(rows)
