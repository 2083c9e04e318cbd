"""The CPU replication grid of every chapter as one resumable queue.

    python -m fr.grid --plan                       # the runs in order, how many are recorded, expected CPU hours
    python -m fr.grid                              # train every run not yet recorded, one at a time
    python -m fr.grid --chapters smaface sface --max-hours 8 --log grid.log
    python -m fr.grid --max-runs 1                 # the next run of the queue only
    python -m fr.grid --all-rows --plan            # the grid as designed, before the budget's cuts

The queue is the union of the chapters' run plans (:meth:`fr.chapter.Chapter.plan`): every chapter builds its
rows on the same recipe, so a row two chapters share (CosFace, ArcFace, ...) is one config hash, hence one run,
listed once with the chapters that use it. :func:`order` fixes the order in which they are trained.

A run is recorded when its folder holds a complete ``metrics.json`` (written last, atomically); recorded runs are
skipped, and :func:`fr.train.run` itself refuses to retrain one. A grid killed mid-run leaves that run's folder
without ``metrics.json``: the next grid trains it again, from its last checkpoint (``ckpt/last.pt``, written
every ``runtime.ckpt_every_steps`` steps and when training ends, so a run killed during its final evaluation only
evaluates again) or from step 0 with fresh logs when it had none. Runs with a checkpoint to resume go first
(:func:`resume_first`), so the time spent on them is kept. Several grids may run at once (one per GPU, or per
group of cores): a run another process is training is locked (:mod:`fr.engine.lock`) and skipped. A run that
fails is logged with its error and the queue goes on; the command exits with status 1 when any run failed.

Progress goes to stdout and, with ``--log FILE``, is appended to that file: a line when a run starts, when it is
done (headline metrics and seconds) or fails (the error), each with the running count ``k/N`` and an ETA: the
mean wall time of the runs this queue has trained, or before the first, the median of the recorded runs of the
same recipe (:class:`WallTime`).
"""
from __future__ import annotations

import argparse
import bisect
import logging
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from .chapter import load as load_chapter
from .chapter import train_command
from .config import ExperimentCfg
from .engine.lock import RunBusy, holder as lock_holder
from .papers import GRID_BUDGET_HOURS, spec_keys
from .results import ConfigIdentity, RunRecord, flatten_result, load_run, load_runs, runs_root

__all__ = ["SEED_WAVES", "HEADLINE", "GridRun", "collect", "order", "plan", "resume_first", "WallTime", "run_grid",
           "describe_plan", "budget_line", "budget_markdown", "progress_markdown", "main"]

log = logging.getLogger("fr.grid")

#: seed waves: every run of a wave is trained before any run of the next. Seeds 0-1 first (the fewest paired
#: seeds a verdict needs), then seed 2 (the 3 seeds of every row), then seeds 3 and up (only the rows of central
#: claims have them), so that every row reaches 2, then 3 seeds before any reaches 4 or 5
SEED_WAVES = (2, 3)
#: tiers within a wave, trained in this order
TIER_CENTRAL, TIER_SHARED, TIER_OTHER = 0, 1, 2
TIER_NAMES = {TIER_CENTRAL: "central", TIER_SHARED: "shared", TIER_OTHER: "other"}
#: the metrics a finished run is summarised by in the progress log (label -> record column, fractions)
HEADLINE = {"LFW": "lfw.accuracy", "CFP-FP": "cfp_fp.accuracy", "CFP-FF": "cfp_ff.accuracy",
            "LFW-LQ": "lfw_lq.accuracy", "TAR@1e-4": "lfw_allpairs.tar@1e-04", "LQ rank-1": "lfw_ident_lq.rank1"}


@dataclass(frozen=True)
class GridRun(ConfigIdentity):
    """One run of the grid: its config (recipe + a row's overrides + seed), and every (chapter, row) using it."""

    config: ExperimentCfg
    recipe: str
    overrides: Mapping[str, Any]  # the first using row's overrides, ``runtime.seed`` included
    seed: int
    uses: tuple[tuple[str, str], ...]  # (chapter key, row id), in reading order
    central: bool  # some using row is the treatment or baseline of a central claim of its chapter
    position: int  # first appearance in the chapters' plans, in reading order (the tie-break of :func:`order`)

    @property
    def chapters(self) -> list[str]:
        return list(dict.fromkeys(k for k, _ in self.uses))

    @property
    def tier(self) -> int:
        """0: a row of a central comparison; 1: a row shared by several chapters; 2: the rest."""
        if self.central:
            return TIER_CENTRAL
        return TIER_SHARED if len(self.chapters) > 1 else TIER_OTHER

    @property
    def trains(self) -> bool:
        """False for 0-step runs (the untrained initialisation, evaluated only)."""
        return self.config.schedule.steps != 0

    def label(self) -> str:
        rows = ", ".join(dict.fromkeys(r for _, r in self.uses))
        return f"{self.run_id} [{rows}, seed {self.seed}]"

    def command(self, results_root: str | Path | None = None) -> str:
        return train_command(self.recipe, self.overrides, results_root=results_root)


def collect(keys: Iterable[str] | None = None, *, cut: bool = True) -> list[GridRun]:
    """The union of the run plans of the chapters ``keys`` (default: every spec, in reading order), one
    :class:`GridRun` per config hash, in order of first appearance. ``cut=False``: with the rows and seeds the
    specs cut to fit :data:`fr.papers.GRID_BUDGET_HOURS` (the grid as designed)."""
    keys = list(spec_keys() if keys is None else keys)
    known = spec_keys()
    bad = [k for k in keys if k not in known]
    if bad:
        raise ValueError(f"unknown chapter(s) {bad}; chapters: {', '.join(known)}")
    found: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(keys):
        ch = load_chapter(key)
        central = ch.spec.central_rows()
        for p in ch.plan(cut=cut):
            h = p.config_hash
            if h not in found:
                found[h] = {"config": p.config, "recipe": ch.recipe, "overrides": dict(p.overrides), "seed": p.seed,
                            "uses": [], "central": False, "position": len(found)}
            found[h]["uses"].append((key, p.row))
            found[h]["central"] |= p.row in central
    return [GridRun(**{**d, "uses": tuple(d["uses"])}) for d in found.values()]


def wave(seed: int) -> int:
    """The seed wave of ``seed`` (:data:`SEED_WAVES`): 0 for seeds 0-1, 1 for seed 2, 2 for seeds 3 and up."""
    return bisect.bisect_right(SEED_WAVES, seed)


def order(runs: Iterable[GridRun]) -> list[GridRun]:
    """The training order: by seed wave (:func:`wave`: seeds 0-1, then 2, then 3+), within a wave by tier (rows of
    central comparisons, then rows shared by several chapters, then the rest), then by seed, then by first
    appearance in the chapters' plans (reading order).

    So the central comparisons reach the 2 paired seeds a verdict needs first, every row has 2 seeds, then 3,
    before any row gets a fourth, and the 5-seed rows of central claims come last."""
    return sorted(runs, key=lambda r: (wave(r.seed), r.tier, r.seed, r.position))


def plan(keys: Iterable[str] | None = None, *, cut: bool = True) -> list[GridRun]:
    """The grid of the chapters ``keys`` (default: all) in training order (``cut=False``: as designed)."""
    return order(collect(keys, cut=cut))


# --- records and wall time ----------------------------------------------------------------------------------------

class WallTime:
    """Expected seconds of a run, from the wall times (training plus final evaluation) of complete runs of the
    same recipe name, trained runs and 0-step runs apart (a 0-step run only evaluates; a kind with none falls
    back on the other). Once the queue has trained a run of a kind in this call, the mean of those (``live``):
    the machine as it is now, as a progress bar's rate; before that, the median of the recorded runs, which runs
    slowed by other work on the machine move less than they move the mean. ``None`` when nothing is known."""

    def __init__(self, runs: pd.DataFrame):
        self.seconds: dict[bool, list[float]] = {True: [], False: []}
        self.live: dict[bool, list[float]] = {True: [], False: []}
        for steps, wall in zip(runs.get("steps", []), runs.get("wall_time_s", []), strict=True):
            if wall is not None and not pd.isna(wall):
                self.seconds[bool(steps)].append(float(wall))

    def add(self, trains: bool, seconds: float) -> None:
        """A run this queue has just trained: it counts among the recorded and sets the live rate."""
        self.seconds[trains].append(seconds)
        self.live[trains].append(seconds)

    def expected(self, trains: bool = True) -> float | None:
        for kind in (trains, not trains):  # this kind's figures before the other kind's
            if self.live[kind]:
                return sum(self.live[kind]) / len(self.live[kind])
            if self.seconds[kind]:
                return float(statistics.median(self.seconds[kind]))
        return None

    def fastest(self, trains: bool = True) -> float | None:
        """The shortest recorded wall time: a run with the machine to itself (the others include runs slowed by
        other work on the machine)."""
        vals = self.seconds[trains] or self.seconds[not trains]
        return min(vals) if vals else None

    def of(self, runs: Iterable[GridRun], *, fastest: bool = False) -> float | None:
        """Expected seconds of ``runs`` in all (:meth:`expected`; ``fastest``: at the shortest recorded); None
        when nothing is recorded."""
        total = 0.0
        for r in runs:
            m = self.fastest(r.trains) if fastest else self.expected(r.trains)
            if m is None:
                return None
            total += m
        return total

    def describe(self) -> str:
        n = len(self.seconds[True]) + len(self.seconds[False])
        if not n:
            return "no recorded run to estimate from"
        k = len(self.live[True])
        if k:
            return f"{self.expected(True):.0f} s a trained run, the mean of the {k} this queue trained"
        if not self.seconds[True]:
            return f"no trained run recorded; {self.expected(True):.0f} s a run, from {n} untrained one(s)"
        return f"median wall time {self.expected(True):.0f} s a trained run, over {n} recorded run(s)"


def _recorded(root, names: Iterable[str]) -> pd.DataFrame:
    frames = [load_runs(root, name=n) for n in sorted(set(names))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["config_hash"])


def _folder_state(root, run: GridRun) -> str:
    """``training now (pid N on HOST)`` while another process trains it, else ``partial (checkpoint: resumes
    first)`` / ``partial (no checkpoint: restarts)`` for a run folder without a complete record; ``""`` when there
    is no folder."""
    d = runs_root(root) / run.run_id
    if not d.is_dir():
        return ""
    if (who := lock_holder(d)) is not None:
        return f"training now ({who.split(',')[0]})"
    return "partial (checkpoint: resumes first)" if _resumes(root, run) else "partial (no checkpoint: restarts)"


def _resumes(root, run: GridRun) -> bool:
    return (runs_root(root) / run.run_id / "ckpt" / "last.pt").exists()


def resume_first(runs: Sequence[GridRun], results_root=None) -> list[GridRun]:
    """``runs`` with those that resume from a checkpoint (a run killed mid-way, by this queue or by a ``fr.train``
    of the same config) moved to the front, each group in its given order: the time already spent on them is
    kept even if the queue is stopped again soon."""
    return sorted(runs, key=lambda r: not _resumes(results_root, r))


def _written_before(rec: RunRecord, t: float, slack_s: float = 1.0) -> bool:
    """Whether ``rec``'s ``metrics.json`` was written before wall-clock time ``t`` (less ``slack_s`` for coarse
    file times): a record the trainer found complete, not one it wrote."""
    try:
        return (Path(rec.path) / "metrics.json").stat().st_mtime < t - slack_s
    except OSError:
        return False


def _complete(root, run: GridRun) -> bool:
    d = runs_root(root) / run.run_id
    return (d / "metrics.json").exists() and load_run(d).complete


def _hours(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds / 3600:.1f} h"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA unknown"
    return f"ETA {_hours(seconds)} (~{time.strftime('%a %H:%M', time.localtime(time.time() + seconds))})"


def headline(record: RunRecord) -> str:
    """``LFW 83.08%, CFP-FP 57.03%, ...`` from a complete record: the :data:`HEADLINE` metrics it has."""
    if record.metrics is None or not hasattr(record.metrics, "metrics"):
        return record.status
    flat: dict[str, Any] = {}
    for name, result in record.metrics.metrics.items():
        flat.update(flatten_result(name, result))
    parts = [f"{label} {100 * float(flat[col]):.2f}%" for label, col in HEADLINE.items()
             if flat.get(col) is not None and math.isfinite(float(flat[col]))]
    return ", ".join(parts) or "no headline metric"


# --- the queue ----------------------------------------------------------------------------------------------------

def describe_plan(runs: Sequence[GridRun], results_root=None) -> str:
    """The plan as text: one line per run in training order (position, tier, recorded or not, the chapters and
    rows using it), then the counts and the expected CPU hours of what is left."""
    recorded_df = _recorded(results_root, {r.config.name for r in runs})
    done = set(recorded_df["config_hash"].dropna())
    wall = WallTime(recorded_df)
    todo = [r for r in runs if r.config_hash not in done]
    lines = [f"{'#':>4}  {'wave':<4}  {'tier':<7}  {'state':<34}  run"]
    for i, r in enumerate(runs, 1):
        state = "recorded" if r.config_hash in done else (_folder_state(results_root, r) or "to train")
        uses = "; ".join(f"{k}:{row}" for k, row in r.uses)
        lines.append(f"{i:>4}  {wave(r.seed):<4}  {TIER_NAMES[r.tier]:<7}  {state:<34}  {r.run_id} seed {r.seed} "
                     f"({uses})")
    used = {k for r in runs for k, _ in r.uses}
    chapters = [k for k in spec_keys() if k in used] + sorted(used - set(spec_keys()))
    lines += ["", f"{len(runs)} runs ({', '.join(chapters)}): {len(runs) - len(todo)} recorded, {len(todo)} to "
                  f"train; expected {_hours(wall.of(todo))} of CPU ({wall.describe()})", budget_line(runs, wall)]
    return "\n".join(lines)


def budget_markdown(results_root=None) -> str:
    """One sentence on the whole grid against :data:`fr.papers.GRID_BUDGET_HOURS`, as designed and as cut, at the
    shortest recorded wall time of a run (computed from the specs and the records; for the chapters)."""
    cut, design = plan(), plan(cut=False)
    wall = WallTime(_recorded(results_root, {r.config.name for r in design}))
    quiet = wall.fastest()
    if quiet is None:
        return (f"The book's whole CPU grid (every chapter, a run shared by chapters counted once) must fit "
                f"{GRID_BUDGET_HOURS:g} hours of this machine: {len(design)} runs as designed, {len(cut)} as cut.")
    return (f"The book's whole CPU grid (every chapter, a run shared by chapters counted once) must fit "
            f"{GRID_BUDGET_HOURS:g} hours of this machine. A run takes {quiet / 60:.1f} min with the machine to itself "
            f"(the shortest recorded, training and every protocol), so the design's {len(design)} runs (3 seeds a "
            f"row, 5 for the rows of each central comparison) would take {_hours(wall.of(design, fastest=True))}; "
            f"as cut, {len(cut)} runs take {_hours(wall.of(cut, fastest=True))}.")


def progress_markdown(results_root=None, *, link: str | None = "executed") -> str:
    """How much of the (cut) grid is recorded: a sentence with the commands that list and train the rest, then a
    table of each chapter's runs recorded (a run two chapters share counts in both); chapters link to
    ``<link>/<notebook>`` (None: no links)."""
    runs = plan()
    done = set(_recorded(results_root, {r.config.name for r in runs})["config_hash"].dropna())
    k = sum(r.config_hash in done for r in runs)
    rest = ("every run is recorded." if k == len(runs) else
            f"`python -m fr.grid --plan` lists them in training order and `python -m fr.grid` trains the "
            f"{len(runs) - k} left, resuming where it stopped.")
    lines = [f"Recorded so far: {k} of the grid's {len(runs)} runs; {rest}", "",
             "| chapter | runs recorded | of the grid's |", "|---|---|---|"]
    for key in spec_keys():
        mine = [r for r in runs if key in r.chapters]
        if not mine:
            continue
        stem = load_chapter(key).spec.chapter
        name = f"[{stem}]({link}/{stem})" if link else stem
        lines.append(f"| {name} | {sum(r.config_hash in done for r in mine)} | {len(mine)} |")
    return "\n".join(lines)


def budget_line(runs: Sequence[GridRun], wall: WallTime) -> str:
    """The whole grid (recorded runs included) against :data:`fr.papers.GRID_BUDGET_HOURS`, at the shortest
    recorded wall time of a run (the machine to itself)."""
    quiet = wall.of(runs, fastest=True)
    if quiet is None:
        return f"budget: {GRID_BUDGET_HOURS:g} h; no recorded run to measure the grid against it"
    verdict = "within" if quiet <= GRID_BUDGET_HOURS * 3600 else "OVER"
    return (f"budget: the whole grid takes {_hours(quiet)} at the shortest recorded run ({wall.fastest():.0f} s, "
            f"the machine to itself): {verdict} the {GRID_BUDGET_HOURS:g} h budget")


@dataclass
class GridResult:
    """What one :func:`run_grid` call did (run ids), and why it stopped."""

    trained: list[str]
    failed: list[tuple[str, str]]
    skipped: list[str]
    left: list[str]
    stopped: str


def _default_train(cfg: ExperimentCfg, results_root) -> RunRecord:
    from .train import run

    return run(cfg, results_root=results_root, progress=False)


def run_grid(runs: Sequence[GridRun], *, results_root=None, max_runs: int | None = None,
             max_hours: float | None = None,
             train: Callable[[ExperimentCfg, Any], RunRecord] | None = None) -> GridResult:
    """Train the runs of ``runs`` that are not recorded under ``results_root``, one at a time, in the given order
    except that a run with a checkpoint to resume goes first (:func:`resume_first`).

    max_runs:  start at most this many runs.
    max_hours: start no run that would end past this many hours after the call began, by the expected wall
               time of a run (:class:`WallTime`; with nothing recorded, only the time already spent is checked).
    train:     ``train(config, results_root) -> RunRecord`` (default :func:`fr.train.run`, without progress bar).
    A run that raises is logged with its error and the queue goes on (``KeyboardInterrupt`` stops it); one that
    another process is training (:class:`fr.engine.lock.RunBusy`) is skipped and does not count as started."""
    if max_runs is not None and max_runs < 0:
        raise ValueError(f"max_runs must be >= 0, got {max_runs}")
    if max_hours is not None and not max_hours > 0:
        raise ValueError(f"max_hours must be > 0, got {max_hours}")
    train = train or _default_train
    t0 = time.monotonic()
    recorded_df = _recorded(results_root, {r.config.name for r in runs})
    done = set(recorded_df["config_hash"].dropna())
    wall = WallTime(recorded_df)
    todo = resume_first([r for r in runs if r.config_hash not in done], results_root)
    result = GridResult([], [], [r.run_id for r in runs if r.config_hash in done], [], "every run is recorded")
    n = len(todo)
    log.info("grid: %d runs, %d recorded, %d to train; expected %s (%s)", len(runs), len(runs) - n, n,
             _hours(wall.of(todo)), wall.describe())
    for k, r in enumerate(todo, 1):
        if max_runs is not None and len(result.trained) + len(result.failed) >= max_runs:
            result.stopped = f"--max-runs {max_runs} reached"
            break
        expected = wall.expected(r.trains)
        spent = time.monotonic() - t0
        if max_hours is not None and spent + (expected or 0.0) > max_hours * 3600:
            result.stopped = (f"--max-hours {max_hours:g}: {r.run_id} (expected {expected or 0:.0f} s) would end "
                              f"past it ({spent / 3600:.2f} h spent)")
            break
        if _complete(results_root, r):  # recorded by another process since the queue was read
            log.info("[%d/%d] %s: recorded meanwhile, skipped", k, n, r.label())
            result.skipped.append(r.run_id)
            continue
        state = _folder_state(results_root, r)
        log.info("[%d/%d] start %s%s  (%s for the %d left)", k, n, r.label(), f" — {state}" if state else "",
                 _eta(wall.of(todo[k - 1:])), n - k + 1)
        t_run, t_wall = time.monotonic(), time.time()
        try:
            rec = train(r.config, results_root)
            if not rec.complete:
                raise RuntimeError(f"training returned an {rec.status} record in {rec.path}")
        except RunBusy as e:  # another worker (or a notebook) is training it: leave it to them
            log.info("[%d/%d] %s: skipped, %s", k, n, r.run_id, e)
            result.skipped.append(r.run_id)
            continue
        except KeyboardInterrupt:
            log.info("[%d/%d] interrupted %s after %.0f s; a rerun resumes it", k, n, r.run_id,
                     time.monotonic() - t_run)
            raise
        except Exception as e:  # noqa: BLE001 - one run's failure must not stop the queue; it is logged in full
            seconds = time.monotonic() - t_run
            log.error("[%d/%d] FAILED %s after %.0f s: %s: %s\n%s", k, n, r.run_id, seconds, type(e).__name__, e,
                      traceback.format_exc().rstrip())
            result.failed.append((r.run_id, f"{type(e).__name__}: {e}"))
            continue
        seconds = time.monotonic() - t_run
        if _written_before(rec, t_wall):  # finished by another process just before this one could take it
            log.info("[%d/%d] %s: recorded meanwhile, skipped", k, n, r.label())
            result.skipped.append(r.run_id)
            continue
        recorded_wall = getattr(rec.metrics, "wall_time_s", None)
        wall.add(r.trains, float(recorded_wall) if recorded_wall is not None else seconds)
        result.trained.append(r.run_id)
        log.info("[%d/%d] done %s in %.0f s: %s  (%s for the %d left)", k, n, r.run_id, seconds, headline(rec),
                 _eta(wall.of(todo[k:])), n - k)
    else:
        if n:
            result.stopped = "queue finished" + (f" with {len(result.failed)} failure(s)" if result.failed else "")
    handled = set(result.trained) | {rid for rid, _ in result.failed} | set(result.skipped)
    result.left = [r.run_id for r in todo if r.run_id not in handled]
    log.info("grid stopped: %s; %d trained, %d failed, %d left, %.2f h", result.stopped, len(result.trained),
             len(result.failed), len(result.left), (time.monotonic() - t0) / 3600)
    return result


# --- command line -------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fr.grid", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chapters", nargs="+", metavar="KEY", default=None,
                   help=f"only these chapters' grids (default: all: {' '.join(spec_keys())})")
    p.add_argument("--max-runs", type=int, default=None, metavar="N", help="start at most N runs")
    p.add_argument("--max-hours", type=float, default=None, metavar="H",
                   help="start no run that would end past H hours from now (by the expected wall time of a run)")
    p.add_argument("--all-rows", action="store_true",
                   help="the grid as designed: also the rows and seeds the specs cut to fit the "
                        f"{GRID_BUDGET_HOURS:g} h budget (each chapter's budget note says which)")
    p.add_argument("--plan", action="store_true", help="print the plan (runs in order, recorded, expected CPU "
                                                       "hours) and exit; nothing is trained")
    p.add_argument("--results-root", default=None, help="where runs/ lives (default $FR_RESULTS or <repo>/results)")
    p.add_argument("--log", type=Path, default=None, metavar="FILE", help="also append the progress log to FILE")
    return p


def _setup_logging(log_file: Path | None) -> list[logging.Handler]:
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        runs = plan(args.chapters, cut=not args.all_rows)
    except ValueError as e:
        _parser().error(str(e))
    if args.plan:
        print(describe_plan(runs, args.results_root))
        return 0
    logging.basicConfig(level=logging.WARNING)  # the trainers' own messages: warnings and errors only
    handlers = _setup_logging(args.log)
    try:
        res = run_grid(runs, results_root=args.results_root, max_runs=args.max_runs, max_hours=args.max_hours)
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
