"""Tables and plots for the book, built only from runs recorded under ``results/`` (no training here).

A results notebook calls :func:`run_grid` in ``full`` mode (which trains what is missing, or finds what is
recorded) and the functions below in every mode:

* :func:`per_run_table`: one row per run and verification set: accuracy, fold spread, bootstrap CI;
* :func:`per_head_table`: mean and spread over seeds;
* :func:`paired_table`: each head against a baseline on the same pairs and seed (McNemar, paired bootstrap);
* :func:`format_params`: a head's parameters as a table cell (``s=30, m=0.35``), not a JSON string;
* :func:`plot_accuracies`, :func:`plot_training_curves` (figures built without pyplot: a notebook displays
  the returned object once, a script calls ``fig.savefig``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .eval.stats import bootstrap_accuracy_ci, mcnemar_test, paired_bootstrap
from .envinfo import short_version
from .eval.verification import correct_from_hex
from .heads import head_info, list_heads
from .results import RunMetrics, load_run, load_runs, runs_root
from .train import run


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + format_params(v) + "}"
    return str(v)


def format_params(params: Mapping[str, Any] | str | None, head: str | None = None) -> str:
    """A head's parameters as a readable table cell: ``format_params({"s": 30.0, "m": 0.35}) == "s=30, m=0.35"``.

    ``params`` is a mapping or its JSON text (the ``head_params`` column of :func:`~fr.results.load_runs`, whose
    keys are sorted); given the ``head``, its parameters follow the order of the head's defaults (``s`` before
    ``m``, as the papers write them), the others after in the given order. Floats print in their shortest form
    (30.0 -> ``30``); no parameters give ``""``."""
    if params is None:
        return ""
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(f"head parameters are not JSON: {params!r} ({e})") from None
    if not isinstance(params, Mapping):
        raise TypeError(f"head parameters must be a mapping or its JSON text, got {type(params).__name__}: {params!r}")
    order = list(head_info(head)["defaults"]) if head in list_heads() else []
    keys = sorted(params, key=lambda k: order.index(k) if k in order else len(order))
    return ", ".join(f"{k}={_fmt_value(params[k])}" for k in keys)


def run_grid(config: str | Path, rows: dict[str, dict[str, Any]], seeds: Iterable[int], *,
             overrides: dict[str, Any] | None = None, results_root: str | Path | None = None, progress=None):
    """Train (or find, when already recorded) one run per ``(row, seed)``.

    ``rows`` maps a row id to dotted overrides, e.g. ``{"arcface": {"head.name": "arcface",
    "head.params": {"s": 30.0, "m": 0.5}}}``; ``overrides`` apply to every row. Returns the run records."""
    records = []
    for row in rows.values():
        for seed in seeds:
            ov = {**(overrides or {}), **row, "runtime.seed": int(seed)}
            records.append(run(config, overrides=ov, results_root=results_root, progress=progress))
    return records


def _metrics(run_id: str, root=None) -> RunMetrics:
    rec = load_run(runs_root(root) / run_id)
    if rec.metrics is None:
        raise ValueError(f"run {run_id} is {rec.status}: no metrics.json in {rec.path}")
    return rec.metrics


def load_correct(run_id: str, set_name: str, root=None) -> np.ndarray:
    """The per-pair correctness vector a run recorded for one verification set."""
    m = _metrics(run_id, root).metrics[set_name]
    if "correct_hex" not in m:
        raise KeyError(f"run {run_id} did not record per-pair results for {set_name}")
    return correct_from_hex(m["correct_hex"], int(m["n_pairs"]))


def select_runs(name: str | None = None, *, root=None, heads: Iterable[str] | None = None) -> pd.DataFrame:
    """Complete runs of experiment ``name`` (optionally of these heads), sorted; runs of 0 steps (the
    untrained initialisation, a chance reference) are kept and labelled ``untrained``."""
    df = load_runs(root, name=name)
    if df.empty:
        return df
    # a run of 0 steps evaluates the initialisation: the chance reference, whatever head it names
    untrained = df["steps"].fillna(-1) == 0
    if heads is not None:
        df = df[df["head"].isin(list(heads)) | untrained]
        untrained = df["steps"].fillna(-1) == 0
    df = df.copy()
    df.loc[untrained, "head"] = "untrained"
    df.loc[untrained, "head_params"] = "{}"
    return df.sort_values(["head", "head_params", "seed"]).reset_index(drop=True)


def per_run_table(runs: pd.DataFrame, sets: Iterable[str], *, root=None, level: float = 0.95) -> pd.DataFrame:
    """Accuracy (%) per run and set, with the fold spread and a bootstrap CI over pairs."""
    out = []
    for _, r in runs.iterrows():
        for s in sets:
            if f"{s}.accuracy" not in r or pd.isna(r.get(f"{s}.accuracy")):
                continue
            ci = bootstrap_accuracy_ci(load_correct(r["run_id"], s, root), level=level)
            out.append({"head": r["head"], "params": format_params(r["head_params"], r["head"]),
                        "seed": r["seed"], "set": s,
                        "accuracy": 100 * r[f"{s}.accuracy"], "fold_std": 100 * r[f"{s}.spread"],
                        "ci_low": 100 * ci.low, "ci_high": 100 * ci.high, "pairs": r[f"{s}.n_pairs"],
                        "protocol": r[f"{s}.protocol"], "run_id": r["run_id"]})
    return pd.DataFrame(out)


def per_head_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy (%) over seeds, with the standard deviation over seeds and the mean fold spread."""
    g = per_run.groupby(["head", "params", "set"], sort=False)
    t = g.agg(seeds=("seed", "nunique"), mean=("accuracy", "mean"), seed_std=("accuracy", "std"),
              fold_std=("fold_std", "mean"), min=("accuracy", "min"), max=("accuracy", "max")).reset_index()
    return t.pivot_table(index=["head", "params"], columns="set",
                         values=["mean", "seed_std", "fold_std", "seeds"], sort=False).round(2)


def paired_table(per_run: pd.DataFrame, baseline: str, *, root=None, level: float = 0.95) -> pd.DataFrame:
    """Each run against the baseline head's run with the same seed, on the same pairs: the difference in
    accuracy (points), McNemar's exact p-value and a paired-bootstrap CI of the difference."""
    out = []
    base = per_run[per_run["head"] == baseline]
    for _, r in per_run[per_run["head"] != baseline].iterrows():
        b = base[(base["seed"] == r["seed"]) & (base["set"] == r["set"])]
        if b.empty:
            continue
        b = b.iloc[0]
        ca, cb = load_correct(r["run_id"], r["set"], root), load_correct(b["run_id"], r["set"], root)
        mc, pb = mcnemar_test(ca, cb), paired_bootstrap(ca, cb, level=level)
        out.append({"head": r["head"], "params": r["params"], "seed": r["seed"], "set": r["set"],
                    f"delta_vs_{baseline}": 100 * (ca.mean() - cb.mean()), "ci_low": 100 * pb.ci_low,
                    "ci_high": 100 * pb.ci_high, "mcnemar_p": mc.p_value, "discordant": mc.a_only + mc.b_only})
    return pd.DataFrame(out)


def head_effects(paired: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per head and set, the per-seed differences from the baseline summarised over seeds.

    A per-seed McNemar test compares two *trained models* on the same pairs; it ignores how much training
    itself varies from seed to seed. So an effect is called ``consistent`` only when every seed's paired
    interval excludes 0 on the same side; otherwise the head is not distinguishable from the baseline."""
    col = f"delta_vs_{baseline}"
    out = []
    for (head, params, set_name), g in paired.groupby(["head", "params", "set"], sort=False):
        pos, neg = (g["ci_low"] > 0).all(), (g["ci_high"] < 0).all()
        out.append({"head": head, "params": params, "set": set_name, "seeds": len(g),
                    "mean_delta": g[col].mean(), "min_delta": g[col].min(), "max_delta": g[col].max(),
                    "verdict": ("better" if pos else "worse" if neg else "not distinguishable")
                    if len(g) > 1 else "one seed only"})
    return pd.DataFrame(out)


def findings_markdown(per_run: pd.DataFrame, effects: pd.DataFrame, baseline: str, *,
                      reference: str = "untrained") -> str:
    """What the recorded runs show, in sentences whose every number is computed from the runs."""
    lines = []
    trained = per_run[per_run["head"] != reference]
    for set_name in dict.fromkeys(per_run["set"]):
        t = trained[trained["set"] == set_name]
        if t.empty:
            continue
        means = t.groupby("head")["accuracy"].mean()
        seed_std = t.groupby("head")["accuracy"].std().mean()
        text = (f"**{set_name}**: the trained heads average {means.min():.2f}% to {means.max():.2f}% "
                f"(mean seed-to-seed standard deviation {seed_std:.2f} points)")
        ref = per_run[(per_run["head"] == reference) & (per_run["set"] == set_name)]
        if not ref.empty:
            gain = t["accuracy"].mean() - ref["accuracy"].mean()
            text += (f"; the untrained network scores {ref['accuracy'].mean():.2f}%, so training adds "
                     f"{gain:+.2f} points")
            if gain < 2 * max(seed_std, t["fold_std"].mean() / np.sqrt(10)):
                text += " — no more than the noise: at this scale the recipe does not learn this set"
        e = effects[(effects["set"] == set_name) & (effects["head"] != reference)] if not effects.empty else effects
        if not e.empty:
            parts = [f"{r.head} {r.mean_delta:+.2f} ({r.verdict})" for r in e.itertuples()]
            text += f". Against {baseline}, averaged over seeds: " + ", ".join(parts)
        lines.append(f"- {text}.")
    return "\n".join(lines)


def plot_accuracies(per_run: pd.DataFrame, *, chance: float = 50.0):
    """Accuracy per head and set: one dot per seed with its bootstrap CI."""
    sets = list(dict.fromkeys(per_run["set"]))
    fig = Figure(figsize=(4.5 * len(sets), 0.45 * per_run["head"].nunique() + 1.8))
    axes = fig.subplots(1, len(sets), squeeze=False)
    heads = list(dict.fromkeys(per_run["head"]))
    for ax, s in zip(axes[0], sets, strict=True):
        d = per_run[per_run["set"] == s]
        for i, h in enumerate(heads):
            dh = d[d["head"] == h]
            off = np.linspace(-0.15, 0.15, max(len(dh), 1))
            ax.errorbar(dh["accuracy"], i + off, xerr=[dh["accuracy"] - dh["ci_low"], dh["ci_high"] - dh["accuracy"]],
                        fmt="o", capsize=2, color=f"C{i}")
        ax.set_yticks(range(len(heads)), heads)
        ax.set_title(s)
        ax.set_xlabel("accuracy (%)")
        ax.axvline(chance, color="0.7", ls=":", lw=1)
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def plot_training_curves(runs: pd.DataFrame, *, root=None, column: str = "loss", smooth: int = 10):
    """Training ``column`` (loss, acc) per step from each run's ``train_log.csv``, one line per run."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    heads = list(dict.fromkeys(runs["head"]))
    for _, r in runs.iterrows():
        path = runs_root(root) / r["run_id"] / "train_log.csv"
        if not path.exists():  # an untrained reference has no log
            continue
        log = pd.read_csv(path)
        y = log[column].rolling(smooth, min_periods=1).mean()
        ax.plot(log["step"], y, color=f"C{heads.index(r['head'])}", alpha=0.8,
                label=f"{r['head']} (seed {r['seed']})")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{column} (rolling mean of {smooth})")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def engine_runs_table(prefix: str = "gpu_", *, root=None) -> pd.DataFrame:
    """The recorded runs whose experiment name starts with ``prefix`` (the paper-scale configs run on a GPU),
    one row each: what ran (config paper, backbone, head, Partial FC rate, batch, precision, launcher and
    backend), how it trained (steps, train time, images/s, first and last logged loss) and its verification
    accuracy per set with the fold std, the number of pairs and the data's sha256 prefix."""
    df = load_runs(root)
    df = df[df["name"].fillna("").str.startswith(prefix)]
    sets = [c[:-len(".accuracy")] for c in df.columns if c.endswith(".accuracy")]
    rows = []
    for _, r in df.iterrows():
        log_path = runs_root(root) / r["run_id"] / "train_log.csv"
        log = pd.read_csv(log_path, usecols=["loss"], nrows=1) if log_path.exists() else None
        row = {"run_id": r["run_id"], "paper": r["paper"], "seed": r["seed"], "backbone": r["backbone"],
               "head": r["head"], "sample_rate": r["sample_rate"], "batch": r["batch_size"], "amp": r["amp"],
               "launch": (f"torchrun, {r['world_size']} rank(s), {r['dist_backend']}"
                          if isinstance(r["dist_backend"], str) else "single process"),
               "device": r["gpu"] if isinstance(r["gpu"], str) else r["device"], "steps": r["steps"],
               "train_time_s": r["train_time_s"], "images_per_s": r["images_per_s"],
               "first_loss": float(log["loss"].iloc[0]) if log is not None and len(log) else None,
               "final_loss": r["final_loss"], "git_sha": short_version(r["git_sha"], r["git_dirty"])}
        for s in sets:
            if pd.notna(r[f"{s}.accuracy"]):
                row.update({f"{s} %": 100 * r[f"{s}.accuracy"], f"{s} std": 100 * r[f"{s}.spread"],
                            f"{s} pairs": r[f"{s}.n_pairs"], f"{s} sha256": str(r[f"{s}.sha256"])[:12]})
        rows.append(row)
    return pd.DataFrame(rows)


