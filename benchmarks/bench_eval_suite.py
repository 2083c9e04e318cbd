"""Cost of the whole evaluation suite against today's final evaluation, side by side in one run.

``today``        what a CPU run's final evaluation does now: ``load_bin`` of ``lfw.bin`` and ``cfp_fp.bin`` at the
                 model's input size, then two ``evaluate_verification`` calls (insightface protocol, flip "sum").
                 26,000 images embedded (each with its mirror).
``suite``        ``fr.eval.evaluate_suite`` with every protocol (lfw, cfp_fp, cfp_ff 10-fold; LFW, CFP-FP and
                 CFP-FF all-pairs TAR@FAR; LFW clean and low-quality identification; CFP pose identification):
                 20,203 distinct images plus 4,740 degraded probes embedded once. Measured with the images decoded
                 from the files (``cache=False``, as ``load_bin`` always does) and, separately, the load from the
                 decode cache.
``suite_subset`` ``evaluate_suite`` with ``protocols=("lfw", "cfp_fp")`` only: the distinct images of the two
                 ``.bin`` sets (13,591). Its results are checked equal to today's (the same numbers, one pass).

The model is the CPU recipe's backbone (``configs/cpu/celeba_small.yaml``: ``iresnet_small`` at 56 px,
512-d), randomly initialised (weights do not change the cost), in eval mode. Each stage records wall and
process CPU seconds (CPU seconds are less sensitive to other jobs on the machine) and the load average.

    python benchmarks/bench_eval_suite.py                    # writes results/bench/eval_suite.csv
    python benchmarks/bench_eval_suite.py --quick            # 600-pair .bin subsets, 32 px (all folder images
                                                             # are still embedded: a smoke test, not fast)
    python benchmarks/bench_eval_suite.py --data DIR --size 16 --out x.csv   # another data root (tests)
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr.config import load_config  # noqa: E402
from fr.engine.trainer import build_backbone  # noqa: E402
from fr.envinfo import code_version  # noqa: E402
from fr.paths import data_root, results_root  # noqa: E402


class Clock:
    """Wall and process-CPU seconds of a block, with the 1-minute load average before and after."""

    def __enter__(self):
        self.load0 = os.getloadavg()[0]
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        self.load1 = os.getloadavg()[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "cpu" / "celeba_small.yaml"))
    ap.add_argument("--quick", action="store_true", help="600-pair .bin subsets and a 32 px model (smoke test)")
    ap.add_argument("--data", type=Path, default=None, help="data root (default FR_DATA)")
    ap.add_argument("--size", type=int, default=None, help="model input size (default the config's)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's eval.batch_size")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fr.data import load_bin
    from fr.eval import evaluate_verification
    from fr.eval.suite import DEFAULT_PROTOCOLS, evaluate_suite, prepare_suite

    cfg = load_config(args.config)
    params = dict(cfg.backbone.params)
    if args.size or args.quick:
        params["input_size"] = args.size or 32
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone.name, params).eval()
    size = model.input_spec.size
    bs = args.batch_size or cfg.eval.batch_size
    flip = cfg.eval.flip
    pairs = 600 if args.quick else None
    root = args.data or data_root()
    out = args.out or results_root() / "bench" / ("eval_suite_quick.csv" if args.quick else "eval_suite.csv")
    meta = {"model": f"{cfg.backbone.name}@{size[0]}px (random init)", "batch_size": bs, "flip": flip,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "commit": code_version(),
            "date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.machine()}
    rows = []

    def row(impl, protocols, n_images, stages: dict[str, Clock], notes=""):
        wall = sum(c.wall for c in stages.values())
        cpu = sum(c.cpu for c in stages.values())
        r = {"impl": impl, "protocols": protocols, "n_images_embedded": n_images,
             **{f"{k}_wall_s": round(c.wall, 2) for k, c in stages.items()},
             "total_wall_s": round(wall, 2), "total_cpu_s": round(cpu, 2),
             "load_avg_1m": f"{min(c.load0 for c in stages.values()):.1f}-"
                            f"{max(c.load1 for c in stages.values()):.1f}", "notes": notes, **meta}
        rows.append(r)
        print(f"{impl:28s} {n_images:6d} images  wall {wall:8.1f} s  cpu {cpu:8.1f} s  "
              f"({', '.join(f'{k} {c.wall:.1f}' for k, c in stages.items())})", flush=True)
        return r

    # today: two .bin loads and two evaluate_verification calls
    today = {}
    with Clock() as load_t:
        sets = {n: load_bin(root / "verification" / f"{n}.bin", size=size, n_pairs=pairs) for n in ("lfw", "cfp_fp")}
    with Clock() as eval_t:
        for n, v in sets.items():
            today[n] = evaluate_verification(model, v, protocol=cfg.eval.protocol, flip=flip, batch_size=bs)
    r_today = row("today (2 x evaluate_verification)", "lfw, cfp_fp", sum(v.images.shape[0] for v in sets.values()),
                  {"load": load_t, "embed_and_protocols": eval_t})
    del sets

    # the whole suite, images decoded from the files (no cache), then the cached load alone
    with Clock() as prep_t:
        data = prepare_suite(root, DEFAULT_PROTOCOLS, size=size, bin_pairs=pairs, cache=False)
    with Clock() as run_t:
        res = evaluate_suite(model, data=data, protocols=DEFAULT_PROTOCOLS, flip=flip, batch_size=bs)
    n_suite = res.embedding["n_images_embedded"]
    r_suite = row("suite (all protocols)", " ".join(DEFAULT_PROTOCOLS), n_suite,
                  {"load": prep_t, "embed_and_protocols": run_t},
                  notes=f"embed {res.timing['embed']:.1f} s; protocols "
                        + ", ".join(f"{k} {v:.1f} s" for k, v in res.timing["protocols"].items()))
    del data
    prepare_suite(root, DEFAULT_PROTOCOLS, size=size, bin_pairs=pairs, cache=True)   # fill the decode cache
    with Clock() as cached_t:
        prepare_suite(root, DEFAULT_PROTOCOLS, size=size, bin_pairs=pairs, cache=True)
    row("suite load from decode cache", "(load only)", 0, {"load": cached_t},
        notes="prepare_suite with the decoded images cached; add to the suite's embed_and_protocols")

    # the suite restricted to today's two protocols, checked equal to today's numbers
    with Clock() as sub_prep:
        sub = prepare_suite(root, ("lfw", "cfp_fp"), size=size, bin_pairs=pairs, cache=False)
    with Clock() as sub_run:
        sres = evaluate_suite(model, data=sub, protocols=("lfw", "cfp_fp"), flip=flip, batch_size=bs)
    same = all(sres[n].to_dict() == today[n].to_dict() for n in ("lfw", "cfp_fp"))
    row("suite_subset (lfw, cfp_fp)", "lfw, cfp_fp", sres.embedding["n_images_embedded"],
        {"load": sub_prep, "embed_and_protocols": sub_run},
        notes=f"results identical to today's: {same}")
    ratio = r_suite["total_wall_s"] / r_today["total_wall_s"]
    cpu_ratio = r_suite["total_cpu_s"] / r_today["total_cpu_s"]
    for r in rows:
        r["wall_vs_today"] = round(r["total_wall_s"] / r_today["total_wall_s"], 3)
        r["cpu_vs_today"] = round(r["total_cpu_s"] / r_today["total_cpu_s"], 3)
    print(f"suite / today: wall x{ratio:.2f}, cpu x{cpu_ratio:.2f}; subset identical to today: {same}")
    print(res.summary())
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
