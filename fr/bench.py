"""The Speed chapter's goals, checked against the benchmark records under ``results/bench/`` (computed, never typed).

Each benchmark script in ``benchmarks/`` times our code and a plain reference in the same run and writes a CSV.
This module reads those files and answers the goals of the speed work:

* training step (``bench_train.py``, ``train_cpu*.csv``): at least :data:`TRAIN_GOAL` times the reference
  loop's images/s on the CPU recipe's configuration;
* training input pipeline (``bench_loader.py``, ``loader*.csv``): at least :data:`LOADER_GOAL` times the plain
  per-sample Pillow loop's images/s per worker;
* embedding extraction (``bench_eval_suite.py``, ``eval_suite.csv``, ``kind=embed``): at least
  :data:`EMBED_GOAL` times the old path's images/s;
* the final evaluation (same file, ``kind=final_eval``): the whole suite costs no more than
  :data:`FINAL_EVAL_GOAL` times today's LFW + CFP-FP evaluation alone.

Each ``*_check`` returns a :class:`GoalCheck` (goal, best ratio reached and by what, met or not); each
``*_lines`` returns markdown bullet lines that say it with the figures behind it, the load average the file was
recorded under and the command that re-records it. The machine these files come from is shared with a training
queue: a load average above the core count means every figure was contended for the CPU.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd
from matplotlib.figure import Figure

TRAIN_GOAL = 4.5        #: training step: images/s over the reference loop
LOADER_GOAL = 3.0       #: input pipeline: images/s per worker over the per-sample Pillow loop
EMBED_GOAL = 2.0        #: embedding: images/s over the old extraction path
FINAL_EVAL_GOAL = 1.0   #: final evaluation: the suite's wall time over today's LFW + CFP-FP evaluation (at most)

#: the recorded run whose final model ``eval_suite.csv`` embeds
EVAL_SUITE_RUN = "results/runs/celeba_v2-9cf0c29e"

#: the command that re-records each file (from the repository root)
RERUN = {
    "train_cpu": "python benchmarks/bench_train.py --configs recipe",
    "train_cpu_compile": "python benchmarks/bench_train.py --configs recipe --variants eager,compile,"
                         "compile_autotune --steps 4 --out results/bench/train_cpu_compile.csv",
    "train_cpu_bf16": "python benchmarks/bench_train.py --configs recipe --variants eager,bf16 --steps 1 "
                      "--rounds 1 --out results/bench/train_cpu_bf16.csv",
    "loader": "python benchmarks/bench_loader.py",
    "loader_adaface": "python benchmarks/bench_loader.py --augment adaface",
    "eval_suite": f"python benchmarks/bench_eval_suite.py --run {EVAL_SUITE_RUN}",
}


@dataclass(frozen=True)
class GoalCheck:
    """One goal against the records: ``best`` is the best ratio reached (``None``: not measured)."""

    goal: str
    target: float
    best: float | None
    by: str
    files: str
    at_most: bool = False   # the goal is an upper bound (a cost), not a lower one (a speed-up)

    @property
    def met(self) -> bool | None:
        if self.best is None:
            return None
        return self.best <= self.target if self.at_most else self.best >= self.target

    @property
    def verdict(self) -> str:
        return {None: "not measured", True: "met", False: "not met"}[self.met]


def read(bench_dir: str | Path, name: str) -> pd.DataFrame | None:
    """``<bench_dir>/<name>.csv`` as a frame, or ``None`` when that benchmark has not been recorded."""
    p = Path(bench_dir) / f"{name}.csv"
    return pd.read_csv(p) if p.exists() else None


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: columns {missing} are missing (has {list(df.columns)}); "
                         "was it written by another version of its benchmark script?")


def load_range(df: pd.DataFrame) -> tuple[float, float] | None:
    """The lowest and highest 1-minute load average a benchmark file records, or ``None`` if it records none.

    ``bench_train.py`` and ``bench_loader.py`` write ``loadavg_start``/``loadavg_end``; ``bench_eval_suite.py``
    writes ``load_avg_1m`` as ``"low-high"`` per row."""
    if {"loadavg_start", "loadavg_end"} <= set(df.columns):
        v = pd.concat([df["loadavg_start"], df["loadavg_end"]]).astype(float).dropna()
        return (float(v.min()), float(v.max())) if len(v) else None
    if "load_avg_1m" in df.columns:
        v = []
        for s in df["load_avg_1m"].dropna().astype(str):
            m = re.fullmatch(r"\s*([0-9.]+)\s*-\s*([0-9.]+)\s*", s)
            if not m:
                raise ValueError(f"load_avg_1m: expected 'low-high', got {s!r}")
            v += [float(m[1]), float(m[2])]
        return (min(v), max(v)) if v else None
    return None


def _cores(df: pd.DataFrame) -> int | None:
    for c in ("cores", "cpu_count", "threads"):
        if c in df.columns and df[c].notna().any():
            return int(df[c].dropna().iloc[0])
    return None


def contention_line(name: str, df: pd.DataFrame) -> str:
    """Whether ``name``'s figures were contended (load average above the core count), and how to re-record them."""
    lo_hi, cores = load_range(df), _cores(df)
    rerun = f"re-record on a quiet machine with `{RERUN[name]}`" if name in RERUN else "re-record it on a quiet machine"
    if lo_hi is None or cores is None:
        return f"`{name}.csv` records no load average: its figures may be contended; {rerun}."
    lo, hi = lo_hi
    if hi > cores:
        return (f"`{name}.csv` was recorded under a load average of {lo:.1f} to {hi:.1f} on {cores} cores: its "
                f"figures are contended (interleaved rounds spread the other jobs' load over the variants alike, but "
                f"times and ratios move with it); {rerun}.")
    return f"`{name}.csv` was recorded under a load average of {lo:.1f} to {hi:.1f} on {cores} cores (quiet)."


def _stack(frames: Mapping[str, pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The ``columns`` of every file's records (each checked for them), one table with the file's name first."""
    parts = []
    for name, df in frames.items():
        _require(df, columns, f"{name}.csv")
        parts.append(df[columns].assign(file=name))
    if not parts:
        return pd.DataFrame(columns=["file", *columns])
    return pd.concat(parts, ignore_index=True)[["file", *columns]]


# --------------------------------------------------------------------------------------------- training step
TRAIN_COLUMNS = ["variant", "precision", "channels_last", "compile", "first_step_s", "s_per_step", "img_per_s",
                 "ratio", "share_of_peak", "peak_fp32_gflops", "losses_agree", "isa", "loadavg_start", "loadavg_end"]


def train_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The CPU training-step records, one row per (file, variant), with the share of the FP32 peak in percent."""
    t = _stack(frames, TRAIN_COLUMNS)
    if not frames:
        return t
    t["share_of_peak_%"] = (100 * t.pop("share_of_peak")).round(2)
    t["compile"] = t["compile"].fillna("")
    return t[["file", *[c for c in t.columns if c != "file"]]]


def train_check(frames: Mapping[str, pd.DataFrame], goal: float = TRAIN_GOAL) -> GoalCheck:
    """The best images/s ratio over the reference any of our variants reached, in any of the files."""
    t = train_table(frames)
    ours = t[t["variant"] != "reference"]
    if ours.empty:
        return GoalCheck("training step, images/s over the reference loop", goal, None, "", ", ".join(frames))
    b = ours.loc[ours["ratio"].idxmax()]
    return GoalCheck("training step, images/s over the reference loop", goal, float(b["ratio"]),
                     f"`{b['variant']}` in `{b['file']}.csv`", ", ".join(frames))


def train_lines(frames: Mapping[str, pd.DataFrame], goal: float = TRAIN_GOAL) -> list[str]:
    """The training-step findings: the goal, each file's best variant and compile cost, bf16, the load."""
    t = train_table(frames)
    check = train_check(frames, goal)
    if check.best is None:
        return [f"- No variant of ours is recorded: run `{RERUN['train_cpu']}`."]
    lines = [f"- **Goal {goal:g}x the reference's images/s: {check.verdict}.** The best ratio reached is "
             f"**{check.best:.2f}x**, by {check.by}."]
    for name, d in t.groupby("file", sort=False):
        ref = d[d["variant"] == "reference"]
        ours = d[(d["variant"] != "reference") & (d["precision"] == "fp32")]
        if ref.empty or ours.empty:
            continue
        r, b = ref.iloc[0], ours.loc[ours["ratio"].idxmax()]
        text = (f"- `{name}.csv`: the reference takes {r.s_per_step:.2f} s/step ({r['share_of_peak_%']:.1f}% "
                f"of the {r.peak_fp32_gflops:g} GFLOP/s nominal FP32 peak); the fastest of ours, `{b.variant}`, "
                f"{b.s_per_step:.2f} s/step ({b['share_of_peak_%']:.1f}%), {b.ratio:.2f}x")
        comp = d[d["compile"] != ""]
        if not comp.empty:
            text += "; compilation: " + ", ".join(
                f"`{c.variant}` {c.first_step_s:.0f} s to its first step against {c.s_per_step:.2f} s per step after"
                for c in comp.itertuples())
            if len(comp) > 1:
                text += (" (compiled variants after the first share its inductor cache: their time to the first "
                         "step is a lower bound)")
        lines.append(text + ".")
        if r["share_of_peak_%"] > 0:
            ceiling = 100 / r["share_of_peak_%"]  # an fp32 step at 100% of the peak
            lines.append(f"  - The ceiling: at the nominal peak an fp32 step would be {ceiling:.2f}x the reference's "
                         f"speed here{' (below the goal: no fp32 variant can reach it on this CPU)' if ceiling < goal else ''}.")
        if not d["losses_agree"].astype(bool).all():
            bad = ", ".join(d.loc[~d["losses_agree"].astype(bool), "variant"])
            lines.append(f"  - **first losses disagree with the reference** for {bad}")
    bf = t[t["precision"].str.startswith("bf16")]
    for b in bf.itertuples():
        fp32 = t[(t["file"] == b.file) & (t["variant"] == "eager")]
        native = "+bf16" in str(b.isa)
        if fp32.empty:
            continue
        slow = b.s_per_step / fp32["s_per_step"].iloc[0]
        why = ("this CPU has native bf16 (AVX512-BF16 or AMX)" if native else
               f"this CPU (`{b.isa}`) has no native bf16 (neither AVX512-BF16 nor AMX): its bf16 kernels have no "
               "hardware path and every autocast operation pays conversions")
        fp32_s = fp32["s_per_step"].iloc[0]
        lines.append(f"- bf16 autocast (`{b.file}.csv`): {b.s_per_step:.1f} s/step against {fp32_s:.1f} "
                     f"for the same step in fp32, **{slow:.1f}x {'slower' if slow > 1 else 'faster'}**: {why}.")
    for name, df in frames.items():
        lines.append("- " + contention_line(name, df))
    return lines


# ------------------------------------------------------------------------------------------- input pipeline
LOADER_COLUMNS = ["variant", "img_per_s_per_worker", "ratio", "augment", "loadavg_start", "loadavg_end"]


def loader_table(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The input-pipeline records, one row per (file, variant)."""
    return _stack(frames, LOADER_COLUMNS)


def loader_checks(frames: Mapping[str, pd.DataFrame], goal: float = LOADER_GOAL) -> list[GoalCheck]:
    """Per file (augmentation mix): the best per-worker ratio over the Pillow loop, of the variants of ours."""
    out = []
    for name, d in loader_table(frames).groupby("file", sort=False):
        ours = d[d["variant"] != "reference"]
        b = ours.loc[ours["ratio"].idxmax()] if not ours.empty else None
        out.append(GoalCheck("input pipeline, images/s per worker over the per-sample Pillow loop",
                             goal, None if b is None else float(b["ratio"]), "" if b is None else b["variant"], name))
    return out


def loader_lines(frames: Mapping[str, pd.DataFrame], goal: float = LOADER_GOAL) -> list[str]:
    t = loader_table(frames)
    lines = []
    for check in loader_checks(frames, goal):
        d = t[t["file"] == check.files].set_index("variant")
        if check.best is None:
            how = RERUN.get(check.files, "python benchmarks/bench_loader.py")
            lines.append(f"- `{check.files}.csv` records no variant of ours: run `{how}`.")
            continue
        others = ", ".join(f"`{v}` {r.ratio:.2f}x ({r.img_per_s_per_worker:,.0f} images/s)"
                           for v, r in d.drop(index=["reference", check.by], errors="ignore").iterrows())
        lines.append(f"- `{check.files}.csv` (augmentation {d['augment'].iloc[0]}): **goal {goal:g}x per worker "
                     f"{check.verdict}**: `{check.by}` reaches {d.loc[check.by, 'img_per_s_per_worker']:,.0f} images/s "
                     f"per worker against {d.loc['reference', 'img_per_s_per_worker']:,.0f} for the per-sample Pillow "
                     f"loop, **{check.best:.2f}x**" + (f"; {others}" if others else "") + ".")
    for name, df in frames.items():
        lines.append("- " + contention_line(name, df))
    return lines


# ------------------------------------------------------------------------------------ embedding, final eval
EMBED_COLUMNS = ["impl", "images_per_s", "speedup_vs_old", "cpu_speedup_vs_old", "bit_exact_vs_old",
                 "max_abs_diff_vs_old", "compile_s", "load_avg_1m"]


def embed_table(df: pd.DataFrame) -> pd.DataFrame:
    """The ``kind=embed`` rows of ``eval_suite.csv``."""
    _require(df, ["kind", *EMBED_COLUMNS], "eval_suite.csv")
    return df.loc[df["kind"] == "embed", EMBED_COLUMNS].reset_index(drop=True)


def embed_check(df: pd.DataFrame, goal: float = EMBED_GOAL) -> GoalCheck:
    """The best images/s (wall) ratio over the old path, of the opt-in switches."""
    e = embed_table(df)
    new = e[e["impl"] != "old"]
    if new.empty:
        return GoalCheck("embedding, images/s over the old path", goal, None, "", "eval_suite")
    b = new.loc[new["speedup_vs_old"].idxmax()]
    return GoalCheck("embedding, images/s over the old path", goal, float(b["speedup_vs_old"]), b["impl"], "eval_suite")


def final_eval_table(df: pd.DataFrame) -> pd.DataFrame:
    """The final-evaluation rows (``kind`` starting with ``final``) of ``eval_suite.csv``; empty if not measured."""
    _require(df, ["kind"], "eval_suite.csv")
    f = df[df["kind"].astype(str).str.startswith("final")]
    if not f.empty:
        _require(f, ["impl", "wall_s", "cpu_s", "wall_vs_today", "cpu_vs_today"], "eval_suite.csv final rows")
    return f.reset_index(drop=True)


def final_eval_check(df: pd.DataFrame, goal: float = FINAL_EVAL_GOAL) -> GoalCheck:
    """The suite's wall time over today's LFW + CFP-FP final evaluation (goal: at most ``goal``)."""
    f = final_eval_table(df)
    suite = f[f["impl"].astype(str).str.startswith("suite (all")] if not f.empty else f
    name = "final evaluation: whole suite's wall time over LFW + CFP-FP alone"
    if suite.empty:
        return GoalCheck(name, goal, None, "", "eval_suite", at_most=True)
    return GoalCheck(name, goal, float(suite["wall_vs_today"].iloc[0]), suite["impl"].iloc[0], "eval_suite",
                     at_most=True)


def eval_suite_lines(df: pd.DataFrame, embed_goal: float = EMBED_GOAL,
                     final_goal: float = FINAL_EVAL_GOAL) -> list[str]:
    e, check = embed_table(df), embed_check(df, embed_goal)
    lines = []
    if check.best is None:
        lines.append(f"- No opt-in embedding path is recorded: run `{RERUN['eval_suite']}`.")
    else:
        b, old = e.set_index("impl").loc[check.by], e.set_index("impl").loc["old"]
        new = e[e["impl"] != "old"]
        best_cpu = new.loc[new["cpu_speedup_vs_old"].idxmax()]
        lines.append(f"- **Embedding goal {embed_goal:g}x the old path's images/s: {check.verdict}.** The best switch, "
                     f"`{check.by}`, embeds {b.images_per_s:.1f} images/s against {old.images_per_s:.1f} "
                     f"(**{check.best:.2f}x** wall, {b.cpu_speedup_vs_old:.2f}x in CPU seconds); the best in CPU "
                     f"seconds is `{best_cpu['impl']}` at {best_cpu['cpu_speedup_vs_old']:.2f}x.")
        exact = e.loc[(e["impl"] != "old") & e["bit_exact_vs_old"].astype(bool), "impl"].tolist()
        inexact = e[(e["impl"] != "old") & ~e["bit_exact_vs_old"].astype(bool)]
        text = "- Bit-exact with the old path: " + (", ".join(f"`{x}`" for x in exact) if exact
                                                     else "none of the switches")
        if not inexact.empty:
            text += ("; " + ", ".join(f"`{r.impl}` differs by up to {float(r.max_abs_diff_vs_old):.1e}"
                                      for r in inexact.itertuples())
                     + ": recorded metrics reproduce exactly only on the default (old) path, which stays the default")
        lines.append(text + ".")
        comp = e[e["compile_s"].notna()]
        if not comp.empty:
            lines.append("- Compilation is paid once per evaluation: " + ", ".join(
                f"`{r.impl}` {r.compile_s:.0f} s" for r in comp.itertuples()) + ".")
    fc = final_eval_check(df, final_goal)
    if fc.best is None:
        lines.append(f"- **Final evaluation goal (the whole suite costs no more than {final_goal:g}x LFW + CFP-FP "
                     f"alone): not measured.** `eval_suite.csv` has no final-evaluation rows; record them with "
                     f"`{RERUN['eval_suite']}`.")
    else:
        f = final_eval_table(df)
        s = f[f["impl"] == fc.by].iloc[0]
        lines.append(f"- **Final evaluation goal (the whole suite costs no more than {final_goal:g}x LFW + CFP-FP "
                     f"alone): {fc.verdict}.** The suite takes {s.wall_s:.0f} s wall ({s.cpu_s:.0f} CPU s), "
                     f"**{fc.best:.2f}x** today's evaluation ({s.cpu_vs_today:.2f}x in CPU seconds).")
    lines.append("- " + contention_line("eval_suite", df))
    return lines


# ------------------------------------------------------------------------------------------------ summary
def summary(checks: list[GoalCheck]) -> pd.DataFrame:
    """One row per goal: target, best reached, by what, verdict."""
    rows = []
    for c in checks:
        d = asdict(c)
        rows.append({"goal": d["goal"], "target": f"{'<=' if c.at_most else '>='} {c.target:g}x",
                     "best reached": None if c.best is None else round(c.best, 2), "by": c.by, "file(s)": c.files,
                     "verdict": c.verdict})
    return pd.DataFrame(rows)


def ratio_figure(panels: list[tuple[str, pd.Series, float]]) -> Figure:
    """Horizontal bars of ratios to a reference, one panel per ``(title, ratios by label, goal)``, with the
    goal as a dashed line and 1x (the reference) as a grey one; bars reaching the goal in blue, others red."""
    if not panels:
        raise ValueError("ratio_figure: no panels to draw")
    height = max(len(s) for _, s, _ in panels) * 0.32 + 1.4
    fig = Figure(figsize=(4.6 * len(panels), height))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, ratios, goal) in zip(axes, panels, strict=True):
        ratios = ratios.astype(float)
        ax.barh([str(i) for i in ratios.index], ratios.values,
                color=["C0" if r >= goal else "C3" for r in ratios.values])
        ax.axvline(1.0, color="0.5", lw=1)
        ax.axvline(goal, color="k", ls="--", lw=1, label=f"goal {goal:g}x")
        top = max(goal, float(ratios.max()) if len(ratios) else goal)
        ax.set_xlim(0, top * 1.12 if math.isfinite(top) else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ratio to the reference (same run)")
        ax.invert_yaxis()
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def first_step_figure(table: pd.DataFrame) -> Figure:
    """Time to the first step (compilation, for the compiled variants) beside the steady-state seconds per step,
    per (file, variant) of :func:`train_table`, on a log scale."""
    if table.empty:
        raise ValueError("first_step_figure: the training table is empty")
    labels = (table["file"] + ": " + table["variant"]).tolist()
    y = range(len(labels))
    fig = Figure(figsize=(7, 0.36 * len(labels) + 1.4))
    ax = fig.subplots()
    ax.barh([i - 0.2 for i in y], table["first_step_s"], height=0.4, color="0.6", label="time to the first step")
    ax.barh([i + 0.2 for i in y], table["s_per_step"], height=0.4, color="C0", label="steady state, per step")
    ax.set_yticks(list(y), labels)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale)")
    ax.invert_yaxis()
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
