"""Recipe-study table: per-head spread over seeds, paired differences, minimum detectable difference."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from fr.power import min_detectable_difference
from fr.study import recipe_table


def _runs(acc_cos, acc_arc):
    rows = []
    for head, accs in (("cosface", acc_cos), ("arcface", acc_arc)):
        for seed, a in enumerate(accs):
            rows.append({"head": head, "seed": seed, "steps": 10, "lfw.accuracy": a, "train_time_s": 300.0,
                         "wall_time_s": 420.0})
    return pd.DataFrame(rows)


def test_recipe_table_pairs_by_seed_and_reports_points():
    runs = _runs([0.80, 0.81, 0.82], [0.81, 0.83, 0.82])
    row = recipe_table({"new": runs}).iloc[0]
    assert row["metric"] == "lfw" and row["cosface_n"] == 3
    assert row["cosface_mean"] == pytest.approx(81.0) and row["cosface_std"] == pytest.approx(1.0)
    assert row["diff_mean"] == pytest.approx(1.0) and row["diff_std"] == pytest.approx(1.0)
    assert row["mdd_5_seeds"] == pytest.approx(min_detectable_difference(1.0, 5))
    assert row["run_time_s"] == 420.0 and row["run_time_min_s"] == 420.0


def test_unpaired_seeds_are_left_out_of_the_difference_and_untrained_runs_ignored():
    runs = _runs([0.80, 0.81, 0.82], [0.81, 0.83])
    runs = pd.concat([runs, pd.DataFrame([{"head": "cosface", "seed": 9, "steps": 0, "lfw.accuracy": 0.66}])])
    row = recipe_table({"r": runs}).iloc[0]
    assert row["cosface_n"] == 3 and row["paired_n"] == 2 and row["diff_mean"] == pytest.approx(1.5)
    one = recipe_table({"r": _runs([0.8], [0.81])}).iloc[0]
    assert math.isnan(one["diff_std"]) and math.isnan(one["mdd_3_seeds"])


def test_metric_columns_cover_accuracy_tar_and_rank_with_values():
    from fr.study import metric_columns

    df = pd.DataFrame({"lfw.accuracy": [0.8], "lfw_allpairs.tar@1e-04": [0.3], "lfw_allpairs.tar@1e-07": [None],
                       "lfw_ident_lq.rank1": [0.2], "lfw.protocol": ["x"], "lfw.spread": [0.01]})
    assert metric_columns(df) == ["lfw.accuracy", "lfw_allpairs.tar@1e-04", "lfw_ident_lq.rank1"]


def test_recipe_goals_are_judged_from_the_table_and_undecided_without_seeds():
    from fr.study import recipe_goals

    quiet = _runs([0.860, 0.862, 0.864], [0.866, 0.868, 0.870])
    noisy = _runs([0.80, 0.83], [0.79, 0.84])
    one = _runs([0.80], [0.81])
    g = recipe_goals(recipe_table({"quiet": quiet, "noisy": noisy, "one": one})).set_index("recipe")
    assert g.loc["quiet", "meets std"] and g.loc["quiet", "meets mean"] and g.loc["quiet", "meets diff std"]
    assert g.loc["quiet", "meets time"]  # 420 s
    assert not g.loc["noisy", "meets std"] and not g.loc["noisy", "meets mean"]
    assert g.loc["one", "meets std"] is None and g.loc["one", "seeds"] == 1


def test_the_time_goal_is_judged_on_the_shortest_run_not_the_mean_of_a_shared_machine():
    from fr.study import recipe_goals

    runs = _runs([0.860, 0.862, 0.864], [0.866, 0.868, 0.870])
    runs["wall_time_s"] = [550.0, 1900.0, 2400.0, 900.0, 1200.0, 700.0]  # the first had the machine to itself
    t = recipe_table({"r": runs})
    assert t.iloc[0]["run_time_min_s"] == 550.0 and t.iloc[0]["run_time_s"] > 600
    g = recipe_goals(t).iloc[0]
    assert g["run time (s, shortest)"] == 550.0 and g["meets time"]
    legacy = t.drop(columns="run_time_min_s")  # a CSV written before the column existed: the mean
    assert not recipe_goals(legacy).iloc[0]["meets time"]
    # a run of the recipe is a run whatever its head: a quicker softmax run sets the shortest, not the means
    other = pd.DataFrame([{"head": "softmax", "seed": 0, "steps": 10, "lfw.accuracy": 0.85, "train_time_s": 300.0,
                           "wall_time_s": 520.0}])
    t2 = recipe_table({"r": pd.concat([runs, other])}).iloc[0]
    assert t2["run_time_min_s"] == 520.0 and t2["run_time_s"] == t.iloc[0]["run_time_s"]
    t3 = recipe_table({"r": runs}, run_times={"r": pd.concat([runs, other])}).iloc[0]  # timed over other runs
    assert t3["run_time_min_s"] == 520.0 and t3["cosface_n"] == 3


def test_run_time_split_takes_each_recipes_shortest_trained_run_of_any_head():
    from fr.study import run_time_split

    runs = _runs([0.86, 0.87], [0.86, 0.87])
    runs["run_id"] = [f"r{i}" for i in range(4)]
    runs["wall_time_s"] = [900.0, 700.0, 800.0, 650.0]
    runs["train_time_s"] = [600.0, 450.0, 500.0, 400.0]
    runs["lfw_allpairs.tar@1e-04"] = 0.1
    untrained = pd.DataFrame([{"run_id": "u", "head": "softmax", "seed": 0, "steps": 0, "lfw.accuracy": 0.5,
                               "train_time_s": 0.0, "wall_time_s": 60.0}])
    split = run_time_split({"new": pd.concat([runs, untrained]), "old": runs.iloc[:1]}).set_index("recipe")
    new = split.loc["new"]
    assert (new["shortest run"], new["head"], new["runs"]) == ("r3", "arcface", 4)  # the 0-step run does not count
    assert (new["run s"], new["train s"], new["evaluation s"]) == (650.0, 400.0, 250.0)
    assert new["protocols"] == 2 and new["protocol names"] == "lfw lfw_allpairs"
    assert split.loc["old", "shortest run"] == "r0" and new["median run s"] == 750.0


def test_trade_off_says_what_was_met_and_what_limits_the_rest():
    from fr.study import recipe_goals, run_time_split, trade_off_markdown

    quiet = _runs([0.830, 0.832, 0.834], [0.834, 0.836, 0.838])  # quiet, but below 85%
    noisy = _runs([0.78, 0.81, 0.80], [0.79, 0.82, 0.77])
    for df, wall, train in ((quiet, 700.0, 450.0), (noisy, 500.0, 330.0)):
        df["run_id"] = [f"x{i}" for i in range(len(df))]
        df["wall_time_s"], df["train_time_s"] = wall, train
    tables = {"v1": noisy, "v2": quiet}
    goals, split = recipe_goals(recipe_table(tables)), run_time_split(tables)
    text = trade_off_markdown(goals, split, "v2", baseline="v1", anchor_lfw=98.57, anchor="a pretrained model",
                              setting="238 identities")
    assert "Goals (points): std ≤ 0.5: met; difference's std ≤ 0.7: met." in text
    assert "took 700 s: 450 s of training and 250 s for the final evaluation of 1 protocol." in text
    assert "That misses the 600 s goal by 100 s; training alone fits it, and the final evaluation" in text
    assert "`v1` evaluated 1 protocol in 170 s" in text
    assert "median" not in text  # every run took the same time: nothing to say about the spread of timings
    assert "LFW's mean is 83.20% for the weaker head; the goal is 85%, not met." in text
    assert "a pretrained model scores 98.57% on the same `lfw.bin`" in text and "(238 identities)" in text
    noisy_text = trade_off_markdown(goals, split, "v1")
    assert "std ≤ 0.5: not met; difference's std ≤ 0.7: not met" in noisy_text and "pretrained" not in noisy_text
    assert "That is within the 600 s goal, by 100 s." in noisy_text
    assert trade_off_markdown(goals, split, "v3") == "*No study of `v3` is recorded yet.*"
    # an anchor that does not reach the goal says nothing about what the pairs allow
    assert "pairs allow more" not in trade_off_markdown(goals, split, "v2", anchor_lfw=80.0)


def test_trade_off_time_names_what_is_over_and_the_median_beside_the_shortest():
    from fr.study import recipe_goals, run_time_split, trade_off_markdown

    runs = _runs([0.830, 0.832, 0.834], [0.834, 0.836, 0.838])
    runs["run_id"] = [f"x{i}" for i in range(len(runs))]
    runs["wall_time_s"] = [598.0, 1000.0, 1100.0, 1048.0, 900.0, 1200.0]
    runs["train_time_s"] = 400.0
    goals = recipe_goals(recipe_table({"v2": runs}))
    text = trade_off_markdown(goals, run_time_split({"v2": runs}), "v2")
    assert "That is within the 600 s goal, by 2 s. The median run took 1024 s (over the goal)" in text
    assert "so the goal holds only on a quiet machine" in text
    runs["train_time_s"], runs["wall_time_s"] = 650.0, 700.0  # training alone is over
    text = trade_off_markdown(goals, run_time_split({"v2": runs}), "v2")
    assert "That misses the 600 s goal by 100 s; training alone exceeds it by 50 s." in text
    assert "evaluation of every protocol" not in text


def test_a_head_with_too_few_seeds_leaves_the_spread_goal_undecided_in_either_order():
    from fr.study import recipe_goals, trade_off_markdown

    for cos, arc in (([0.80, 0.801, 0.802], [0.81]), ([0.81], [0.80, 0.801, 0.802])):
        g = recipe_goals(recipe_table({"r": _runs(cos, arc)}))
        assert g.iloc[0]["meets std"] is None and g.iloc[0]["meets diff std"] is None
        text = trade_off_markdown(g, pd.DataFrame(columns=["recipe"]), "r")
        assert "std ≤ 0.5: undecided with the seeds recorded" in text and "nan" not in text
