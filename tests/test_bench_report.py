"""fr.bench: the Speed chapter's goal checks, on the committed benchmark CSVs and on fabricated ones."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fr import bench

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "results" / "bench"


def _train(rows, load=(1.0, 1.5), isa="avx2+fma"):
    base = dict(precision="fp32", channels_last=True, compile=None, first_step_s=5.0, img_per_s=10.0,
                share_of_peak=0.1, peak_fp32_gflops=100.0, losses_agree=True, isa=isa, loadavg_start=load[0],
                loadavg_end=load[1], cores=2)
    return pd.DataFrame([{**base, **r} for r in rows])


def _loader(ratios, load=(1.0, 1.0)):
    return pd.DataFrame([dict(variant=v, img_per_s_per_worker=100.0 * r, ratio=r, augment="p_flip=0.5",
                              loadavg_start=load[0], loadavg_end=load[1], cores=2) for v, r in ratios.items()])


def _suite(embed, final=None):
    rows = [dict(kind="embed", impl=i, images_per_s=10.0 * s, speedup_vs_old=s, cpu_speedup_vs_old=s,
                 bit_exact_vs_old=i == "old", max_abs_diff_vs_old=0.0 if i == "old" else 1e-7,
                 compile_s=None, load_avg_1m="0.5-1.0", cpu_count=2) for i, s in embed.items()]
    for impl, wall in (final or {}).items():
        rows.append(dict(kind="final_eval", impl=impl, wall_s=wall, cpu_s=wall, wall_vs_today=wall / final[
            "today (2 x evaluate_verification)"], cpu_vs_today=1.0, load_avg_1m="0.5-1.0", cpu_count=2))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name", ["train_cpu", "train_cpu_compile", "train_cpu_bf16", "loader", "loader_adaface",
                                  "eval_suite"])
def test_committed_files_are_read_and_checked(name):
    df = bench.read(BENCH, name)
    assert df is not None, f"results/bench/{name}.csv is not committed"
    assert bench.load_range(df) is not None
    assert name in bench.RERUN and f"`{bench.RERUN[name]}`" in bench.contention_line(name, df)


def test_committed_training_verdict_matches_the_files():
    frames = {n: bench.read(BENCH, n) for n in ("train_cpu", "train_cpu_compile", "train_cpu_bf16")}
    check = bench.train_check(frames)
    allr = pd.concat(frames.values())
    best = allr.loc[allr["variant"] != "reference", "ratio"].max()
    assert check.best == pytest.approx(best)
    assert check.met == (best >= bench.TRAIN_GOAL)
    text = "\n".join(bench.train_lines(frames))
    assert "python benchmarks/bench_train.py --configs recipe" in text
    assert "no native bf16" in text and "slower" in text       # this AVX2 machine
    assert "contended" in text


def test_train_goal_met_and_not_met():
    rows = [dict(variant="reference", s_per_step=5.0, ratio=1.0, channels_last=False),
            dict(variant="eager", s_per_step=1.0, ratio=5.0)]
    assert bench.train_check({"t": _train(rows)}).verdict == "met"
    rows[1]["ratio"] = 4.49
    check = bench.train_check({"t": _train(rows)})
    assert (check.met, check.best, check.by) == (False, 4.49, "`eager` in `t.csv`")
    assert bench.train_check({"t": _train(rows[:1])}).verdict == "not measured"


def test_bf16_reported_against_fp32_and_native_support():
    rows = [dict(variant="reference", s_per_step=2.0, ratio=1.0), dict(variant="eager", s_per_step=1.0, ratio=2.0),
            dict(variant="bf16", precision="bf16-autocast", s_per_step=4.0, ratio=0.5)]
    text = "\n".join(bench.train_lines({"t": _train(rows)}))
    assert "4.0x slower" in text and "no native bf16" in text
    text = "\n".join(bench.train_lines({"t": _train(rows, isa="avx512+bf16")}))
    assert "has native bf16" in text


def test_quiet_and_loaded_records_are_told_apart():
    rows = [dict(variant="reference", s_per_step=2.0, ratio=1.0), dict(variant="eager", s_per_step=1.0, ratio=2.0)]
    assert "(quiet)" in bench.contention_line("train_cpu", _train(rows, load=(0.5, 1.9)))
    loaded = bench.contention_line("train_cpu", _train(rows, load=(3.0, 12.0)))
    assert "3.0 to 12.0 on 2 cores" in loaded and "contended" in loaded


def test_loader_goal_per_file():
    checks = bench.loader_checks({"a": _loader({"reference": 1.0, "rec": 1.1, "cache": 3.2}),
                                  "b": _loader({"reference": 1.0, "rec": 0.8, "cache": 2.9})})
    assert [(c.files, c.by, c.verdict) for c in checks] == [("a", "cache", "met"), ("b", "cache", "not met")]


def test_embed_and_final_eval_goals():
    df = _suite({"old": 1.0, "fold_bn": 1.1, "compile": 2.1})
    c = bench.embed_check(df)
    assert (c.by, c.best, c.verdict) == ("compile", 2.1, "met")
    fc = bench.final_eval_check(df)
    assert fc.verdict == "not measured"
    text = "\n".join(bench.eval_suite_lines(df))
    assert "not measured" in text and bench.RERUN["eval_suite"] in text
    assert "none of the switches" in text
    fin = _suite({"old": 1.0, "compile": 1.5}, {"today (2 x evaluate_verification)": 100.0,
                                                "suite decode (cold)": 50.0, "suite (all protocols)": 90.0})
    fc = bench.final_eval_check(fin)
    assert (fc.best, fc.met, fc.at_most) == (0.9, True, True)
    text = "\n".join(bench.eval_suite_lines(fin))
    assert "LFW + CFP-FP alone): met.**" in text and "**0.90x**" in text
    assert bench.embed_check(fin).verdict == "not met"


def test_bad_files_name_the_problem():
    with pytest.raises(ValueError, match=r"t.csv: columns \['s_per_step'"):
        bench.train_check({"t": _train([dict(variant="reference", ratio=1.0)])})
    with pytest.raises(ValueError, match="load_avg_1m"):
        bench.load_range(pd.DataFrame({"load_avg_1m": ["high"]}))
    assert bench.read(BENCH, "no_such_benchmark") is None


def test_summary_and_figure():
    checks = [bench.GoalCheck("g", 2.0, 2.5, "x", "f"), bench.GoalCheck("h", 1.0, None, "", "f", at_most=True)]
    s = bench.summary(checks)
    assert s["verdict"].tolist() == ["met", "not measured"] and s["target"].tolist() == [">= 2x", "<= 1x"]
    fig = bench.ratio_figure([("a", pd.Series({"u": 1.0, "v": 3.0}), 2.0)])
    bars = fig.axes[0].patches
    assert len(bars) == 2 and bars[0].get_facecolor() != bars[1].get_facecolor()
    with pytest.raises(ValueError):
        bench.ratio_figure([])


def test_first_step_figure_draws_both_times_per_variant():
    frames = {n: bench.read(BENCH, n) for n in ("train_cpu_compile",)}
    t = bench.train_table(frames)
    fig = bench.first_step_figure(t)
    widths = sorted(p.get_width() for p in fig.axes[0].patches)
    assert widths == sorted([*t["first_step_s"], *t["s_per_step"]])
    with pytest.raises(ValueError, match="empty"):
        bench.first_step_figure(t.iloc[:0])
