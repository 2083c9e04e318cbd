"""A book chapter: one paper's tables, ours beside them, and a verdict per claim, all computed from records.

    from fr import chapter
    ch = chapter.load("smaface")            # fr/papers/smaface.yaml, validated
    ch.prepare(mode="report")               # report | full | smoke | paper
    ch.paper_tables()                       # [(meta, DataFrame)] as printed in the paper
    ch.missing_runs()                       # DataFrame(row, seed, command): what "full" would train
    ch.our_tables()                         # [(meta, DataFrame)] mean ± std over seeds, n, stand-ins
    ch.show_paper_tables(); ch.show_our_tables()   # both, displayed in a notebook with titles and legends
    ch.comparisons()                        # per claim and metric: paired differences, CI, MDD, verdict
    ch.verdicts()                           # per claim: the verdict of its first metric (fr.verdict)
    chapter.claims_index()                  # every paper's claims with verdicts (the book's front page)

Modes of :meth:`Chapter.prepare`:

* ``report`` trains nothing: it reads the runs recorded under the results root;
* ``full`` trains the missing CPU runs of the grid (``fr.report.run_grid``; a recorded config is found, not
  retrained), then reports;
* ``smoke`` runs every row for 2 seeds with ``configs/cpu/smoke.yaml`` (synthetic identities, the tiny IResNet,
  a few steps) on a miniature synthetic data root (:mod:`fr.data.miniature`), into a temporary results root, so
  that every code path (tables, paired tests, verdicts) runs in seconds a run; its numbers mean nothing;
* ``paper`` launches the paper-scale grid (the spec's ``paper_config``, e.g. the paper's IResNet-100 recipe) as one
  ``torchrun`` subprocess per run on the GPUs of this machine and the caller's data root, after printing its
  plan (runs, GPUs, expected time); ``dry_run=True`` prints the plan and the commands only.

A row's runs are found by config hash: the recipe plus the row's overrides plus ``runtime.seed`` give one config,
hence one run folder, whichever chapter asks for it.
"""
from __future__ import annotations

import contextlib
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from . import verdict as V
from .config import ExperimentCfg, config_hash, load_config
from .papers import PaperSpec, load_spec, spec_keys
from .paths import repo_root
from .report import format_params as _format_params
from .results import ConfigIdentity, load_runs, run_id

__all__ = ["MODES", "SMOKE_CONFIG", "SMOKE_SEEDS", "Chapter", "RunPlan", "load", "claims_index", "format_params",
           "format_override", "train_command"]

MODES = ("report", "full", "smoke", "paper")
SMOKE_CONFIG = "configs/cpu/smoke.yaml"
SMOKE_SEEDS = (0, 1)
#: what smoke runs change in every row besides the recipe: every protocol on the miniature data root, one thread
#: (several threads per tiny step only wait on each other), no progress bar
SMOKE_OVERRIDES = {"eval.suite": ["all"], "runtime.threads": 1, "runtime.progress": False}
#: images in the papers' training sets (the insightface dataset zoo; WebFace4M: Zhu et al., CVPR 2021), for the
#: paper mode's time estimate
TRAIN_SET_IMAGES = {"webface4m": 4_235_242, "ms1mv2": 5_822_653, "ms1mv3": 5_179_510, "casia_webface": 490_623,
                    "celeba_train": 5_286}


# --- formatting ------------------------------------------------------------------------------------------------

def format_params(params: Mapping[str, Any] | None, head: str | None = None) -> str:
    """Head parameters for a reader (:func:`fr.report.format_params`, ``"s=30, m=0.35"``); ``"defaults"`` when
    none are set."""
    return _format_params(params or {}, head) or "defaults"


def format_override(key: str, value: Any) -> str:
    """``key=value`` as ``python -m fr.train --set`` reads it (the value as one-line YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return f"{key}={text.strip().removesuffix('...').strip()}"  # a scalar document ends in "..."


def train_command(config: str, overrides: Mapping[str, Any], *, results_root: str | Path | None = None,
                  launcher: Sequence[str] = ("python", "-m", "fr.train")) -> str:
    """The shell command that records one run: ``python -m fr.train --config <config> --set k=v ...``."""
    parts = [*launcher, "--config", config]
    for k, v in overrides.items():
        parts += ["--set", format_override(k, v)]
    if results_root is not None:
        parts += ["--results", str(results_root)]
    return shlex.join(parts)


def _cell(values: Sequence[float]) -> str:
    """Mean ± std over seeds, in percent (fractions in)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float) * 100
    if v.size == 0:
        return "—"
    if v.size == 1:
        return f"{v[0]:.2f}"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


# --- the chapter ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunPlan(ConfigIdentity):
    """One run of the grid: its row and seed, the overrides of the recipe, the resolved config (hence its run id
    and config hash)."""

    row: str
    seed: int
    overrides: Mapping[str, Any]
    config: ExperimentCfg


class Chapter:
    """One paper's chapter (see the module docstring). Build it with :func:`load`."""

    def __init__(self, spec: PaperSpec):
        self.spec = spec
        self.mode = "report"
        self.results_root: Path | None = None
        self.recipe = spec.grid.recipe
        self._extra: dict[str, Any] = {}
        self._seeds: list[int] | None = None
        self._records: pd.DataFrame | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __repr__(self) -> str:
        return f"Chapter({self.spec.key!r}, mode={self.mode!r}, recipe={self.recipe!r})"

    # -- the grid -----------------------------------------------------------------------------------------------
    def seeds(self, row: str, *, cut: bool = True) -> list[int]:
        """The seeds of ``row`` in this mode: the spec's (:meth:`fr.papers.PaperSpec.seeds_of`: the row's own,
        0 for a row cut from the CPU grid, else ``central_seeds`` for rows of a central claim) unless
        :meth:`prepare` was given ``seeds``. ``cut=False``: the design's, ignoring the rows' cuts."""
        if self._seeds is not None:
            return list(self._seeds)
        return list(range(self.spec.seeds_of(row, cut=cut)))

    def plan(self, *, cut: bool = True) -> list[RunPlan]:
        """Every run of the grid in this mode, row by row. ``cut=False``: the grid as designed, with the rows and
        seeds the budget cut, and the seeds of a row the cut gives more than the design (a superset of the cut
        plan)."""
        path = repo_root() / self.recipe
        out = []
        for rid, row in self.spec.grid.rows.items():
            seeds = self.seeds(rid) if cut else sorted(set(self.seeds(rid, cut=False)) | set(self.seeds(rid)))
            for seed in seeds:
                ov = {**row.overrides, **self._extra, "runtime.seed": int(seed)}
                out.append(RunPlan(rid, int(seed), ov, load_config(path, ov)))
        return out

    # -- preparing ----------------------------------------------------------------------------------------------
    def prepare(self, mode: str = "report", seeds: int | Iterable[int] | None = None,
                results_root: str | Path | None = None, gpus: int | None = None, data_root: str | Path | None = None,
                *, dry_run: bool = False, progress: bool | None = None) -> Chapter:
        """Make the chapter's records available (see the module docstring for the modes).

        seeds:        an int (seeds 0..n-1 for every row) or the seeds themselves; default: the spec's.
        results_root: where ``runs/`` lives (default ``$FR_RESULTS`` or ``<repo>/results``; smoke: a temporary one).
        gpus:         paper mode: processes per run (default: every visible CUDA device).
        data_root:    full and paper modes: the data root of the training and evaluation sets (default FR_DATA).
        dry_run:      paper mode: print the plan and the commands, launch nothing.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode, self.recipe, self._extra, self._records = mode, self.spec.grid.recipe, {}, None
        self._seeds = None
        if seeds is not None:
            self._seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
            if not self._seeds:
                raise ValueError("seeds must name at least one seed")
        self.results_root = Path(results_root) if results_root is not None else None
        if mode == "smoke":
            self._prepare_smoke(progress)
        elif mode == "full":
            self._prepare_full(data_root, progress)
        elif mode == "paper":
            self._prepare_paper(gpus, data_root, dry_run)
        self._records = None  # read again: the mode may have recorded runs
        return self

    def _prepare_full(self, data_root, progress) -> None:
        from .report import run_grid

        path = repo_root() / self.recipe
        plan = self.plan()
        todo = [p for p in plan if not self._recorded(p)]
        print(f"{self.spec.key}: {len(todo)} of {len(plan)} runs to train with {self.recipe}", flush=True)
        with _env("FR_DATA", data_root):
            for p in todo:
                row_ov = {k: v for k, v in p.overrides.items() if k != "runtime.seed"}
                run_grid(path, {p.row: row_ov}, [p.seed], results_root=self.results_root, progress=progress)

    def _prepare_smoke(self, progress) -> None:
        from .data.miniature import build
        from .report import run_grid

        self._tmp = tempfile.TemporaryDirectory(prefix=f"fr_smoke_{self.spec.key}_")
        tmp = Path(self._tmp.name)
        if self.results_root is None:
            self.results_root = tmp / "results"
        self.recipe = SMOKE_CONFIG
        self._extra = {"name": f"smoke_{self.spec.key}", **SMOKE_OVERRIDES}
        if self._seeds is None:
            self._seeds = list(SMOKE_SEEDS)
        data = build(tmp / "data")["root"]
        plan = self.plan()
        t0 = time.perf_counter()
        with _env("FR_DATA", data):
            for p in plan:
                row_ov = {k: v for k, v in p.overrides.items() if k != "runtime.seed"}
                run_grid(repo_root() / self.recipe, {p.row: row_ov}, [p.seed], results_root=self.results_root,
                         progress=progress)
        print(f"smoke: {len(plan)} runs ({len(self.spec.grid.rows)} rows x {len(self._seeds)} seeds) in "
              f"{time.perf_counter() - t0:.0f} s under {self.results_root}", flush=True)

    # -- paper scale --------------------------------------------------------------------------------------------
    def paper_plan(self, gpus: int, *, results_root: str | Path | None = None) -> pd.DataFrame:
        """The paper-scale runs: one row per (row, seed) with its run id, whether it is recorded, and the
        ``torchrun`` command that records it."""
        if self.spec.paper_config is None:
            raise ValueError(f"{self.spec.source}: no paper_config, so there is no paper-scale grid to run")
        path = repo_root() / self.spec.paper_config
        root = results_root if results_root is not None else self.results_root
        launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", "-m",
                    "fr.train")
        done = set(load_runs(root)["config_hash"].dropna())
        rows = []
        for rid, row in self.spec.grid.rows.items():
            for seed in self.seeds(rid, cut=False):  # the CPU budget's cuts do not apply at paper scale
                ov = {**row.overrides, **self.spec.paper_overrides, "runtime.seed": int(seed)}
                cfg = load_config(path, ov)
                rows.append({"row": rid, "seed": int(seed), "run_id": run_id(cfg), "config": cfg,
                             "recorded": config_hash(cfg) in done,
                             "command": train_command(str(path), {**ov, "runtime.progress": False},
                                                      results_root=root, launcher=launcher)})
        return pd.DataFrame(rows)

    def _prepare_paper(self, gpus, data_root, dry_run: bool) -> None:
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1):
            raise ValueError(f"gpus must be the number of GPUs (processes) per run, a positive int, got {gpus!r}; "
                             "choose which GPUs with CUDA_VISIBLE_DEVICES")
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count()
            if gpus == 0 and not dry_run:
                raise RuntimeError("paper mode needs GPUs (none visible); pass gpus=N with dry_run=True to see "
                                   "the plan")
            gpus = max(gpus, 1)
        plan = self.paper_plan(gpus)
        todo = plan[~plan["recorded"]]
        print(self.describe_paper_plan(plan, gpus), flush=True)
        if dry_run:
            for cmd in todo["command"]:
                print(cmd)
            return
        env = {**os.environ}
        if data_root is not None:
            env["FR_DATA"] = str(Path(data_root).expanduser().resolve())
        env["PYTHONPATH"] = os.pathsep.join([str(repo_root()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.pop("WORLD_SIZE", None)  # a launcher of our own may not leak into torchrun's children
        for _, r in todo.iterrows():
            print(f"[{time.strftime('%H:%M:%S')}] {r['row']} seed {r['seed']}: {r['command']}", flush=True)
            proc = subprocess.run(shlex.split(r["command"]), env=env, cwd=repo_root())
            if proc.returncode != 0:
                raise RuntimeError(f"run {r['run_id']} ({r['row']}, seed {r['seed']}) failed with exit code "
                                   f"{proc.returncode}: {r['command']}")

    def describe_paper_plan(self, plan: pd.DataFrame, gpus: int) -> str:
        """The plan in words: runs to launch, GPUs, and the expected time where a recorded GPU run of the same
        backbone gives the throughput."""
        todo = plan[~plan["recorded"]]
        lines = [f"{self.spec.key} at paper scale: {self.spec.paper_config}",
                 f"  {len(plan)} runs in the grid, {len(plan) - len(todo)} recorded, {len(todo)} to launch, "
                 f"each as torchrun with {gpus} process(es) (one per GPU)"]
        if not todo.empty:
            cfg = todo.iloc[0]["config"]
            lines.append("  " + _expected_time(cfg, gpus, len(todo), self.results_root))
        return "\n".join(lines)

    # -- records ------------------------------------------------------------------------------------------------
    def _recorded(self, p: RunPlan) -> bool:
        rec = self.records()
        return bool(((rec["row"] == p.row) & (rec["seed"] == p.seed)).any())

    def records(self) -> pd.DataFrame:
        """One row per recorded run of the grid: the seeds of this mode's plan and of the design's (a row the budget
        cut, recorded anyway, is shown; a row the cut gives more seeds than the design has them all), with ``row``,
        ``seed``, ``run_id`` and every metric column (fractions), derived metrics included."""
        if self._records is not None:
            return self._records
        plan = self.plan(cut=False)  # a superset of this mode's plan
        names = {p.config.name for p in plan}
        runs = pd.concat([load_runs(self.results_root, name=n) for n in sorted(names)], ignore_index=True)
        by_hash = {h: r for h, r in zip(runs["config_hash"], runs.to_dict("records"), strict=True)}
        rows = []
        for p in plan:
            r = by_hash.get(p.config_hash)
            if r is not None:
                rows.append({**r, "row": p.row, "seed": p.seed})
        df = pd.DataFrame(rows)
        df = df.reindex(columns=list(dict.fromkeys(["row", "seed", "run_id", *df.columns])))
        for name, parts in self.spec.derived_metrics.items():
            cols = [df[m].astype(float) if m in df else pd.Series(np.nan, index=df.index) for m in parts]
            df[name] = pd.concat(cols, axis=1).mean(axis=1, skipna=False) if cols and len(df) else np.nan
        self._records = df
        return df

    def missing_runs(self) -> pd.DataFrame:
        """The runs of the grid not recorded under the results root: ``row``, ``seed`` and the exact command
        that records each (``python -m fr.train --config ... --set ...``)."""
        rec = self.records()
        have = set(zip(rec["row"], rec["seed"], strict=True)) if not rec.empty else set()
        out = [{"row": p.row, "seed": p.seed, "run_id": p.run_id,
                "command": train_command(self.recipe, p.overrides, results_root=self.results_root)}
               for p in self.plan() if (p.row, p.seed) not in have]
        return pd.DataFrame(out, columns=["row", "seed", "run_id", "command"])

    def missing_markdown(self) -> str:
        """What a reader needs when runs are missing: how many of the grid's runs are not recorded, and the exact
        commands that record them (in full, as a shell block: a table would cut them short)."""
        missing, total = self.missing_runs(), len(self.plan())
        if missing.empty:
            return f"Every run of this chapter's grid is recorded ({total} runs)."
        return (f"**{len(missing)} of {total} runs are not recorded yet.** Train them with `-p mode full` (or "
                "`python -m fr.grid`), or one by one from the repository root:\n\n```bash\n"
                + "\n".join(missing["command"]) + "\n```")

    def cut_markdown(self) -> str:
        """What the CPU budget cut from this chapter's grid and why (the spec's ``grid.budget``), after the whole
        grid's arithmetic (:func:`fr.grid.budget_markdown`): the rows trained with fewer seeds than the design
        asks (3 a row, 5 for the rows of a central claim) or none, and how to train them anyway. Empty when
        :meth:`prepare` was given seeds (every row then has those)."""
        from .grid import budget_markdown

        if self._seeds is not None:
            return ""
        short = self.spec.cut_rows()
        lines = [f"**The budget.** {budget_markdown(self.results_root)}", ""]
        if not short:
            lines.append("Nothing of this chapter's grid is cut: every row has the design's seeds.")
            return "\n".join(lines)
        rows = self.spec.grid.rows
        cut = [rows[r].label for r, (have, _) in short.items() if have == 0]
        fewer = [f"{rows[r].label} ({have} of {want})" for r, (have, want) in short.items() if have > 0]
        lines += [f"**What it cut here, and why.** {' '.join(self.spec.grid.budget.split())}", ""]
        if cut:
            lines.append(f"- Not trained: {', '.join(cut)}.")
        if fewer:
            lines.append(f"- Fewer seeds than the design's (trained of asked): {', '.join(fewer)}.")
        lines += ["", f"To train them too: `python -m fr.grid --chapters {self.spec.key} --all-rows` (the design's "
                      f"seeds for every row), or this notebook with `-p mode full -p seeds 5`. A cut row recorded "
                      f"anyway appears in the tables and verdicts."]
        return "\n".join(lines)

    def _cut_reason(self, row: str) -> str:
        """Why ``row`` has no run: ``""`` unless the budget cut it and nothing of it is recorded."""
        if self._seeds is not None or self.spec.seeds_of(row) > 0 or self._seeds_recorded(row):
            return ""
        return f"{self.spec.grid.rows[row].label} is cut from the CPU grid (see the chapter's budget note)"

    def _seeds_recorded(self, row: str) -> list[int]:
        rec = self.records()
        return [] if rec.empty else [int(s) for s in rec.loc[rec["row"] == row, "seed"]]

    def _values(self, row: str, metric: str) -> dict[int, float]:
        rec = self.records()
        if rec.empty or metric not in rec:
            return {}
        sub = rec[rec["row"] == row]
        return {int(s): float(v) for s, v in zip(sub["seed"], sub[metric], strict=True)
                if v is not None and not pd.isna(v)}

    # -- tables -------------------------------------------------------------------------------------------------
    def _label(self, text: str) -> str:
        return f"{text} (reconstruction)" if self.spec.reconstructed else text

    def paper_tables(self) -> list[tuple[dict, pd.DataFrame | None]]:
        """The paper's tables as printed: ``(meta, DataFrame)`` (``None`` where the paper gives no table; the
        meta's ``unavailable`` says why). ``meta``: id, source, caption, notes, title."""
        out = []
        for t in self.spec.paper_tables:
            meta = {"id": t.id, "source": t.source, "caption": t.caption, "notes": t.notes,
                    "title": self._label(f"{_capital(t.source)}, as printed"), "unavailable": t.unavailable}
            if t.unavailable is not None:
                out.append((meta, None))
                continue
            out.append((meta, pd.DataFrame(list(t.rows), columns=list(t.columns)).astype(object)
                        .where(lambda d: d.notna(), "-")))
        return out

    def our_tables(self) -> list[tuple[dict, pd.DataFrame]]:
        """Our version of each mirrored table: one row per grid row (label, head parameters, seeds recorded),
        each column mean ± std over seeds in percent; ``—`` where nothing is recorded, ``n/a`` where we cannot
        have the column. ``meta['legend']`` names the stand-ins and the missing columns (markdown)."""
        out = []
        for t in self.spec.our_tables:
            paper = self.spec.table(t.mirrors)
            rows = []
            for rid in t.rows:
                grow = self.spec.grid.rows[rid]
                params = grow.overrides.get("head.params") or {}
                head = grow.overrides.get("head.name", "")
                label = self._label(grow.label) + (" (cut)" if self._cut_reason(rid) else "")
                row = {"Method": label, "head": f"{head} ({format_params(params, head)})", "seeds": 0}
                n_max = 0
                for c in t.columns:
                    header = _header(c)
                    if c.unavailable:
                        row[header] = "n/a"
                        continue
                    vals = self._values(rid, c.metric)
                    n_max = max(n_max, len(vals))
                    row[header] = _cell(list(vals.values()))
                row["seeds"] = n_max
                rows.append(row)
            legend = []
            for c in t.columns:
                if c.unavailable:
                    legend.append(f"- **{c.name}**: not available — {c.unavailable}.")
                elif c.stand_in:
                    legend.append(f"- **{_header(c)}**: stand-in — {c.stand_in} (`{c.metric}`).")
                elif c.extra:
                    legend.append(f"- **{_header(c)}**: a column of ours, not in the paper's table (`{c.metric}`).")
                label = self.spec.derived_labels.get(c.metric or "")
                if label:
                    legend.append(f"  `{c.metric}` is the {label}.")
            meta = {"id": t.id, "mirrors": t.mirrors, "source": paper.source, "notes": t.notes,
                    "title": self._label(f"{_capital(paper.source)}: ours ({self._scale_words()})"),
                    "legend": "\n".join(legend), "recipe": self.recipe}
            out.append((meta, pd.DataFrame(rows)))
        return out

    def show_paper_tables(self) -> None:
        """Display (in a notebook) each of the paper's tables as printed: a heading with its title, the caption,
        the table (or why there is none) and the transcription notes."""
        from IPython.display import Markdown, display

        for meta, table in self.paper_tables():
            display(Markdown(f"### {meta['title']}\n\n{meta['caption'] or ''}"))
            display(table if table is not None else Markdown(f"*No table available:* {meta['unavailable']}"))
            if meta["notes"]:
                display(Markdown(f"*Transcription:* {meta['notes']}"))

    def show_our_tables(self) -> None:
        """Display (in a notebook) each of our tables: a heading with its title, the table, and its legend (the
        stand-ins and the columns we cannot have) with the table's notes."""
        from IPython.display import Markdown, display

        for meta, table in self.our_tables():
            display(Markdown(f"### {meta['title']}"))
            display(table)
            display(Markdown(meta["legend"] + (f"\n\n{meta['notes']}" if meta["notes"] else "")))

    def _scale_words(self) -> str:
        return {"smoke": "smoke run: synthetic data, numbers mean nothing",
                "paper": f"paper scale, {self.spec.paper_config}"}.get(self.mode, f"CPU scale, {self.recipe}")

    # -- comparisons and verdicts -------------------------------------------------------------------------------
    def _seed_tests(self, claim, metric: str, seeds: Iterable[int]) -> str:
        """Per seed, McNemar and the paired bootstrap on the same pairs, where the runs recorded per-pair
        results (verification accuracy); else ``n/a``."""
        set_name, _, col = metric.partition(".")
        if col != "accuracy":
            return "n/a"
        from .report import load_correct

        rec = self.records()
        parts = []
        for s in seeds:
            ids = {}
            for role in ("treatment", "baseline"):
                hit = rec[(rec["row"] == getattr(claim, role)) & (rec["seed"] == s)]
                ids[role] = hit.iloc[0]["run_id"] if not hit.empty else None
            try:
                ct = load_correct(ids["treatment"], set_name, self.results_root)
                cb = load_correct(ids["baseline"], set_name, self.results_root)
            except (KeyError, ValueError, FileNotFoundError):
                parts.append(f"seed {s}: n/a")
                continue
            t = V.seed_test(ct, cb, direction=claim.direction)
            parts.append(f"seed {s}: {t.diff:+.2f} [{t.ci_low:+.2f}, {t.ci_high:+.2f}], McNemar p={t.mcnemar_p:.3g}")
        return "; ".join(parts) if parts else "n/a"

    def comparisons(self) -> pd.DataFrame:
        """Per claim and metric: the seeds both rows have recorded (``runs``), those with a value of the metric
        in both (``n``; an all-pairs TAR at a FAR the pairs cannot resolve has none), the mean difference in percentage points in the
        paper's direction with its 95% t interval, the standard deviation of the differences, the MDD, the
        verdict (:mod:`fr.verdict`), the per-seed paired tests and the paper's own difference."""
        out = []
        for c in self.spec.claims:
            for m in c.metrics:
                d = V.paired_differences(self._values(c.treatment, m), self._values(c.baseline, m),
                                         direction=c.direction)
                v = V.decide(list(d.values()))
                runs = len(set(self._seeds_recorded(c.treatment)) & set(self._seeds_recorded(c.baseline)))
                paper_diff = math.nan
                if isinstance(c.paper.get("treatment"), (int, float)) and isinstance(c.paper.get("baseline"),
                                                                                     (int, float)):
                    paper_diff = (c.paper["treatment"] - c.paper["baseline"]) * (1 if c.direction == "greater"
                                                                                 else -1)
                out.append({"claim": c.id, "metric": m, "treatment": c.treatment, "baseline": c.baseline,
                            "direction": c.direction, "runs": runs, "n": v.n, "mean_diff": v.mean, "ci_low": v.ci_low,
                            "ci_high": v.ci_high, "sd": v.sd, "mdd": v.mdd, "verdict": v.verdict,
                            "paper_diff": paper_diff, "per_seed": self._seed_tests(c, m, d) if d else "n/a"})
        cols = ["claim", "metric", "treatment", "baseline", "direction", "runs", "n", "mean_diff", "ci_low", "ci_high", "sd",
                "mdd", "verdict", "paper_diff", "per_seed"]
        return pd.DataFrame(out, columns=cols)

    def plot_comparisons(self, comparisons: pd.DataFrame | None = None):
        """A forest plot of :meth:`comparisons`: per claim and metric with at least 2 paired seeds, the mean paired
        difference (pp, in the paper's direction: right of 0 = as the paper claims) with its 95% interval across
        seeds, coloured by verdict; the grey band is ± the MDD (differences the seeds could not have told from 0)
        and a cross marks the paper's own difference where it printed both numbers. ``None`` when nothing is paired.
        """
        from matplotlib.figure import Figure

        comp = self.comparisons() if comparisons is None else comparisons
        comp = comp[comp["n"] >= 2].reset_index(drop=True)
        if comp.empty:
            return None
        colours = {V.CONFIRMED: "tab:green", V.CONTRADICTED: "tab:red", V.NOT_DISTINGUISHABLE: "tab:gray"}
        fig = Figure(figsize=(7.5, 0.38 * len(comp) + 1.4))
        ax = fig.subplots()
        y = np.arange(len(comp))[::-1]
        for yi, r in zip(y, comp.itertuples(), strict=True):
            if math.isfinite(r.mdd):
                ax.fill_betweenx([yi - 0.35, yi + 0.35], -r.mdd, r.mdd, color="0.9", lw=0)
            ax.errorbar(r.mean_diff, yi, xerr=[[r.mean_diff - r.ci_low], [r.ci_high - r.mean_diff]], fmt="o",
                        color=colours.get(r.verdict, "black"), capsize=3, label=r.verdict)
            if math.isfinite(r.paper_diff):
                ax.plot(r.paper_diff, yi, "x", color="black", label="paper's difference")
        ax.axvline(0, color="0.4", lw=1)
        ax.set_yticks(y, [f"{r.claim} · {r.metric} (n={r.n})" for r in comp.itertuples()], fontsize=8)
        ax.set_xlabel("paired difference, treatment − baseline (pp; > 0: as the paper claims)")
        ax.set_title("mean and 95% interval across seeds; grey: ± the MDD; ×: the paper's own difference", fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        return fig

    def verdicts(self, comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per claim: the paper's numbers, ours, and the verdict of the claim's first metric with the
        MDD it rests on (``evidence`` names the comparison row it comes from)."""
        comp = self.comparisons() if comparisons is None else comparisons
        out = []
        for c in self.spec.claims:
            first = comp[(comp["claim"] == c.id) & (comp["metric"] == c.metrics[0])].iloc[0]
            v = V.Verdict(first["verdict"], int(first["n"]), first["mean_diff"], first["sd"], first["ci_low"],
                          first["ci_high"], first["mdd"])
            p = c.paper
            paper = (f"{_num(p['treatment'])} vs {_num(p['baseline'])} {p.get('metric', '')}".strip()
                     if "treatment" in p and "baseline" in p else "no number")
            ours = v.describe()
            cut = [why for why in (self._cut_reason(c.treatment), self._cut_reason(c.baseline)) if why]
            if v.verdict == V.NOT_RUN and first["runs"] >= 2:
                ours = (f"{V.NOT_RUN}: {first['runs']} paired runs recorded, {v.n} of them with a value of "
                        f"{c.metrics[0]}")
            elif v.verdict == V.NOT_RUN and cut:
                ours = f"{V.NOT_RUN}: {'; '.join(cut)}"
            rows = self.spec.grid.rows
            # paired seeds the grid plans (0 when a row is cut); more may be recorded (--all-rows, seeds=)
            planned = len(set(self.seeds(c.treatment)) & set(self.seeds(c.baseline)))
            has_cut_row = self._seeds is None and 0 in (self.spec.seeds_of(c.treatment), self.spec.seeds_of(c.baseline))
            # "cut": a row is cut and has nothing recorded; "cut row": cut, but recorded anyway; "": not cut
            cut_state = "cut" if cut else "cut row" if has_cut_row else ""
            out.append({"claim": c.id, "text": c.text, "source": c.source, "central": c.central,
                        "treatment": rows[c.treatment].label, "baseline": rows[c.baseline].label,
                        "paper": paper, "metric": c.metrics[0], "verdict": v.verdict, "mdd": v.mdd,
                        "n": v.n, "planned": planned, "cut": cut_state, "ours": ours,
                        "evidence": f"{self.spec.chapter}: comparisons, claim {c.id}, metric {c.metrics[0]}, "
                                    f"n={v.n} paired seeds"})
        return pd.DataFrame(out, columns=["claim", "text", "source", "central", "treatment", "baseline", "paper",
                                          "metric", "verdict", "mdd", "n", "planned", "cut", "ours", "evidence"])


def _capital(text: str) -> str:
    """``text`` with its first letter upper-case (a source such as "abstract" opens a heading)."""
    return text[:1].upper() + text[1:]


def _num(x) -> str:
    """A number as papers print them (two decimals); anything else as given."""
    return f"{x:.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _header(c) -> str:
    if c.unavailable:
        return f"{c.name} †"
    if c.stand_in:
        return f"{c.name} *"
    return f"{c.name} (ours)" if c.extra else c.name


@contextlib.contextmanager
def _env(name: str, value: str | Path | None):
    """Set an environment variable for the block (nothing when ``value`` is None), then restore it."""
    if value is None:
        yield
        return
    old = os.environ.get(name)
    os.environ[name] = str(Path(value).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _expected_time(cfg: ExperimentCfg, gpus: int, n_runs: int, results_root) -> str:
    """``expected time: ...`` from the training set's size and a recorded GPU throughput of the same backbone
    (images/s per GPU, from ``gpu_*`` runs), or a sentence saying which of the two is unknown."""
    images = TRAIN_SET_IMAGES.get(cfg.data.train)
    if images is None:
        return f"expected time: unknown (the size of training set {cfg.data.train!r} is not known here)"
    runs = load_runs(results_root).reindex(columns=["backbone", "gpu", "images_per_s", "world_size"])
    gpu = runs[(runs["backbone"] == cfg.backbone.name) & runs["gpu"].notna() & runs["images_per_s"].notna()]
    if gpu.empty:
        return (f"expected time: unknown (no recorded GPU run of {cfg.backbone.name} gives its throughput; "
                f"{cfg.schedule.epochs:g} epochs of {images:,} images a run)")
    per_gpu = float((gpu["images_per_s"] / gpu["world_size"].fillna(1).clip(lower=1)).median())
    hours = cfg.schedule.epochs * images / (per_gpu * gpus) / 3600
    return (f"expected time: about {hours:.1f} h a run, {hours * n_runs:.1f} h in all ({cfg.schedule.epochs:g} "
            f"epochs of {images:,} images at {per_gpu:,.0f} images/s per GPU, measured on "
            f"{gpu.iloc[0]['gpu']}; evaluation not included)")


def load(key: str) -> Chapter:
    """The chapter of paper ``key`` (``fr/papers/<key>.yaml``, validated)."""
    return Chapter(load_spec(key))


def claims_index(results_root: str | Path | None = None) -> pd.DataFrame:
    """Every paper's claims with their verdicts from the recorded runs (report mode), in reading order, with
    the link of each chapter (``executed/<chapter>``, the executed notebook in the book)."""
    out = []
    for key in spec_keys():
        ch = load(key).prepare("report", results_root=results_root)
        for _, r in ch.verdicts().iterrows():
            out.append({"paper": ch.spec.title, "key": key, "chapter": ch.spec.chapter,
                        "link": f"executed/{ch.spec.chapter}", "claim": r["claim"], "text": r["text"],
                        "source": r["source"], "central": r["central"], "paper_numbers": r["paper"],
                        "verdict": r["verdict"], "mdd": r["mdd"], "n": r["n"], "planned": r["planned"],
                        "cut": r["cut"], "ours": r["ours"], "reconstructed": ch.spec.reconstructed})
    return pd.DataFrame(out, columns=["paper", "key", "chapter", "link", "claim", "text", "source", "central",
                                      "paper_numbers", "verdict", "mdd", "n", "planned", "cut", "ours",
                                      "reconstructed"])
