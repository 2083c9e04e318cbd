"""The book's tables come from recorded runs: a tiny grid is trained, found again, and compared."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from fr import report

TINY = {
    "name": "tiny_grid",
    "data.train": "synthetic", "data.synthetic_classes": 16, "data.synthetic_per_class": 4, "data.batch_size": 8,
    "backbone.name": "iresnet_tiny",
    "backbone.params": {"input_size": 16, "embedding_size": 32, "width": 0.25},
    "optim.lr": 0.05, "schedule.kind": "multistep", "schedule.steps": 4, "schedule.milestones": [1.0],
    "eval.sets": ["toy"], "runtime.device": "cpu", "runtime.threads": 1, "runtime.progress": False,
}
ROWS = {"softmax": {"head.name": "softmax", "head.params": {"s": 16.0}},
        "cosface": {"head.name": "cosface", "head.params": {"s": 16.0, "m": 0.2}}}


@pytest.fixture
def grid(tmp_path, toy_bin, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep the session's thread count
    results = tmp_path / "results"
    records = report.run_grid(None, ROWS, seeds=[0, 1], overrides=TINY, results_root=results)
    report.run_grid(None, {"init": {"schedule.steps": 0}}, seeds=[0], overrides=TINY, results_root=results)
    return results, records


def test_grid_is_recorded_and_found_again_without_training(grid, monkeypatch):
    results, records = grid
    assert len(records) == 4 and len({r.run_id for r in records}) == 4
    import fr.train

    def no_training(*a, **k):
        raise AssertionError("a recorded run was trained again")

    monkeypatch.setattr(fr.train, "Trainer", no_training)
    again = report.run_grid(None, ROWS, seeds=[0, 1], overrides=TINY, results_root=results)
    assert [r.run_id for r in again] == [r.run_id for r in records]


def test_tables_come_from_the_records(grid):
    results, _ = grid
    runs = report.select_runs("tiny_grid", root=results)
    assert sorted(runs["head"].unique()) == ["cosface", "softmax", "untrained"] and len(runs) == 5
    per_run = report.per_run_table(runs, ["toy"], root=results)
    assert len(per_run) == 5
    assert ((per_run["ci_low"] <= per_run["accuracy"]) & (per_run["accuracy"] <= per_run["ci_high"])).all()
    correct = report.load_correct(per_run["run_id"].iloc[0], "toy", root=results)
    assert correct.shape == (20,) and abs(100 * correct.mean() - per_run["accuracy"].iloc[0]) < 1e-9
    per_head = report.per_head_table(per_run)
    assert per_head.shape[0] == 3
    paired = report.paired_table(per_run, "cosface", root=results)
    assert len(paired) == 3 and set(paired["seed"]) == {0, 1}
    assert ((paired["mcnemar_p"] >= 0) & (paired["mcnemar_p"] <= 1)).all()
    assert report.plot_accuracies(per_run).axes and report.plot_training_curves(runs, root=results).axes
