"""Cost of the final evaluation and speed of embedding extraction, measured side by side in one run.

Two questions, one CSV (``results/bench/eval_suite.csv``):

**Issue 9: does the whole suite cost no more than today's LFW + CFP-FP evaluation alone?** (``kind=final_eval``)

``today``         the final evaluation before the suite: ``load_bin`` of ``lfw.bin`` and ``cfp_fp.bin`` at the
                  model's input size, then two ``evaluate_verification`` calls (insightface protocol, flip "sum"):
                  26,000 images embedded, each with its mirror.
``suite``         ``fr.eval.evaluate_suite`` with every protocol (``DEFAULT_PROTOCOLS``), images loaded through
                  the decode cache as a training run's final evaluation does (a first run decodes the files once;
                  that cost is in the ``suite decode (cold)`` row). ``notes`` gives the embedding time and each
                  protocol's.

**Issue 10: embedding images/s, old path against new** (``kind=embed``)

A fixed sample of ``--sample`` distinct suite images, embedded with flip "sum" by each path in turn, round after
round (A B C ... A B C ..., ``--rounds`` rounds), so that the training queue sharing the machine loads every path
alike; the rows give medians. ``old`` is ``extract_embeddings`` on the model as a run holds it (float32, the
run's memory format): the path every recorded metric was measured with, and still the default. The other paths
are the opt-in switches of :func:`fr.eval.evaluate_suite`: ``fold_bn`` (BatchNorm folded into the preceding
conv/linear), ``compile`` (``torch.compile``; its compilation is timed apart, ``compile_s``), both, and ``bf16``
autocast (on a CPU without native bf16, such as this AVX2 machine, several times slower than float32). Each row
says whether its embeddings are bit-identical to ``old`` (only then do recorded metrics reproduce exactly) and the
largest absolute difference. On a machine shared with other jobs, prefer the CPU-second columns: the wall ratios
also move with the share of the CPU each path happened to get.

Every row carries wall and process-CPU seconds (CPU seconds are less sensitive to other jobs), the 1-minute load
average seen during the stage (the machine is shared with a training queue), and the machine
(:func:`fr.envinfo.collect_env`: CPU count, torch, threads, commit).

    python benchmarks/bench_eval_suite.py --run results/runs/celeba_v2-9cf0c29e     # that run's model
    python benchmarks/bench_eval_suite.py                                           # random iresnet_small@56
    python benchmarks/bench_eval_suite.py --skip-final-eval --sample 512            # the embed rows only
    python benchmarks/bench_eval_suite.py --data DIR --size 16 --out x.csv         # another data root (tests)
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr.config import load_config  # noqa: E402
from fr.engine.trainer import build_backbone  # noqa: E402
from fr.envinfo import code_version, collect_env  # noqa: E402
from fr.paths import data_root, results_root  # noqa: E402

PATHS = ("old", "fold_bn", "compile", "fold_bn+compile", "bf16")


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


def _load(clocks) -> str:
    return f"{min(min(c.load0, c.load1) for c in clocks):.1f}-{max(max(c.load0, c.load1) for c in clocks):.1f}"


def _model(args, cfg):
    if args.run:
        from fr.evaluate import load_run_model

        return load_run_model(args.run), f"{args.run.name} (recorded run's final model)"
    params = dict(cfg.backbone.params)
    if args.size:
        params["input_size"] = args.size
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone.name, params).eval()
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, f"{cfg.backbone.name}@{model.input_spec.size[0]}px (random init)"


def embed_rows(model, images, paths, rounds, batch_size) -> list[dict]:
    """Each path of ``paths`` on ``images``, interleaved over ``rounds``; one row per path (medians)."""
    from fr.eval.embed import extract_embeddings, inference_model

    runners, compile_s = {}, {}
    for p in paths:
        fold, comp = "fold_bn" in p, "compile" in p
        with Clock() as c:
            m = inference_model(model, fold_bn=fold, compile=comp)
            if comp:   # the first call of each batch shape compiles: pay it here, outside the timed rounds
                extract_embeddings(m, images[:batch_size], flip="sum", batch_size=batch_size)
                if images.shape[0] % batch_size:
                    extract_embeddings(m, images[:images.shape[0] % batch_size], flip="sum", batch_size=batch_size)
        if comp:
            compile_s[p] = c.wall
        runners[p] = (m, "bf16" if p == "bf16" else "none")
    times = {p: [] for p in paths}
    out = {}
    for _ in range(rounds):
        for p in paths:
            m, amp = runners[p]
            with Clock() as c:
                out[p] = extract_embeddings(m, images, flip="sum", batch_size=batch_size, amp=amp)[0]
            times[p].append(c)
    n = images.shape[0]
    ref = out[paths[0]]
    rows = []
    base_wall = statistics.median(c.wall for c in times[paths[0]])
    base_cpu = statistics.median(c.cpu for c in times[paths[0]])
    for p in paths:
        wall = statistics.median(c.wall for c in times[p])
        cpu = statistics.median(c.cpu for c in times[p])
        rows.append({"kind": "embed", "impl": p, "n_images_embedded": n, "rounds": rounds,
                     "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "images_per_s": round(n / wall, 1), "images_per_cpu_s": round(n / cpu, 1),
                     "speedup_vs_old": round(base_wall / wall, 3), "cpu_speedup_vs_old": round(base_cpu / cpu, 3),
                     "bit_exact_vs_old": bool(torch.equal(out[p], ref)),
                     "max_abs_diff_vs_old": f"{(out[p] - ref).abs().max().item():.2e}",
                     "compile_s": round(compile_s[p], 1) if p in compile_s else "",
                     "load_avg_1m": _load(times[p]),
                     "notes": "wall/cpu: medians over the rounds; flip sum (2 forward passes per image)"})
        print(f"embed {p:16s} {n / wall:7.1f} img/s wall  {n / cpu:7.1f} img/cpu-s  x{base_wall / wall:.2f}  "
              f"exact {rows[-1]['bit_exact_vs_old']}", flush=True)
    return rows


def final_eval_rows(model, root, args, cfg) -> list[dict]:
    from fr.data import load_bin
    from fr.eval import evaluate_verification
    from fr.eval.suite import DEFAULT_PROTOCOLS, evaluate_suite, prepare_suite

    size, bs, flip = model.input_spec.size, args.batch_size or cfg.eval.batch_size, cfg.eval.flip
    rows = []

    def row(impl, protocols, n, stages: dict[str, Clock], notes=""):
        r = {"kind": "final_eval", "impl": impl, "protocols": protocols, "n_images_embedded": n,
             **{f"{k}_wall_s": round(c.wall, 2) for k, c in stages.items()},
             "wall_s": round(sum(c.wall for c in stages.values()), 2),
             "cpu_s": round(sum(c.cpu for c in stages.values()), 2), "load_avg_1m": _load(stages.values()),
             "notes": notes}
        rows.append(r)
        print(f"{impl:32s} {n:6d} images  wall {r['wall_s']:8.1f} s  cpu {r['cpu_s']:8.1f} s", flush=True)
        return r

    today = {}
    with Clock() as load_t:
        sets = {n: load_bin(root / "verification" / f"{n}.bin", size=size) for n in ("lfw", "cfp_fp")}
    with Clock() as eval_t:
        for n, v in sets.items():
            today[n] = evaluate_verification(model, v, protocol=cfg.eval.protocol, flip=flip, batch_size=bs)
    r_today = row("today (2 x evaluate_verification)", "lfw cfp_fp", sum(v.images.shape[0] for v in sets.values()),
                  {"load": load_t, "embed_and_protocols": eval_t})
    del sets
    with Clock() as cold:
        prepare_suite(root, DEFAULT_PROTOCOLS, size=size, cache=True)   # decodes the files once (cold cache)
    row("suite decode (cold)", "(load only)", 0, {"load": cold},
        notes="first prepare_suite on a machine: decode and degrade every image, write the cache")
    with Clock() as prep_t:
        data = prepare_suite(root, DEFAULT_PROTOCOLS, size=size, cache=True)
    with Clock() as run_t:
        res = evaluate_suite(model, data=data, protocols=DEFAULT_PROTOCOLS, flip=flip, batch_size=bs)
    r_suite = row("suite (all protocols)", " ".join(DEFAULT_PROTOCOLS), res.embedding["n_images_embedded"],
                  {"load": prep_t, "embed_and_protocols": run_t},
                  notes=f"embed {res.timing['embed']:.1f} s; protocols "
                        + ", ".join(f"{k} {v:.1f} s" for k, v in res.timing["protocols"].items()))
    same = all(res[n].to_dict() == today[n].to_dict() for n in ("lfw", "cfp_fp"))
    r_suite["notes"] += f"; lfw and cfp_fp identical to today's: {same}"
    for r in rows:
        r["wall_vs_today"] = round(r["wall_s"] / r_today["wall_s"], 3)
        r["cpu_vs_today"] = round(r["cpu_s"] / r_today["cpu_s"], 3)
    print(f"suite / today: wall x{r_suite['wall_vs_today']:.2f}, cpu x{r_suite['cpu_vs_today']:.2f}; "
          f"lfw, cfp_fp identical to today's: {same}")
    return rows, same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "cpu" / "celeba_v2.yaml"),
                    help="model and eval settings when no --run is given")
    ap.add_argument("--run", type=Path, default=None, help="a recorded run whose ckpt/model.pt to use")
    ap.add_argument("--data", type=Path, default=None, help="data root (default FR_DATA)")
    ap.add_argument("--size", type=int, default=None, help="model input size (random model only)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's eval.batch_size")
    ap.add_argument("--sample", type=int, default=1024, help="images in the embed throughput sample")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default=",".join(PATHS), help=f"embed paths, the first the reference: {PATHS}")
    ap.add_argument("--skip-final-eval", action="store_true", help="only the embed rows")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fr.data.identification import load_faces, load_manifest

    if args.run is not None:
        from fr.results import load_run
        cfg = load_run(args.run).config
    else:
        cfg = load_config(args.config)
    model, model_desc = _model(args, cfg)
    root = args.data or data_root()
    out = args.out or results_root() / "bench" / "eval_suite.csv"
    paths = tuple(args.paths.split(","))
    unknown = [p for p in paths if p not in PATHS]
    if unknown or paths[0] != "old":
        raise SystemExit(f"--paths: unknown {unknown} (known {PATHS}); the first must be 'old'")
    env = collect_env("cpu")
    meta = {"model": model_desc, "batch_size": args.batch_size or cfg.eval.batch_size, "flip": cfg.eval.flip,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": env["cpu_count"],
            "cpu": platform.processor() or platform.machine(), "commit": code_version(),
            "date": _dt.datetime.now().isoformat(timespec="seconds")}

    manifest = load_manifest(root / "identification")
    n = min(args.sample, len(manifest))
    pick = np.linspace(0, len(manifest) - 1, n).round().astype(np.int64)   # spread over LFW and CFP
    images = load_faces(manifest, pick, size=model.input_spec.size, cache=True)
    rows = embed_rows(model, images, paths, args.rounds, meta["batch_size"])
    same = True
    if not args.skip_final_eval:
        fe, same = final_eval_rows(model, root, args, cfg)
        rows += fe
    rows = [{**r, **meta} for r in rows]
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
