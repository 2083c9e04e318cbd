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
    assert per_run.groupby("head")["params"].first().to_dict() == {"cosface": "s=16, m=0.2", "softmax": "s=16",
                                                                   "untrained": ""}
    assert ((per_run["ci_low"] <= per_run["accuracy"]) & (per_run["accuracy"] <= per_run["ci_high"])).all()
    correct = report.load_correct(per_run["run_id"].iloc[0], "toy", root=results)
    assert correct.shape == (20,) and abs(100 * correct.mean() - per_run["accuracy"].iloc[0]) < 1e-9
    per_head = report.per_head_table(per_run)
    assert per_head.shape[0] == 3
    paired = report.paired_table(per_run, "cosface", root=results)
    assert len(paired) == 3 and set(paired["seed"]) == {0, 1}
    assert ((paired["mcnemar_p"] >= 0) & (paired["mcnemar_p"] <= 1)).all()
    assert report.plot_accuracies(per_run).axes and report.plot_training_curves(runs, root=results).axes


def test_engine_runs_table_reads_what_each_run_recorded(grid):
    results, _ = grid
    table = report.engine_runs_table("tiny_", root=results)
    assert len(table) == 5 and set(table["launch"]) == {"single process"}
    per_run = report.per_run_table(report.select_runs("tiny_grid", root=results), ["toy"], root=results)
    got = table.set_index("run_id")["toy %"].sort_index()
    want = per_run.set_index("run_id")["accuracy"].sort_index()
    assert (got - want).abs().max() < 1e-9 and set(table["toy pairs"]) == {20}
    trained = table[table["steps"] > 0]
    assert len(trained) == 4 and (trained["first_loss"] > 0).all() and table["steps"].min() == 0
    assert report.engine_runs_table("no_such_prefix", root=results).empty


def test_select_runs_on_an_empty_results_root_has_the_columns_callers_filter_on(tmp_path):
    runs = report.select_runs("anything", root=tmp_path)
    assert runs.empty
    for col in ("seed", "head", "head_params", "steps", "git_sha"):
        assert col in runs.columns
    assert runs[runs["seed"].isin([0]) & (runs["head"] != "untrained")].empty


def _paired(rows):
    import pandas as pd
    return pd.DataFrame([{"head": h, "params": "{}", "seed": s, "set": "lfw", "delta_vs_cosface": d,
                          "ci_low": lo, "ci_high": hi} for h, s, d, lo, hi in rows])


def test_head_effects_call_an_effect_only_when_every_seed_agrees():
    eff = report.head_effects(_paired([
        ("a", 0, 2.0, 1.0, 3.0), ("a", 1, 1.5, 0.5, 2.5),      # both seeds above 0
        ("b", 0, 2.0, 1.0, 3.0), ("b", 1, -1.5, -2.5, -0.5),   # significant each time, opposite signs
        ("c", 0, -2.0, -3.0, -1.0), ("c", 1, -1.0, -1.8, -0.2),
        ("d", 0, 0.3, -0.5, 1.1)]), "cosface").set_index("head")
    assert eff.loc["a", "verdict"] == "better" and eff.loc["c", "verdict"] == "worse"
    assert eff.loc["b", "verdict"] == "not distinguishable" and eff.loc["d", "verdict"] == "one seed only"
    assert eff.loc["b", "mean_delta"] == pytest.approx(0.25) and eff.loc["b", "seeds"] == 2


def test_findings_are_computed_from_the_runs():
    import pandas as pd
    per_run = pd.DataFrame([
        {"head": h, "seed": s, "set": st, "accuracy": a, "fold_std": 2.0}
        for h, s, st, a in [("cosface", 0, "lfw", 80.0), ("cosface", 1, "lfw", 81.0),
                            ("arcface", 0, "lfw", 79.0), ("arcface", 1, "lfw", 80.0),
                            ("untrained", 0, "lfw", 66.0),
                            ("cosface", 0, "cfp", 57.0), ("cosface", 1, "cfp", 58.0),
                            ("arcface", 0, "cfp", 57.5), ("arcface", 1, "cfp", 57.5), ("untrained", 0, "cfp", 58.0)]])
    eff = report.head_effects(_paired([("arcface", 0, -1.0, -1.8, -0.2), ("arcface", 1, -1.0, -1.5, 0.1)]), "cosface")
    md = report.findings_markdown(per_run, eff, "cosface")
    lfw, cfp = md.splitlines()
    assert "79.50% to 80.50%" in lfw and "66.00%" in lfw and "+14.00 points" in lfw
    assert "does not learn" not in lfw and "arcface -1.00 (not distinguishable)" in lfw
    assert "does not learn this set" in cfp and "-0.50 points" in cfp


@pytest.mark.parametrize("params, head, text", [
    ({"s": 30.0, "m": 0.35}, None, "s=30, m=0.35"),
    ('{"m": 0.35, "s": 30.0}', "cosface", "s=30, m=0.35"),        # load_runs' sorted JSON, in the head's order
    ('{"h": 0.333, "m": 0.4, "s": 30.0}', "adaface", "s=30, m=0.4, h=0.333"),
    ({"zeta": 1, "s": 64.0}, "cosface", "s=64, zeta=1"),           # unknown keys after the head's own
    ({"plus": True, "ms": [0.1, 0.25], "cfg": {"a": 1.5}}, None, "plus=True, ms=[0.1, 0.25], cfg={a=1.5}"),
    ("{}", None, ""), (None, "untrained", ""), ("", None, ""),
])
def test_format_params_is_readable(params, head, text):
    assert report.format_params(params, head) == text


def test_format_params_names_bad_input():
    with pytest.raises(ValueError, match="not JSON"):
        report.format_params("s=30")
    with pytest.raises(TypeError, match="mapping"):
        report.format_params([("s", 30)])
