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

__all__ = ["GOALS", "metric_columns", "recipe_goals", "recipe_table", "run_time_split", "trade_off_markdown",
           "trial_table"]


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The rate columns of a :func:`~fr.results.load_runs` table that have values: verification accuracy
    (``<set>.accuracy``), all-pairs TAR (``<set>.tar@<far>``) and identification rank-k (``<set>.rank<k>``)."""
    import re

    pat = re.compile(r"\.(accuracy|tar@[0-9e.+-]+|rank\d+)$")
    return [c for c in runs.columns if pat.search(c) and runs[c].notna().any()]


def recipe_table(runs_by_recipe: Mapping[str, pd.DataFrame], *, heads: tuple[str, str] = ("cosface", "arcface"),
                 run_times: Mapping[str, pd.DataFrame] | None = None, metrics: Iterable[str] | None = None,
                 mdd_seeds: Iterable[int] = (3, 5), alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """One row per (recipe, metric): per-head mean/std over seeds, the paired difference ``heads[1] -
    heads[0]`` over the seeds both heads have, its std, and the minimum detectable difference at each of
    ``mdd_seeds`` seeds. Metrics are fractions in the records and percentage points here.

    ``runs_by_recipe`` maps a recipe label to its runs (rows of :func:`~fr.results.load_runs`, any seeds and
    heads; at most one run per head and seed: the caller picks the heads' exact configs). The times:
    ``train_time_s`` and ``run_time_s``, the means over the two heads' runs; ``run_time_min_s``, the shortest
    trained run of the recipe, any head, in ``run_times[recipe]`` when given (else in ``runs_by_recipe``)."""
    base, other = heads
    rows = []
    for recipe, runs in runs_by_recipe.items():
        # one run of the recipe, whatever its head: the shortest had the machine (nearly) to itself, while the
        # mean includes runs slowed by other work
        timed = runs if run_times is None else run_times.get(recipe, runs)
        timed = timed[timed["steps"].fillna(0) > 0]
        quickest = float(timed["wall_time_s"].min()) if timed["wall_time_s"].notna().any() else np.nan
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
            row["run_time_min_s"] = quickest
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
        # NaN (a head with too few seeds) must win: builtin max/min would depend on the order
        worst_std, worst_mean = float(np.max(stds)), float(np.min(means))
        ok = lambda v, test: None if not np.isfinite(v) else bool(test(v))  # noqa: E731
        rows.append({
            "recipe": r["recipe"], "seeds": int(min(r[f"{h}_n"] for h in heads)),
            "lfw std (max over heads)": worst_std, "meets std": ok(worst_std, lambda v: v <= goals["lfw_std_max"]),
            "paired diff std": r["diff_std"], "meets diff std": ok(r["diff_std"], lambda v: v <= goals["diff_std_max"]),
            "lfw mean (min over heads)": worst_mean,
            "meets mean": ok(worst_mean, lambda v: v >= goals["lfw_mean_min"]),
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


def run_time_split(runs_by_recipe: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per recipe, its shortest complete trained run of any head (the machine nearly to itself) split into
    training and final evaluation (``wall_time_s - train_time_s``), with the protocols that evaluation covered,
    how many trained runs of the recipe are recorded and their median wall time. ``runs_by_recipe`` as for
    :func:`recipe_table`."""
    rows = []
    for recipe, runs in runs_by_recipe.items():
        runs = runs[(runs["steps"].fillna(0) > 0) & runs["wall_time_s"].notna() & runs["train_time_s"].notna()]
        if runs.empty:
            continue
        r = runs.loc[runs["wall_time_s"].idxmin()]
        sets = sorted({c.split(".")[0] for c in metric_columns(runs) if pd.notna(r.get(c))})
        rows.append({"recipe": recipe, "runs": len(runs), "shortest run": r["run_id"], "head": r["head"],
                     "run s": float(r["wall_time_s"]), "train s": float(r["train_time_s"]),
                     "evaluation s": float(r["wall_time_s"] - r["train_time_s"]), "protocols": len(sets),
                     "protocol names": " ".join(sets), "median run s": float(runs["wall_time_s"].median())})
    return pd.DataFrame(rows, columns=["recipe", "runs", "shortest run", "head", "run s", "train s", "evaluation s",
                                      "protocols", "protocol names", "median run s"])


def _met(x) -> bool | None:
    """A goal's cell of :func:`recipe_goals` as True, False or None (undecided), whatever pandas made of it."""
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else bool(x)


def _protocols(n) -> str:
    return f"{int(n)} protocol{'' if int(n) == 1 else 's'}"


def _verdict(x) -> str:
    return {True: "met", False: "not met", None: "undecided with the seeds recorded"}[_met(x)]


def trade_off_markdown(goals: pd.DataFrame, split: pd.DataFrame, recipe: str, *, baseline: str | None = None,
                       anchor_lfw: float | None = None, anchor: str = "", setting: str = "",
                       limits: Mapping[str, float] = GOALS) -> str:
    """What ``recipe`` bought and what limits it, as markdown computed from :func:`recipe_goals` (``goals``) and
    :func:`run_time_split` (``split``): the spread goals against ``baseline``'s, the time goal split into training
    and evaluation with the median beside the shortest run, and the LFW mean against a pretrained anchor's
    accuracy on the same pairs (``anchor_lfw``, percent; ``setting`` describes our model and data). Only what the
    tables hold is said; a goal they cannot decide is named as such, and a cause is offered as the likely one."""
    g = goals.set_index("recipe")
    if recipe not in g.index:
        return f"*No study of `{recipe}` is recorded yet.*"
    r = g.loc[recipe]
    b = g.loc[baseline] if baseline is not None and baseline in g.index else None
    out = [_spread_text(r, b, recipe, baseline, limits)]
    sp = split.set_index("recipe")
    if recipe in sp.index:
        out.append(_time_text(sp.loc[recipe], sp.loc[baseline] if baseline in sp.index else None, baseline,
                              limits["run_time_max_s"]))
    mean, goal = r["lfw mean (min over heads)"], limits["lfw_mean_min"]
    text = (f"**Accuracy.** LFW's mean is {mean:.2f}% for the weaker head; the goal is {goal:g}%, "
            f"{_verdict(r['meets mean'])}.")
    if anchor_lfw is not None and _met(r["meets mean"]) is False and anchor_lfw >= goal:
        text += (f" The pairs allow more: {anchor or 'a pretrained model'} scores {anchor_lfw:.2f}% on the same "
                 f"`lfw.bin` with the same protocol. What holds ours back is then most likely the model and its "
                 f"training{f' ({setting})' if setting else ''}, which the trials above (augmentation, weight "
                 f"averaging) left as they were.")
    out.append(text)
    return "\n\n".join(out)


def _spread_text(r, b, recipe: str, baseline: str | None, limits: Mapping[str, float]) -> str:
    def num(x) -> str:
        return "undecided" if not np.isfinite(x) else f"{x:.2f}"

    spread = (f"LFW's seed-to-seed std is at most {num(r['lfw std (max over heads)'])} points over the two heads "
              f"and the paired difference's std {num(r['paired diff std'])}")
    if b is not None:
        spread += (f" (`{baseline}`: {num(b['lfw std (max over heads)'])} and {num(b['paired diff std'])}, "
                   f"over {int(b['seeds'])} seeds)")
    states = {f"std ≤ {limits['lfw_std_max']:g}": _met(r["meets std"]),
              f"difference's std ≤ {limits['diff_std_max']:g}": _met(r["meets diff std"])}
    said = "; ".join(f"{k}: {_verdict(v)}" for k, v in states.items())
    return f"**Spread.** With {int(r['seeds'])} seeds of `{recipe}`, {spread}. Goals (points): {said}."


def _time_text(t, v, baseline: str | None, goal: float) -> str:
    run, train, ev, median = t["run s"], t["train s"], t["evaluation s"], t["median run s"]
    text = (f"**Time.** The shortest of {int(t['runs'])} recorded runs (`{t['shortest run']}`, {t['head']}) took "
            f"{run:.0f} s: {train:.0f} s of training and {ev:.0f} s for the final evaluation of "
            f"{_protocols(t['protocols'])}. ")
    if run <= goal:
        text += f"That is within the {goal:.0f} s goal, by {goal - run:.0f} s."
    else:
        text += f"That misses the {goal:.0f} s goal by {run - goal:.0f} s; "
        text += ("training alone fits it, and the final evaluation of every protocol (one embedding pass) takes it "
                 "over." if train <= goal else f"training alone exceeds it by {train - goal:.0f} s.")
        if v is not None:
            text += (f" `{baseline}` evaluated {_protocols(v['protocols'])} in {v['evaluation s']:.0f} s (its "
                     f"shortest run: {v['run s']:.0f} s).")
    if t["runs"] > 1 and median > 1.1 * run:
        text += (f" The median run took {median:.0f} s{' (over the goal)' if median > goal >= run else ''}: the "
                 f"timings vary with what else the machine was doing, and the least of many timings is an "
                 f"optimistic figure, so the goal {'holds only on a quiet machine' if run <= goal else 'is missed'}.")
    return text

