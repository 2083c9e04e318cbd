"""README.md's results table: generated from the run records by fr.book.readme_results, and kept in step with the
committed records."""
from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from fr.book import (README_END, README_START, readme_results, readme_with_results, recipe_overrides,
                     write_readme)
from fr.config import config_hash, load_config
from records import write_record

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs/cpu/celeba_v2.yaml"
COS = {"head.name": "cosface", "head.params": {"s": 30.0, "m": 0.35}}


def fabricate(root: Path, overrides: dict, seed: int, *, lfw: float, cfp_ff: float | None = None,
              tar: float | None = None, rank1: float | None = None) -> str:
    """A complete record of the recipe with ``overrides`` and ``seed`` (only the metrics given)."""
    cfg = load_config(RECIPE, {**overrides, "runtime.seed": seed})
    metrics = {"lfw": {"accuracy": lfw, "spread": 0.0, "protocol": "fabricated", "sha256": "x", "n_pairs": 10}}
    if cfp_ff is not None:
        metrics["cfp_ff"] = {**metrics["lfw"], "accuracy": cfp_ff}
    if tar is not None:
        metrics["lfw_allpairs"] = {"tar_at_far": {"1e-04": tar, "1e-06": None}}
    if rank1 is not None:
        metrics["lfw_ident_lq"] = {"cmc": {"1": rank1, "5": rank1, "20": rank1}}
    return write_record(root, cfg, metrics)


def _rows(table: str) -> dict[str, list[str]]:
    out = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        out[cells[0]] = cells[1:]
    return out


def test_the_readme_table_is_what_the_committed_records_give():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = readme_with_results(text, readme_results(ROOT / "results"))
    assert text == expected, ("README.md's results table differs from the records under results/runs/; "
                              "regenerate it with `python -m fr.book --readme` and commit README.md")


def test_rows_are_mean_and_std_over_seeds_with_n_missing_values_and_reproducing_commands(tmp_path):
    root = tmp_path / "results"
    lfw, ff = [0.80, 0.82, 0.81], [0.70, 0.72]
    for seed in range(3):
        fabricate(root, COS, seed, lfw=lfw[seed], cfp_ff=ff[seed] if seed < 2 else None, tar=0.1, rank1=0.2)
    arc = {"head.name": "arcface", "head.params": {"s": 30.0, "m": 0.5}}
    fabricate(root, arc, 0, lfw=0.83)
    odd = {"head.name": "arcface", "head.params": {"m": 0.45, "s": 30.0}, "data.label_noise": 0.3}  # no grid row
    fabricate(root, odd, 1, lfw=0.7)
    fabricate(tmp_path / "other", COS, 0, lfw=0.5)  # another results root: not read
    table = readme_results(root)
    rows = _rows(table)
    assert list(rows) == ["CosFace (s=30, m=0.35)", "ArcFace (s=30, m=0.5)",
                          "arcface (s=30, m=0.45); data.label_noise=0.3"]
    cos = rows["CosFace (s=30, m=0.35)"]
    v, f = 100 * np.array(lfw), 100 * np.array(ff)
    assert cos[:7] == ["3 (0, 1, 2)", f"{v.mean():.2f} ± {v.std(ddof=1):.2f}", "—",
                       f"{f.mean():.2f} ± {f.std(ddof=1):.2f} (n=2)", "—", "10.00 ± 0.00", "20.00 ± 0.00"]
    assert rows["ArcFace (s=30, m=0.5)"][:3] == ["1 (0)", "83.00", "—"]
    for method, ov, seed in [("CosFace (s=30, m=0.35)", COS, 0), ("ArcFace (s=30, m=0.5)", arc, 0),
                             ("arcface (s=30, m=0.45); data.label_noise=0.3", odd, 1)]:
        argv = shlex.split(rows[method][-1].strip("`"))
        assert argv[:5] == ["python", "-m", "fr.train", "--config", "configs/cpu/celeba_v2.yaml"]
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        assert sets[:2] == [f"head.name={ov['head.name']}", f"head.params={{s: 30.0, m: {ov['head.params']['m']}}}"]
        got = load_config(ROOT / argv[4], [*sets, f"runtime.seed={seed}"])
        assert config_hash(got) == config_hash(load_config(RECIPE, {**ov, "runtime.seed": seed}))
    assert "python -m fr.book --readme" in table


def test_recipe_overrides_leave_out_the_seed_and_what_the_recipe_already_has():
    cfg = load_config(RECIPE, {**COS, "runtime.seed": 3, "runtime.threads": 2})
    assert recipe_overrides(cfg) == {}
    cfg = load_config(RECIPE, {"head.params.m": 0.4, "data.label_noise": 0.2})
    assert recipe_overrides(cfg) == {"head.params": {"m": 0.4, "s": 30.0}, "data.label_noise": 0.2}


def test_an_empty_results_root_gives_a_table_saying_so_and_the_readme_needs_its_markers(tmp_path):
    assert "| no run recorded | 0 |" in readme_results(tmp_path)
    with pytest.raises(ValueError, match="README.md: no results section; it needs a line <!-- results:start -->"):
        readme_with_results("# title\n", "table", source="README.md")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{README_START}\nstale\n{README_END}\n\nafter\n")
    fabricate(tmp_path / "results", COS, 0, lfw=0.8)
    assert write_readme(readme, tmp_path / "results") is True
    text = readme.read_text()
    assert "stale" not in text and "| CosFace (s=30, m=0.35) | 1 (0) | 80.00 |" in text and text.endswith("after\n")
    assert write_readme(readme, tmp_path / "results") is False
