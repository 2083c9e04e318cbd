"""Recipe study: seed-to-seed noise and detectable differences of the CPU recipes, from recorded runs.

For each recipe (a config file), CosFace and ArcFace are trained with the same seeds (``--train``: the
missing runs are trained one after the other; a run already recorded is found, never repeated), and
``results/bench/recipe.csv`` gets one row per (recipe, metric) with each head's mean and standard deviation
over seeds, the paired ArcFace-minus-CosFace difference and its standard deviation, the minimum detectable
difference of a paired t-test (80% power, 5% two-sided) at 3 and at 5 seeds, and the mean training and
whole-run time. See :mod:`fr.study`.

    python benchmarks/recipe_study.py                         # report what is recorded
    python benchmarks/recipe_study.py --train --seeds 0 1 2   # train what is missing first (minutes a run)
    python benchmarks/recipe_study.py --recipe v1=configs/cpu/celeba_small.yaml
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr.config import config_hash, load_config  # noqa: E402
from fr.engine.atomic import atomic_write_text  # noqa: E402
from fr.envinfo import code_version  # noqa: E402
from fr.paths import results_root  # noqa: E402
from fr.results import load_runs  # noqa: E402
from fr.study import recipe_table  # noqa: E402

RECIPES = {"v1": "configs/cpu/celeba_small.yaml", "v2": "configs/cpu/celeba_v2.yaml"}
HEADS = {"cosface": {"head.name": "cosface", "head.params": {"s": 30.0, "m": 0.35}},
         "arcface": {"head.name": "arcface", "head.params": {"s": 30.0, "m": 0.5}}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", action="append", default=None, metavar="LABEL=CONFIG",
                   help="a recipe to study (repeatable; default: the shipped v1 and v2 CPU recipes)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--train", action="store_true", help="train the missing runs first")
    p.add_argument("--out", default=None, help="CSV path (default results/bench/recipe.csv)")
    args = p.parse_args(argv)
    recipes = dict(r.split("=", 1) for r in args.recipe) if args.recipe else RECIPES
    if args.train:
        from fr.report import run_grid

        for label, path in recipes.items():
            print(f"training {label} ({path}), seeds {args.seeds}", flush=True)
            run_grid(ROOT / path, HEADS, args.seeds)
    runs, every = {}, {}
    for label, path in recipes.items():
        cfg = load_config(ROOT / path)
        df = load_runs(name=cfg.name)
        # exactly the two heads' configs (a grid row such as ArcFace on noisy labels is another run of the head)
        wanted = {config_hash(load_config(ROOT / path, {**ov, "runtime.seed": s}))
                  for ov in HEADS.values() for s in args.seeds}
        runs[label] = df[df["config_hash"].isin(wanted)] if not df.empty else df
        every[label] = df
    table = recipe_table(runs, heads=("cosface", "arcface"), run_times=every)
    table.insert(0, "code", code_version(ROOT))
    out = Path(args.out) if args.out else results_root() / "bench" / "recipe.csv"
    buf = io.StringIO()
    table.to_csv(buf, index=False, float_format="%.4g")
    atomic_write_text(out, buf.getvalue())
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
