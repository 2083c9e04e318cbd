"""fr.grid: the union of the chapters' plans, its order, and the queue on fabricated records (a stand-in trainer
and a fake clock) and on a tiny synthetic config (a run killed with or without a checkpoint is completed)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import fr.grid as G
import fr.train
from fr.config import dump_yaml, load_config
from fr.papers import GRID_BUDGET_HOURS
from fr.results import load_run, run_id, runs_root
from records import tiny_overrides, write_record

ROOT = Path(__file__).resolve().parents[1]

TINY = tiny_overrides("tiny_grid", steps=6)


def grid_run(row: str, seed: int, *, central=False, chapters=("toy",), position=0, **extra) -> G.GridRun:
    """A GridRun of the tiny config: ``row`` picks the margin, so each row is a distinct config."""
    ov = {**TINY, "head.params": {"s": 30.0, "m": 0.1 + 0.01 * (sum(map(ord, row)) % 20)}, **extra, "runtime.seed": seed}
    return G.GridRun(load_config(None, ov), "tiny", ov, seed, tuple((c, row) for c in chapters), central, position)


def record(root: Path, cfg, *, wall: float = 100.0, lfw: float = 0.8) -> str:
    """A complete (fabricated) record of ``cfg`` under ``root``."""
    return write_record(root, cfg, {"lfw": {"accuracy": lfw, "spread": 0.0, "protocol": "fabricated", "sha256": "x",
                                            "n_pairs": 10}},
                        steps=10 if cfg.schedule.steps is None else cfg.schedule.steps, wall=wall)  # None: by epochs


class FakeTrainer:
    """Records a run in ``wall`` fake seconds (advancing the fake clock); raises for the run ids in ``fail``."""

    def __init__(self, clock, fail=(), wall=100.0):
        self.clock, self.fail, self.wall, self.calls = clock, set(fail), wall, []

    def __call__(self, cfg, results_root):
        self.calls.append(run_id(cfg))
        self.clock.now += self.wall
        if run_id(cfg) in self.fail:
            self.fail.discard(run_id(cfg))  # fails once
            raise RuntimeError("loss is NaN at step 3")
        record(results_root, cfg, wall=self.wall, lfw=0.75)
        return load_run(runs_root(results_root) / run_id(cfg))


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(G.time, "monotonic", c)
    return c


@pytest.fixture
def grid_log(tmp_path):
    path = tmp_path / "grid.log"
    handlers = G._setup_logging(path)
    yield path
    for h in handlers:
        G.log.removeHandler(h)
        h.close()


# --- the plan -----------------------------------------------------------------------------------------------------

def test_order_goes_by_seed_wave_then_tier_then_seed_then_reading_order():
    runs = []
    for pos, (row, central, chapters) in enumerate([("other", False, ("b",)), ("shared", False, ("a", "b")),
                                                    ("central", True, ("a",))]):
        for seed in range(5 if central else 3):
            runs.append(grid_run(row, seed, central=central, chapters=chapters, position=pos))
    got = [(r.uses[0][1], r.seed) for r in G.order(runs)]
    assert got == [("central", 0), ("central", 1), ("shared", 0), ("shared", 1), ("other", 0), ("other", 1),
                   ("central", 2), ("shared", 2), ("other", 2), ("central", 3), ("central", 4)]
    assert [G.wave(s) for s in range(6)] == [0, 0, 1, 2, 2, 2]
    assert [r.tier for r in runs[:1] + runs[3:4] + runs[6:7]] == [G.TIER_OTHER, G.TIER_SHARED, G.TIER_CENTRAL]


def test_the_union_of_every_chapter_lists_a_shared_run_once_and_orders_it():
    runs = G.plan()
    hashes = [r.config_hash for r in runs]
    assert len(set(hashes)) == len(hashes)
    from fr import chapter
    from fr.papers import spec_keys

    by_hash = {r.config_hash: r for r in runs}
    for key in spec_keys():  # every chapter's run is in the union, with this chapter among its users
        ch = chapter.load(key)
        for p in ch.plan():
            assert (key, p.row) in by_hash[p.config_hash].uses
            assert by_hash[p.config_hash].central >= (p.row in ch.spec.central_rows())
    # CosFace is a row of several chapters: one run per seed, used by each of them
    cos0 = [r for r in runs if ("baselines", "cosface") in r.uses and r.seed == 0]
    assert len(cos0) == 1 and len(cos0[0].chapters) > 1
    # every row reaches 2, then 3 seeds before any row gets its 3rd, then its 4th seed
    seeds = [r.seed for r in runs]
    assert max(seeds[: seeds.index(2)]) == 1 and max(seeds[: seeds.index(3)]) == 2
    # within the first wave, the rows of central comparisons come first
    first = [r for r in runs if G.wave(r.seed) == 0]
    tiers = [r.tier for r in first]
    assert tiers == sorted(tiers) and tiers[0] == G.TIER_CENTRAL


def test_unknown_chapters_are_named():
    with pytest.raises(ValueError, match=r"unknown chapter\(s\) \['smafce'\]; chapters: baselines"):
        G.collect(["smafce"])


def test_plan_prints_runs_recorded_and_expected_hours_and_trains_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(G, "_default_train", lambda *a: pytest.fail("--plan must not train"))
    root = tmp_path / "results"
    assert G.main(["--plan", "--chapters", "harmonic", "--results-root", str(root)]) == 0
    out = capsys.readouterr().out
    runs = G.plan(["harmonic"])
    assert f"{len(runs)} runs (harmonic): 0 recorded, {len(runs)} to train; expected unknown of CPU" in out
    record(root, runs[0].config, wall=1800.0)
    assert G.main(["--plan", "--chapters", "harmonic", "--results-root", str(root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["1", "0", "central", "recorded"] and runs[0].run_id in lines[1]
    assert "harmonic:" in lines[1] and lines[2].split()[3:5] == ["to", "train"]
    hours = (len(runs) - 1) * 0.5
    assert (f"{len(runs)} runs (harmonic): 1 recorded, {len(runs) - 1} to train; expected {hours:.1f} h of CPU "
            f"(median wall time 1800 s a trained run, over 1 recorded run(s))") in out


# --- the queue ----------------------------------------------------------------------------------------------------

def test_recorded_runs_are_skipped_and_a_failure_is_logged_then_retried(tmp_path, clock, grid_log):
    root = tmp_path / "results"
    runs = [grid_run(r, s, position=i) for i, (r, s) in enumerate([("a", 0), ("b", 0), ("c", 0), ("a", 1)])]
    record(root, runs[1].config, wall=200.0)
    trainer = FakeTrainer(clock, fail={runs[2].run_id}, wall=100.0)
    res = G.run_grid(runs, results_root=root, train=trainer)
    assert trainer.calls == [runs[0].run_id, runs[2].run_id, runs[3].run_id]
    assert res.trained == [runs[0].run_id, runs[3].run_id] and res.skipped == [runs[1].run_id]
    assert res.failed == [(runs[2].run_id, "RuntimeError: loss is NaN at step 3")]
    assert res.stopped == "queue finished with 1 failure(s)" and res.left == []
    text = grid_log.read_text()
    assert "4 runs, 1 recorded, 3 to train; expected 0.2 h" in text  # 3 x the 200 s recorded
    assert f"[1/3] start {runs[0].run_id} [a, seed 0]" in text and "ETA 0.2 h" in text
    assert f"[1/3] done {runs[0].run_id} in 100 s: LFW 75.00%" in text
    assert f"[2/3] FAILED {runs[2].run_id} after 100 s: RuntimeError: loss is NaN at step 3" in text
    # the rerun trains only the failed run
    trainer2 = FakeTrainer(clock)
    res2 = G.run_grid(runs, results_root=root, train=trainer2)
    assert trainer2.calls == [runs[2].run_id] and res2.trained == [runs[2].run_id] and not res2.failed
    assert res2.stopped == "queue finished"
    res3 = G.run_grid(runs, results_root=root, train=FakeTrainer(clock))
    assert res3.trained == [] and res3.stopped == "every run is recorded"


def test_max_runs_and_max_hours_stop_before_starting_a_run(tmp_path, clock):
    root = tmp_path / "results"
    runs = [grid_run(r, 0, position=i) for i, r in enumerate("abcde")]
    res = G.run_grid(runs, results_root=root, max_runs=2, train=FakeTrainer(clock))
    assert res.trained == [runs[0].run_id, runs[1].run_id] and res.stopped == "--max-runs 2 reached"
    assert res.left == [r.run_id for r in runs[2:]]
    # 2 runs of 100 s recorded: in 0.07 h (252 s) two more fit (200 s), a third would end at 300 s
    res = G.run_grid(runs, results_root=root, max_hours=0.07, train=FakeTrainer(clock))
    assert res.trained == [runs[2].run_id, runs[3].run_id]
    assert res.stopped.startswith(f"--max-hours 0.07: {runs[4].run_id} (expected 100 s) would end past it")
    with pytest.raises(ValueError, match="max_hours must be > 0"):
        G.run_grid(runs, results_root=root, max_hours=0)


def test_a_run_another_process_is_training_is_skipped_and_not_counted_as_started(tmp_path, clock, grid_log):
    from fr.engine.lock import RunBusy

    root = tmp_path / "results"
    runs = [grid_run(r, 0, position=i) for i, r in enumerate("abc")]
    trainer = FakeTrainer(clock)

    def train(cfg, results_root):
        if run_id(cfg) == runs[0].run_id:
            raise RunBusy(f"run {run_id(cfg)} is being trained by another process (pid 1 on elsewhere)")
        return trainer(cfg, results_root)

    res = G.run_grid(runs, results_root=root, max_runs=1, train=train)
    assert res.skipped == [runs[0].run_id] and res.trained == [runs[1].run_id] and not res.failed
    assert res.left == [runs[2].run_id]
    assert f"[1/3] {runs[0].run_id}: skipped, run {runs[0].run_id} is being trained by another process" \
        in grid_log.read_text()


def test_a_run_another_process_recorded_just_before_is_not_counted_as_trained_here(tmp_path, clock, grid_log):
    root = tmp_path / "results"
    runs = [grid_run(r, 0, position=i) for i, r in enumerate("ab")]
    trainer = FakeTrainer(clock)

    def train(cfg, results_root):
        if run_id(cfg) == runs[0].run_id:  # the trainer finds it complete: written by another process, earlier
            record(results_root, cfg, wall=500.0)
            d = runs_root(results_root) / run_id(cfg) / "metrics.json"
            os.utime(d, (d.stat().st_atime - 60, d.stat().st_mtime - 60))
            return load_run(d.parent)
        return trainer(cfg, results_root)

    res = G.run_grid(runs, results_root=root, max_runs=1, train=train)
    assert res.skipped == [runs[0].run_id] and res.trained == [runs[1].run_id]
    assert f"{runs[0].label()}: recorded meanwhile, skipped" in grid_log.read_text()


def test_the_command_line_trains_with_the_default_trainer_and_exits_1_on_a_failure(tmp_path, clock, monkeypatch,
                                                                                  capsys):
    root = tmp_path / "results"
    runs = [grid_run("a", 0), grid_run("b", 0, position=1)]
    monkeypatch.setattr(G, "plan", lambda keys, cut=True: runs)
    monkeypatch.setattr(G, "_default_train", FakeTrainer(clock, fail={runs[1].run_id}))
    log = tmp_path / "logs" / "grid.log"
    assert G.main(["--results-root", str(root), "--log", str(log), "--max-runs", "5"]) == 1
    assert "[2/2] FAILED" in log.read_text() and "[2/2] FAILED" in capsys.readouterr().out
    assert G.main(["--results-root", str(root), "--log", str(log)]) == 0
    assert log.read_text().count("grid stopped") == 2


def test_wall_time_keeps_trained_and_zero_step_runs_apart():
    w = G.WallTime(pd.DataFrame({"steps": [10, 10, 0], "wall_time_s": [100.0, 300.0, 20.0]}))
    assert w.expected(True) == 200.0 and w.expected(False) == 20.0
    untrained = grid_run("u", 0, **{"schedule.steps": 0})
    assert not untrained.trains and w.of([grid_run("a", 0), untrained]) == 220.0
    assert G.WallTime(pd.DataFrame({"steps": [0], "wall_time_s": [20.0]})).expected(True) == 20.0  # the other kind
    assert G.WallTime(pd.DataFrame()).of([untrained]) is None


def test_wall_time_expects_the_recorded_median_then_what_this_queue_measures():
    # recorded: two runs slowed by other work; the median is not pulled up by them as the mean would be
    w = G.WallTime(pd.DataFrame({"steps": [10] * 5, "wall_time_s": [700.0, 720.0, 740.0, 2400.0, 3400.0]}))
    assert w.expected() == 740.0 and "median wall time 740 s" in w.describe()
    w.add(True, 660.0)  # trained by this queue: the machine as it is now
    w.add(True, 680.0)
    assert w.expected() == 670.0 and "the mean of the 2 this queue trained" in w.describe()
    assert w.fastest() == 660.0 and w.expected(False) == 670.0  # no 0-step run known: the other kind's
    w.add(False, 60.0)  # an untrained run (evaluation only) timed now does not set the trained runs' rate
    assert w.expected(True) == 670.0 and w.expected(False) == 60.0
    fresh = G.WallTime(pd.DataFrame({"steps": [10], "wall_time_s": [700.0]}))
    fresh.add(False, 60.0)
    assert fresh.expected(True) == 700.0  # the recorded trained run, not the live untrained one


# --- a killed run, with the real trainer ------------------------------------------------------------------------

def test_a_run_killed_after_a_checkpoint_is_resumed_and_one_killed_before_restarts_with_clean_logs(tmp_path):
    root = tmp_path / "results"
    resumed, restarted = grid_run("a", 0), grid_run("b", 0, position=1)
    part = fr.train.run(resumed.config, results_root=root, stop_after=3)  # killed after its checkpoint at step 3
    assert not part.complete and (part.path / "ckpt" / "last.pt").exists()
    # killed before its first checkpoint: a config and log rows of the lost session, nothing else
    d = runs_root(root) / restarted.run_id
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(dump_yaml(restarted.config))
    (d / "train_log.csv").write_text("step,loss\n1,9.9\n2,9.8\n")
    assert "partial (checkpoint: resumes first)" in G.describe_plan([resumed, restarted], root)
    assert "partial (no checkpoint: restarts)" in G.describe_plan([resumed, restarted], root)
    from fr.engine.lock import run_lock

    with run_lock(part.path):  # as another process training it would
        assert f"training now (pid {os.getpid()} on " in G.describe_plan([resumed, restarted], root)

    res = G.run_grid([restarted, resumed], results_root=root)  # the run with a checkpoint goes first
    assert res.trained == [resumed.run_id, restarted.run_id]
    a, b = load_run(part.path), load_run(d)
    assert a.complete and a.env["resumed_from_step"] == 3 and a.metrics.steps == 6
    assert b.complete and b.env["resumed_from_step"] is None
    assert list(b.train_log()["step"]) == list(range(1, 7))  # the lost session's rows are gone
    assert list(a.train_log()["step"]) == list(range(1, 7))


# --- the budget ---------------------------------------------------------------------------------------------------

def test_the_cut_grid_is_a_subset_of_the_design_and_all_rows_restores_it(capsys):
    cut, design = G.plan(), G.plan(cut=False)
    assert {r.config_hash for r in cut} < {r.config_hash for r in design}
    from fr import chapter
    from fr.papers import spec_keys

    for key in spec_keys():  # a row the spec cuts is absent from the cut plan, present in the design
        spec = chapter.load(key).spec
        for row, (have, want) in spec.cut_rows().items():
            assert sum((key, row) in r.uses for r in cut) <= have  # (a shared run may come from another chapter)
            assert sum((key, row) in r.uses for r in design) == want
    assert G.main(["--plan", "--all-rows", "--chapters", "smaface"]) == 0
    assert f"{len(G.plan(['smaface'], cut=False))} runs (smaface)" in capsys.readouterr().out


def test_budget_line_measures_the_whole_grid_at_the_shortest_recorded_run():
    runs = [grid_run("a", 0), grid_run("a", 1), grid_run("u", 0, **{"schedule.steps": 0})]
    w = G.WallTime(pd.DataFrame({"steps": [10, 10, 0], "wall_time_s": [700.0, 1500.0, 60.0]}))
    assert w.fastest(True) == 700.0 and w.of(runs, fastest=True) == 1460.0
    assert G.budget_line(runs, w).endswith(f"within the {GRID_BUDGET_HOURS:g} h budget")
    many = [grid_run("a", s) for s in range(int(GRID_BUDGET_HOURS * 3600 / 700) + 1)]
    assert "OVER the" in G.budget_line(many, w)
    assert "no recorded run" in G.budget_line(runs, G.WallTime(pd.DataFrame()))


@pytest.mark.skipif(not any((ROOT / "results" / "runs").glob("celeba_v2-*")), reason="no celeba_v2 run recorded")
def test_the_committed_grid_fits_its_budget_at_the_recorded_run_time():
    """The specs' cuts are sized against the committed records: the whole grid, at the shortest recorded run of
    the recipe, fits GRID_BUDGET_HOURS (the chapters print this arithmetic)."""
    runs = G.plan()
    wall = G.WallTime(G._recorded(ROOT / "results", {r.config.name for r in runs}))
    assert wall.of(runs, fastest=True) <= GRID_BUDGET_HOURS * 3600, G.budget_line(runs, wall)
    assert wall.of(G.plan(cut=False), fastest=True) > GRID_BUDGET_HOURS * 3600  # else nothing needed cutting


def test_a_finished_grid_says_so_in_progress_budget_and_each_chapter(tmp_path):
    """The end state (every run of every chapter recorded, fabricated here) reads as finished everywhere the book
    reports progress: the front page's count, each chapter's missing-runs note, and the queue's plan."""
    from fr import chapter

    root = tmp_path / "results"
    runs = G.plan()
    for r in runs:
        record(root, r.config, wall=600.0)
    text = G.progress_markdown(root)
    assert text.startswith(f"Recorded so far: {len(runs)} of the grid's {len(runs)} runs; every run is recorded.")
    for key in chapter.spec_keys():
        mine = [r for r in runs if key in r.chapters]
        assert f"| {len(mine)} | {len(mine)} |" in text
        ch = chapter.load(key).prepare("report", results_root=root)
        assert ch.missing_runs().empty
        assert ch.missing_markdown() == f"Every run of this chapter's grid is recorded ({len(ch.plan())} runs)."
    assert "as cut, " in G.budget_markdown(root)
    out = G.describe_plan(runs, root)
    assert f"{len(runs)} recorded, 0 to train; expected 0.0 h of CPU" in out
