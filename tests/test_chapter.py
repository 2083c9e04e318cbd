"""fr.chapter on fabricated run records (report mode), the claims table of the front page, paper mode's plan and
its torchrun launch, and the SMAFace chapter end to end in smoke mode."""
from __future__ import annotations

import copy
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fr import chapter
from fr import grid as G
from fr import verdict as V
from fr.book import claims_page, write_front_matter
from fr.config import config_hash, load_config
from fr.eval.verification import correct_from_hex
from fr.papers import GRID_BUDGET_HOURS, parse_spec
from records import write_record
from fr.results import run_id

ROOT = Path(__file__).resolve().parents[1]
N_PAIRS = 400

SPEC = {
    "key": "toy", "chapter": "99_toy", "title": "Toy: a paper", "citation": "Someone (2024). Toy.",
    "text_available": "full", "reconstructed": False, "scale_note": "tiny",
    "paper_tables": [{"id": "t1", "source": "Table 1", "caption": "verification accuracy",
                      "columns": ["Method", "LFW", "CFP-FP", "AgeDB"],
                      "rows": [["CosFace", 99.5, 95.0, None], ["ArcFace", 99.6, 95.5, 98.0]]}],
    "grid": {"recipe": "configs/cpu/celeba_v2.yaml", "seeds": 3, "central_seeds": 4, "rows": {
        "cosface": {"label": "CosFace", "overrides": {"head.name": "cosface", "head.params": {"s": 30.0, "m": 0.35}}},
        "arcface": {"label": "ArcFace", "overrides": {"head.name": "arcface", "head.params": {"s": 30.0, "m": 0.5}}},
        "softmax": {"label": "Softmax", "overrides": {"head.name": "softmax", "head.params": {"s": 30.0}}}}},
    "derived_metrics": {"both": {"mean_of": ["lfw.accuracy", "cfp_fp.accuracy"], "label": "mean of the two"}},
    "our_tables": [{"id": "o1", "mirrors": "t1", "rows": ["cosface", "arcface", "softmax"],
                    "columns": {"LFW": "lfw.accuracy",
                                "CFP-FP": {"metric": "cfp_fp.accuracy", "stand_in": "CFP-FP itself"},
                                "AgeDB": {"unavailable": "no AgeDB here"},
                                "Both": {"metric": "both", "extra": True},
                                "Rank-1": {"metric": "lfw_ident_lq.rank1", "extra": True}}}],
    "claims": [
        {"id": "arc_beats_cos", "text": "ArcFace beats CosFace", "source": "Table 1", "treatment": "arcface",
         "baseline": "cosface", "metrics": ["lfw.accuracy", "both", "lfw_ident_lq.rank1"], "central": True,
         "paper": {"treatment": 99.6, "baseline": 99.5, "metric": "LFW (%)"}},
        {"id": "cos_below_arc", "text": "CosFace is below ArcFace", "source": "Table 1", "treatment": "cosface",
         "baseline": "arcface", "metrics": ["lfw.accuracy"], "direction": "less"},
        {"id": "softmax_vs_cos", "text": "Softmax beats CosFace", "source": "text", "treatment": "softmax",
         "baseline": "cosface", "metrics": ["cfp_fp.accuracy"]},
        {"id": "softmax_rank1", "text": "Softmax identifies better", "source": "text", "treatment": "softmax",
         "baseline": "cosface", "metrics": ["lfw_ident_lq.rank1"]},
    ],
}


def _correct(acc: float, seed: int) -> np.ndarray:
    """Exactly round(acc * N_PAIRS) correct pairs in a seeded order."""
    c = np.zeros(N_PAIRS, dtype=bool)
    c[: int(round(acc * N_PAIRS))] = True
    return np.random.default_rng(seed).permutation(c)


def fabricate(root: Path, cfg, accs: dict[str, float], rank1: float | None = None) -> str:
    """A complete run record of ``cfg`` under ``root`` with the given verification accuracies."""
    metrics = {}
    for k, (name, acc) in enumerate(accs.items()):
        c = _correct(acc, cfg.runtime.seed * 10 + k)
        metrics[name] = {"accuracy": float(c.mean()), "spread": 0.01, "protocol": "fabricated", "sha256": name,
                         "n_pairs": N_PAIRS, "correct_hex": np.packbits(c).tobytes().hex()}
    if rank1 is not None:
        metrics["lfw_ident_lq"] = {"cmc": {"1": rank1, "5": rank1 + 0.1, "20": rank1 + 0.2}}
    return write_record(root, cfg, metrics)


def _cfg(row: str, seed: int):
    ov = {**SPEC["grid"]["rows"][row]["overrides"], "runtime.seed": seed}
    return load_config(ROOT / SPEC["grid"]["recipe"], ov)


# arcface beats cosface by ~3 points every seed; softmax is cosface +-1 point (not distinguishable)
LFW = {"cosface": [0.80, 0.82, 0.81, 0.79], "arcface": [0.83, 0.85, 0.84, 0.8225], "softmax": [0.81, 0.81, 0.80]}
CFP = {"cosface": [0.60, 0.61, 0.60, 0.60], "arcface": [0.61, 0.62, 0.61, 0.60], "softmax": [0.61, 0.60, 0.61]}


@pytest.fixture
def toy(tmp_path):
    """The toy chapter over fabricated records: every row and seed except softmax seed 2 and arcface seed 3."""
    root = tmp_path / "results"
    for row in SPEC["grid"]["rows"]:
        for seed, (lfw, cfp) in enumerate(zip(LFW[row], CFP[row], strict=True)):
            if (row, seed) in {("softmax", 2), ("arcface", 3)}:
                continue
            fabricate(root, _cfg(row, seed), {"lfw": lfw, "cfp_fp": cfp},
                      rank1=0.2 + 0.01 * seed if row != "softmax" else None)
    ch = chapter.Chapter(parse_spec(copy.deepcopy(SPEC), "toy.yaml"))
    return ch.prepare("report", results_root=root)


def test_seeds_follow_the_spec_with_more_for_central_rows(toy):
    assert toy.seeds("cosface") == toy.seeds("arcface") == [0, 1, 2, 3]
    assert toy.seeds("softmax") == [0, 1, 2]
    assert len(toy.plan()) == 11


def test_missing_runs_give_commands_that_record_exactly_those_configs(toy, tmp_path):
    missing = toy.missing_runs()
    assert list(zip(missing["row"], missing["seed"], strict=True)) == [("arcface", 3), ("softmax", 2)]
    for (_, r), row in zip(missing.iterrows(), ["arcface", "softmax"], strict=True):
        argv = shlex.split(r["command"])
        assert argv[:5] == ["python", "-m", "fr.train", "--config", "configs/cpu/celeba_v2.yaml"]
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        assert argv[argv.index("--results") + 1] == str(tmp_path / "results")
        assert config_hash(load_config(ROOT / argv[4], sets)) == config_hash(_cfg(row, r["seed"]))
        assert r["run_id"] == run_id(_cfg(row, r["seed"]))


def test_our_tables_show_mean_and_std_over_seeds_with_stand_ins_and_readable_params(toy):
    (meta, df), = toy.our_tables()
    assert list(df.columns) == ["Method", "head", "seeds", "LFW", "CFP-FP *", "AgeDB †", "Both (ours)",
                                "Rank-1 (ours)"]
    cos = df.set_index("Method").loc["CosFace"]
    v = 100 * np.array(LFW["cosface"])
    assert cos["LFW"] == f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" and cos["seeds"] == 4
    assert cos["head"] == "cosface (s=30, m=0.35)"
    assert cos["AgeDB †"] == "n/a"
    both = 100 * (np.array(LFW["cosface"]) + np.array(CFP["cosface"])) / 2
    assert cos["Both (ours)"] == f"{both.mean():.2f} ± {both.std(ddof=1):.2f}"
    soft = df.set_index("Method").loc["Softmax"]
    assert soft["seeds"] == 2 and soft["Rank-1 (ours)"] == "—"
    assert "stand-in — CFP-FP itself" in meta["legend"] and "not available — no AgeDB here" in meta["legend"]
    assert "{" not in df.to_string()  # parameters never as JSON


def test_paper_tables_are_as_printed(toy):
    (meta, df), = toy.paper_tables()
    assert meta["source"] == "Table 1" and list(df.columns) == ["Method", "LFW", "CFP-FP", "AgeDB"]
    assert df.iloc[0].tolist() == ["CosFace", 99.5, 95.0, "-"]


def test_comparisons_pair_seeds_and_give_the_verdicts(toy):
    comp = toy.comparisons().set_index(["claim", "metric"])
    first = comp.loc[("arc_beats_cos", "lfw.accuracy")]
    d = 100 * (np.array(LFW["arcface"][:3]) - np.array(LFW["cosface"][:3]))  # seed 3 of arcface is missing
    expect = V.decide(d)
    assert first["n"] == 3 and first["mean_diff"] == pytest.approx(d.mean(), abs=1e-9)
    assert (first["ci_low"], first["ci_high"], first["mdd"]) == pytest.approx(
        (expect.ci_low, expect.ci_high, expect.mdd))
    assert first["verdict"] == V.CONFIRMED == expect.verdict
    assert first["paper_diff"] == pytest.approx(0.1)
    assert first["per_seed"].count("McNemar p=") == 3 and first["per_seed"].startswith("seed 0: +3.00")
    assert comp.loc[("arc_beats_cos", "lfw_ident_lq.rank1"), "per_seed"] == "n/a"  # no per-probe results
    assert comp.loc[("arc_beats_cos", "lfw_ident_lq.rank1"), "verdict"] == V.NOT_DISTINGUISHABLE  # all d = 0
    # the same data read as "CosFace is below ArcFace": confirmed, with the differences' sign flipped
    less = comp.loc[("cos_below_arc", "lfw.accuracy")]
    assert less["verdict"] == V.CONFIRMED and less["mean_diff"] == pytest.approx(d.mean())
    assert comp.loc[("softmax_vs_cos", "cfp_fp.accuracy"), "verdict"] == V.NOT_DISTINGUISHABLE
    assert comp.loc[("softmax_vs_cos", "cfp_fp.accuracy"), ["runs", "n"]].tolist() == [2, 2]


def test_plot_comparisons_draws_one_line_per_paired_comparison(toy, tmp_path):
    comp = toy.comparisons()
    fig = toy.plot_comparisons(comp)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == int((comp["n"] >= 2).sum())
    assert any("arc_beats_cos · lfw.accuracy (n=3)" == t.get_text() for t in ax.get_yticklabels())
    fig.savefig(tmp_path / "forest.png")
    assert (tmp_path / "forest.png").stat().st_size > 0
    assert toy.plot_comparisons(comp.assign(n=1)) is None


def test_verdicts_one_line_per_claim_from_the_first_metric(toy):
    v = toy.verdicts().set_index("claim")
    assert list(v.index) == ["arc_beats_cos", "cos_below_arc", "softmax_vs_cos", "softmax_rank1"]
    assert v.loc["arc_beats_cos", "verdict"] == V.CONFIRMED and v.loc["arc_beats_cos", "central"]
    assert v.loc["arc_beats_cos", "paper"] == "99.60 vs 99.50 LFW (%)"
    # paired seeds recorded, of those planned (central rows 4 seeds, the softmax 3; one seed of each missing)
    assert v.loc["arc_beats_cos", ["n", "planned"]].tolist() == [3, 4]
    assert v.loc["softmax_vs_cos", ["n", "planned"]].tolist() == [2, 3]
    assert v.loc["softmax_vs_cos", "ours"].startswith("not distinguishable at this scale")
    assert "could have detected ≥" in v.loc["softmax_vs_cos", "ours"]
    # runs recorded, but not the metric: not run, and the reason says so
    assert v.loc["softmax_rank1", "verdict"] == V.NOT_RUN
    assert v.loc["softmax_rank1", "ours"] == "not run: 2 paired runs recorded, 0 of them with a value of " \
                                             "lfw_ident_lq.rank1"


def test_claims_are_not_run_without_records(tmp_path):
    ch = chapter.Chapter(parse_spec(copy.deepcopy(SPEC), "toy.yaml")).prepare("report",
                                                                             results_root=tmp_path / "none")
    assert set(ch.verdicts()["verdict"]) == {V.NOT_RUN}
    assert len(ch.missing_runs()) == 11
    assert all(t.iloc[:, 3:].isin(["—", "n/a"]).all().all() for _, t in ch.our_tables())


def test_claims_index_covers_every_spec_and_links_its_chapter(tmp_path):
    idx = chapter.claims_index(tmp_path / "empty")
    assert "smaface" in set(idx["key"])
    sma = idx[idx["key"] == "smaface"]
    assert set(sma["link"]) == {"executed/03_smaface_ablation"} and set(sma["verdict"]) == {V.NOT_RUN}
    page = claims_page(idx)
    assert "[03_smaface_ablation](executed/03_smaface_ablation)" in page
    assert page.count("\n| smaface |") == len(sma)
    # the seeds column: paired seeds recorded of those planned; a comparison with a cut row says so
    central = sma[sma["central"]].iloc[0]
    assert (central["n"], central["planned"]) == (0, 5) and "| not run | 0 of 5 |" in page
    assert sma.set_index("claim").loc["p06_beats_p04", "planned"] == 0 and "| not run | cut |" in page
    _, out, grid = write_front_matter(tmp_path / "generated", tmp_path / "notebooks",
                                      results_root=tmp_path / "empty")
    assert out.name == "claims.md" and out.read_text() == page
    n = len(G.plan())  # the grid's state, from the (here: no) records
    assert f"Recorded so far: 0 of the grid's {n} runs; `python -m fr.grid --plan`" in grid.read_text()
    assert f"trains the {n} left" in grid.read_text() and f"must fit {GRID_BUDGET_HOURS:g} hours" in grid.read_text()
    sma_runs = sum("smaface" in r.chapters for r in G.plan())  # each chapter's share, a shared run in each
    assert f"| [03_smaface_ablation](executed/03_smaface_ablation) | 0 | {sma_runs} |" in grid.read_text()


def test_format_params_and_override_round_trip():
    assert chapter.format_params({"m": 0.35, "s": 30.0}, "cosface") == "s=30, m=0.35"
    assert chapter.format_params({}) == "defaults"
    assert chapter.format_override("head.params", {"s": 30.0, "m": 0.4}) == "head.params={s: 30.0, m: 0.4}"
    assert chapter.format_override("eval.suite", ["all"]) == "eval.suite=[all]"
    assert chapter.format_override("head.name", "adaface") == "head.name=adaface"


def test_full_mode_trains_only_the_missing_runs_on_the_given_data_root(toy, monkeypatch, tmp_path):
    calls = []

    def train(config, rows, seeds, *, results_root=None, progress=None):
        (row, overrides), = rows.items()
        calls.append((row, list(seeds), os.environ.get("FR_DATA")))
        fabricate(results_root, load_config(config, {**overrides, "runtime.seed": seeds[0]}),
                  {"lfw": 0.8, "cfp_fp": 0.6})  # what training records

    monkeypatch.setattr("fr.report.run_grid", train)
    monkeypatch.delenv("FR_DATA", raising=False)
    toy.prepare("full", results_root=toy.results_root, data_root=tmp_path / "data")
    assert calls == [("arcface", [3], str(tmp_path / "data")), ("softmax", [2], str(tmp_path / "data"))]
    assert "FR_DATA" not in os.environ
    assert toy.missing_runs().empty and len(toy.records()) == 11


def test_modes_are_checked(toy):
    with pytest.raises(ValueError, match="mode must be one of"):
        toy.prepare("fast")


# --- paper mode -------------------------------------------------------------------------------------------

TINY = {"name": "paper_launch", "data": {"train": "synthetic", "synthetic_classes": 8, "synthetic_per_class": 4,
                                         "batch_size": 8, "augment": {"p_flip": 0.0}},
        "backbone": {"name": "iresnet_tiny", "params": {"input_size": 16, "embedding_size": 32}},
        "head": {"name": "cosface", "params": {"s": 64.0, "m": 0.35}},
        "optim": {"lr": 0.1}, "schedule": {"steps": 2, "milestones": [1.0]},
        "runtime": {"device": "cpu", "channels_last": False, "threads": 1}}


def _paper_spec(paper_config: Path) -> chapter.Chapter:
    spec = copy.deepcopy(SPEC)
    spec["grid"]["rows"] = {k: v for k, v in spec["grid"]["rows"].items() if k != "softmax"}
    spec["our_tables"][0]["rows"] = ["cosface", "arcface"]
    spec["claims"] = spec["claims"][:2]
    spec.update(paper_config=str(paper_config), paper_overrides={"head.params.s": 64.0})
    return chapter.Chapter(parse_spec(spec, "toy.yaml"))


def test_paper_mode_dry_run_prints_the_plan_and_torchrun_commands(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    ch = _paper_spec(cfg).prepare("paper", seeds=2, gpus=4, results_root=tmp_path / "res", dry_run=True)
    out = capsys.readouterr().out
    assert "4 runs in the grid, 0 recorded, 4 to launch, each as torchrun with 4 process(es)" in out
    assert "expected time: unknown (the size of training set 'synthetic' is not known here)" in out
    cmds = [line for line in out.splitlines() if "torch.distributed.run" in line]
    assert len(cmds) == 4 and all("--nproc_per_node=4" in c and "-m fr.train" in c for c in cmds)
    assert all("head.params.s=64.0" in c and "--results" in c for c in cmds)
    assert not (tmp_path / "res").exists()  # nothing launched
    assert ch.paper_plan(4)["recorded"].sum() == 0


def test_paper_mode_without_a_paper_config_says_so(toy):
    with pytest.raises(ValueError, match="no paper_config"):
        toy.prepare("paper", gpus=1, dry_run=True)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_paper_mode_launches_each_run_under_torchrun_with_two_gloo_processes(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ch = _paper_spec(cfg).prepare("paper", seeds=1, gpus=2, results_root=tmp_path / "res")
    out = capsys.readouterr().out
    assert "2 to launch, each as torchrun with 2 process(es)" in out
    plan = ch.paper_plan(2)
    assert plan["recorded"].all()
    for rid in plan["run_id"]:
        env = json.loads((tmp_path / "res" / "runs" / rid / "env.json").read_text())
        assert env["world_size"] == 2 and env["dist_backend"] == "gloo"
        saved = yaml.safe_load((tmp_path / "res" / "runs" / rid / "config.yaml").read_text())
        assert saved["head"]["params"]["s"] == 64.0
    # a second prepare finds both recorded and launches nothing
    ch.prepare("paper", seeds=1, gpus=2, results_root=tmp_path / "res")
    assert "0 to launch" in capsys.readouterr().out


# --- smoke mode -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_smoke_mode_runs_every_row_and_reaches_every_verdict_path():
    spec = copy.deepcopy(SPEC)
    spec["grid"]["rows"].pop("softmax")
    spec["our_tables"][0]["rows"] = ["cosface", "arcface"]
    spec["claims"] = spec["claims"][:2]
    ch = chapter.Chapter(parse_spec(spec, "toy.yaml")).prepare("smoke")
    assert ch.recipe == chapter.SMOKE_CONFIG and ch.missing_runs().empty
    rec = ch.records()
    assert len(rec) == 4 and rec["lfw.accuracy"].notna().all() and rec["lfw_ident_lq.rank1"].notna().all()
    comp = ch.comparisons()
    assert comp.loc[comp["metric"] == "lfw.accuracy", "n"].eq(2).all()
    assert "McNemar p=" in comp.loc[comp["metric"] == "lfw.accuracy", "per_seed"].iloc[0]
    assert set(ch.verdicts()["verdict"]) <= set(V.VERDICTS) - {V.NOT_RUN}
    (meta, table), = ch.our_tables()
    assert "smoke run" in meta["title"] and (table["seeds"] == 2).all()
    correct = correct_from_hex(json.loads((ch.results_root / "runs" / rec["run_id"].iloc[0] / "metrics.json")
                                          .read_text())["metrics"]["lfw"]["correct_hex"], 20)
    assert correct.size == 20


@pytest.mark.slow
def test_smaface_notebook_runs_in_smoke_mode_under_papermill(tmp_path):
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    nb = ROOT / "notebooks" / "03_smaface_ablation.ipynb"
    out = tmp_path / nb.name
    pm.execute_notebook(str(nb), str(out), parameters={"mode": "smoke"}, cwd=str(nb.parent), kernel_name="python3",
                        progress_bar=False)
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert '"output_type": "error"' not in text
    assert "smoke run: synthetic data" in text and "grid is recorded" in text
    assert "McNemar p=" in text


def test_smoke_overrides_keep_the_recipe_valid():
    """Every smoke row is a valid config: the smoke recipe plus a row's overrides plus the smoke settings."""
    ch = chapter.load("smaface")
    ch._extra = {"name": "smoke_smaface", **chapter.SMOKE_OVERRIDES}
    ch.recipe, ch._seeds = chapter.SMOKE_CONFIG, list(chapter.SMOKE_SEEDS)
    plan = ch.plan()
    assert len(plan) == 2 * len(ch.spec.grid.rows)
    assert {p.config.data.train for p in plan} == {"synthetic"}
    assert {p.config.eval.suite for p in plan} == {("all",)}
    assert len({p.config_hash for p in plan}) == len(plan)



def test_a_row_the_budget_cuts_is_not_planned_but_shown_if_recorded(tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["grid"]["rows"]["softmax"]["seeds"] = 0
    spec["grid"]["rows"]["arcface"]["seeds"] = 2
    spec["grid"]["budget"] = "Softmax is cut and ArcFace reduced, to fit the budget."
    root = tmp_path / "results"
    for seed in range(2):
        fabricate(root, _cfg("cosface", seed), {"lfw": LFW["cosface"][seed], "cfp_fp": CFP["cosface"][seed]})
        fabricate(root, _cfg("arcface", seed), {"lfw": LFW["arcface"][seed], "cfp_fp": CFP["arcface"][seed]})
    ch = chapter.Chapter(parse_spec(spec, "toy.yaml")).prepare("report", results_root=root)
    assert ch.seeds("softmax") == [] and ch.seeds("softmax", cut=False) == [0, 1, 2]
    assert [(p.row, p.seed) for p in ch.missing_runs().itertuples()] == [("cosface", 2), ("cosface", 3)]
    md = ch.cut_markdown()
    assert "Softmax is cut and ArcFace reduced, to fit the budget." in md
    assert "- Not trained: Softmax." in md and "ArcFace (2 of 4)" in md and "--chapters toy --all-rows" in md
    table = ch.our_tables()[0][1].set_index("Method")
    assert "Softmax (cut)" in table.index and "ArcFace" in table.index
    v = ch.verdicts().set_index("claim")
    assert v.loc["softmax_vs_cos", "ours"] == "not run: Softmax is cut from the CPU grid (see the chapter's budget note)"
    assert v.loc["arc_beats_cos", "evidence"].endswith("n=2 paired seeds")
    assert v.loc["arc_beats_cos", ["n", "planned", "cut"]].tolist() == [2, 2, ""]
    assert v.loc["softmax_vs_cos", ["n", "planned", "cut"]].tolist() == [0, 0, "cut"]
    # a cut row recorded anyway (e.g. by --all-rows) is found and used
    fabricate(root, _cfg("softmax", 0), {"lfw": 0.81, "cfp_fp": 0.61})
    fabricate(root, _cfg("softmax", 1), {"lfw": 0.80, "cfp_fp": 0.60})
    fabricate(root, _cfg("arcface", 2), {"lfw": LFW["arcface"][2], "cfp_fp": CFP["arcface"][2]})  # past the cut
    ch.prepare("report", results_root=root)
    assert "Softmax (cut)" not in set(ch.our_tables()[0][1]["Method"])
    v = ch.verdicts().set_index("claim")
    assert v.loc["softmax_vs_cos", "verdict"] != V.NOT_RUN
    assert v.loc["softmax_vs_cos", ["n", "cut"]].tolist() == [2, "cut row"]
    # the front page's seeds column: recorded of planned, never fewer planned than recorded; a cut row says so
    page = claims_page(v.reset_index().assign(key="toy", reconstructed=False, chapter="99_toy", link="x",
                                               paper_numbers=v["paper"].values))
    assert "| 2 (cut row) |" in page and "| 0 (cut row) |" in page and "| cut |" not in page  # rank-1: no values
    n_arc = int(v.loc["arc_beats_cos", "n"])
    assert f"| {n_arc} of {max(n_arc, 2)} |" in page
    # with explicit seeds every row has them and there is no budget note
    assert ch.prepare("report", seeds=2, results_root=root).cut_markdown() == ""


def test_a_row_given_more_seeds_than_the_design_has_all_of_them_read(tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["grid"]["rows"]["softmax"]["seeds"] = 5  # the design gives a non-central row 3
    root = tmp_path / "results"
    for seed in range(5):
        fabricate(root, _cfg("softmax", seed), {"lfw": 0.80 + 0.001 * seed, "cfp_fp": 0.60})
        if seed < 4:
            fabricate(root, _cfg("cosface", seed), {"lfw": LFW["cosface"][seed], "cfp_fp": CFP["cosface"][seed]})
    ch = chapter.Chapter(parse_spec(spec, "toy.yaml")).prepare("report", results_root=root)
    assert ch.seeds("softmax") == [0, 1, 2, 3, 4] and ch.seeds("softmax", cut=False) == [0, 1, 2]
    rec = ch.records()
    assert sorted(rec.loc[rec["row"] == "softmax", "seed"]) == [0, 1, 2, 3, 4]
    assert ch.verdicts().set_index("claim").loc["softmax_vs_cos", ["n", "planned"]].tolist() == [4, 4]


def test_show_tables_display_titles_tables_and_legends(toy, monkeypatch):
    pytest.importorskip("IPython", reason="IPython comes with the book extra (pip install -e '.[book]')")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    toy.show_paper_tables()
    texts = [o.data for o in shown if isinstance(o, IPython.display.Markdown)]
    assert texts[0].startswith("### Table 1, as printed") and "verification accuracy" in texts[0]
    assert sum(isinstance(o, type(toy.paper_tables()[0][1])) for o in shown) == 1
    shown.clear()
    toy.show_our_tables()
    texts = [o.data for o in shown if isinstance(o, IPython.display.Markdown)]
    assert texts[0].startswith("### Table 1: ours (CPU scale") and "AgeDB**: not available — no AgeDB here" in texts[1]
    assert "stand-in — CFP-FP itself" in texts[1]
