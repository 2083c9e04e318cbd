"""Training-step throughput: our loop against a reference loop written the way insightface runs it.

CPU mode (default) measures, in one run, two configurations side by side:

* ``iresnet18`` at 112 px, batch 64, CosFace over 1000 classes (the configuration this benchmark always had);
* the CPU recipe's (``configs/cpu/celeba_v2.yaml``): ``iresnet_small`` at 56 px, batch 128, 238 classes;

and for each of them these variants, all starting from the same weights and seeing the same batches:

* ``reference``: what ``arcface_torch/train_v2.py`` does per step, on the CPU: eager, NCHW, fp32; the
  class centres are a plain parameter, the cosine is ``linear(normalize(emb), normalize(W)).clamp(-1, 1)``
  and the margin is written inline (``logits[i, y_i] -= m``, ``logits *= s``, cross-entropy), then
  ``clip_grad_norm_(backbone, 5)`` and SGD (momentum 0.9, weight decay 5e-4);
* ``eager``: our step (``fr.create_head("cosface")``), model and input in channels_last, fp32;
* ``eager_nchw``: the same without channels_last;
* ``compile``: ``eager`` with ``torch.compile`` on the backbone (mode ``default``), what ``runtime.compile``
  does in the engine;
* ``compile_autotune``: mode ``max-autotune-no-cudagraphs`` (inductor benchmarks GEMM templates on the CPU);
* ``bf16``: ``eager`` under bf16 autocast, what ``runtime.amp: bf16`` does on a CPU (fast with AVX512-BF16 or
  AMX, very slow without; timed for few steps).

Per variant it records the time to the first step (for the compiled ones: compilation), then the
steady-state seconds per step after ``--warmup`` steps, timed in interleaved rounds (ABAB..., the order
reversed every round, so a background load hits every variant alike), images/s, the ratio to the reference,
and the share of the CPU's nominal FP32 peak (``fr.envinfo.cpu_info``: cores x clock x FLOPs per cycle;
FLOPs counted analytically as ``fr.backbones.train_flops_per_image`` does: 3x the forward pass of backbone
and classifier). The first losses must agree with the reference's (bf16 at a looser tolerance). Machine
information and the load average before and after go into ``results/bench/train_cpu.csv``.
(``results/bench/train.csv`` is an earlier record of the IResNet-18 configuration on an AVX-512 machine.)

Compilation is measured with an empty inductor cache (a private ``TORCHINDUCTOR_CACHE_DIR``), what a first
run on a machine pays; ``--warm-cache`` keeps the user's cache. Within one run the compiled variants share
that cache, so the second one (``compile_autotune`` after ``compile``) reuses kernels the first compiled: its
time to the first step is a lower bound (run ``--variants compile_autotune`` alone for its cold cost).

GPU mode (``--gpu``, needs CUDA): IResNet-50, batch 512, bf16 autocast, ``reference`` against ``ours``
(channels_last, ``--compile`` for torch.compile); records images/s and the share of the GPU's dense bf16
peak reached. The peak comes from ``--peak-tflops`` or a small table keyed by the device name. The
reference there uses bf16 autocast too (insightface uses fp16 with a GradScaler; bf16 needs no scaler), so
the comparison isolates the memory format and compilation.

    python benchmarks/bench_train.py                 # CPU: both configurations, every variant
    python benchmarks/bench_train.py --quick         # tiny sizes, a smoke test of the script (~1 min)
    python benchmarks/bench_train.py --configs recipe --variants reference,eager,compile
    python benchmarks/bench_train.py --gpu [--compile]
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fr  # noqa: E402
from fr.backbones import create_backbone, train_flops_per_image  # noqa: E402
from fr.config import load_config  # noqa: E402
from fr.envinfo import code_version, cpu_info  # noqa: E402
from fr.paths import results_root  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity), from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H200": 989.0,
    "GH200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0,
}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):  # most specific first
        if key.lower() in device_name.lower():
            return PEAK_BF16_TFLOPS[key]
    return None


class InsightfaceStyleStep:
    """One training step as insightface writes it (eager; margin inline on the logits)."""

    def __init__(self, backbone: nn.Module, centres: torch.Tensor, s: float, m: float, *, amp: bool):
        self.backbone = backbone
        self.weight = nn.Parameter(centres.detach().clone())
        self.s, self.m, self.amp = s, m, amp
        self.opt = torch.optim.SGD([*backbone.parameters(), self.weight], lr=0.1, momentum=0.9, weight_decay=5e-4)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            emb = self.backbone(x)[0]  # insightface's backbone returns the embedding only
        logits = F.linear(F.normalize(emb.float()), F.normalize(self.weight)).clamp(-1, 1)
        rows = torch.arange(y.numel(), device=y.device)
        logits[rows, y] = logits[rows, y] - self.m
        loss = F.cross_entropy(logits * self.s, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.backbone.parameters(), max_norm=5)
        self.opt.step()
        self.opt.zero_grad()
        return loss.detach()


class OurStep:
    """Our step: the backbone (channels_last unless told otherwise, optionally compiled with ``compile`` as
    the torch.compile mode) and ``fr.create_head``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, amp: bool, compile: str | None = None,
                 channels_last: bool = True):
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.backbone = backbone.to(memory_format=self.memory_format)
        self.forward = torch.compile(self.backbone, mode=compile) if compile else self.backbone
        self.head, self.amp = head, amp
        self.opt = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.1, momentum=0.9,
                                   weight_decay=5e-4)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            emb, norm = self.forward(x)
        loss = self.head(emb, y, norm).loss
        loss.backward()
        nn.utils.clip_grad_norm_(self.backbone.parameters(), max_norm=5)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.detach()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


#: the CPU variants: name -> (our step's keyword arguments, precision); ``reference`` is InsightfaceStyleStep
CPU_VARIANTS = {
    "eager": (dict(amp=False), "fp32"),
    "eager_nchw": (dict(amp=False, channels_last=False), "fp32"),
    "compile": (dict(amp=False, compile="default"), "fp32"),
    "compile_autotune": (dict(amp=False, compile="max-autotune-no-cudagraphs"), "fp32"),
    "bf16": (dict(amp=True), "bf16-autocast"),
}
#: variants timed for ``--slow-steps`` per round only (bf16 autocast on a CPU without native bf16)
SLOW_VARIANTS = ("bf16",)


def cpu_configs(names: list[str], quick_backbone: str | None) -> list[dict]:
    """The CPU configurations: ``iresnet18`` (112 px, batch 64, 1000 classes, CosFace s=64) and ``recipe``
    (the CPU recipe's backbone, batch, classes and CosFace scale, read from ``configs/cpu/celeba_v2.yaml``);
    ``quick``: a tiny stand-in for smoke tests."""
    out = []
    for name in names:
        if name == "iresnet18":
            out.append(dict(config="iresnet18", backbone="iresnet18", params={"input_size": 112}, batch=64,
                            classes=1000, s=64.0, m=0.35))
        elif name == "recipe":
            cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "cpu" / "celeba_v2.yaml")
            if cfg.head.name != "cosface":
                raise ValueError(f"the recipe's head is {cfg.head.name!r}; this benchmark runs CosFace")
            out.append(dict(config=cfg.name, backbone=cfg.backbone.name, params=dict(cfg.backbone.params),
                            batch=cfg.data.batch_size, classes=cfg.data.num_classes,
                            s=float(cfg.head.params.get("s", 64.0)), m=float(cfg.head.params.get("m", 0.35))))
        elif name == "quick":
            out.append(dict(config="quick", backbone=quick_backbone or "iresnet18", params={"input_size": 32},
                            batch=8, classes=1000, s=64.0, m=0.35))
        else:
            raise ValueError(f"unknown configuration {name!r}; choose from iresnet18, recipe, quick")
    return out


def measure(steps: dict, batches: list, *, warmup: int, rounds: int, per_round: dict[str, int],
            device: torch.device) -> dict[str, dict]:
    """Run every step once on ``batches[0]`` (timed: the time to the first step, compilation included;
    its loss is returned for the agreement check), ``warmup - 1`` more untimed, then ``rounds`` interleaved
    rounds of ``per_round[name]`` timed steps each, the order reversed every other round."""
    res = {name: {"elapsed": 0.0, "steps": 0} for name in steps}
    for name, step in steps.items():
        sync(device)
        t0 = time.perf_counter()
        res[name]["first_loss"] = float(step(*batches[0]))  # float() waits for the result
        res[name]["first_step_s"] = time.perf_counter() - t0
        for i in range(1, warmup):
            step(*batches[i % 2])
        sync(device)
        print(f"{name}: first step {res[name]['first_step_s']:.1f} s (loss {res[name]['first_loss']:.6f}), "
              f"warm-up to {warmup} steps done at {time.perf_counter() - t0:.1f} s", flush=True)
    for r in range(rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            for i in range(per_round[name]):
                loss = steps[name](*batches[i % 2])
            float(loss)
            sync(device)
            res[name]["elapsed"] += time.perf_counter() - t0
            res[name]["steps"] += per_round[name]
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {res[n]['elapsed'] / res[n]['steps']:.2f} s/step"
                                                    for n in steps), flush=True)
    return res


def loss_check(first: float, ref: float, precision: str) -> tuple[float, float]:
    """``(|first - ref|, tolerance)``: channels_last/compile change rounding only; bf16 rounds to 8 mantissa
    bits, hence its looser tolerance."""
    tol = (2e-2 if precision.startswith("bf16") else 1e-3) * max(1.0, abs(ref))
    return abs(first - ref), tol


def make_batches(batch: int, size: int, classes: int, seed: int, device: torch.device) -> list:
    g = torch.Generator().manual_seed(seed + 1)
    return [(torch.rand(batch, 3, size, size, generator=g).mul_(2).sub_(1).to(device),
             torch.randint(0, classes, (batch,), generator=g).to(device)) for _ in range(2)]


def run_cpu(args: argparse.Namespace) -> list[dict]:
    """Every configuration of ``args.configs`` with every variant of ``args.variants``; one row each."""
    device = torch.device("cpu")
    info = cpu_info()
    peak = args.peak_gflops or info["peak_fp32_gflops"]
    commit = code_version()
    rows = []
    for c in cpu_configs(args.configs, args.backbone):
        torch.manual_seed(args.seed)
        backbone = create_backbone(c["backbone"], **c["params"])
        size = backbone.input_spec.size[0]
        head = fr.create_head("cosface", num_classes=c["classes"], embedding_size=backbone.embedding_size,
                              s=c["s"], m=c["m"])
        flops = train_flops_per_image(backbone, head_classes=c["classes"])
        steps = {"reference": InsightfaceStyleStep(copy.deepcopy(backbone), head.classifier.weight, head.rule.s,
                                                   head.rule.m, amp=False)}
        precision = {"reference": "fp32"}
        for name in args.variants:
            kw, precision[name] = CPU_VARIANTS[name]
            steps[name] = OurStep(copy.deepcopy(backbone), copy.deepcopy(head), **kw)
        per_round = {n: (args.slow_steps if n in SLOW_VARIANTS else math.ceil(args.steps / args.rounds))
                     for n in steps}
        print(f"\n== {c['config']}: {c['backbone']} @ {size}px, batch {c['batch']}, {c['classes']} classes, "
              f"{flops / 1e9:.2f} GFLOP per training image; variants {', '.join(steps)}", flush=True)
        load0, t0 = os.getloadavg(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
        res = measure(steps, make_batches(c["batch"], size, c["classes"], args.seed, device), warmup=args.warmup,
                      rounds=args.rounds, per_round=per_round, device=device)
        load1 = os.getloadavg()
        ref_ips = res["reference"]["steps"] * c["batch"] / res["reference"]["elapsed"]
        for name in steps:
            r = res[name]
            s_per_step = r["elapsed"] / r["steps"]
            ips = c["batch"] / s_per_step
            diff, tol = loss_check(r["first_loss"], res["reference"]["first_loss"], precision[name])
            kw = CPU_VARIANTS[name][0] if name != "reference" else {}
            rows.append({
                "config": c["config"], "variant": name, "backbone": c["backbone"], "size": size,
                "batch": c["batch"], "classes": c["classes"], "precision": precision[name],
                "channels_last": name != "reference" and kw.get("channels_last", True),
                "compile": kw.get("compile") or "",
                "first_step_s": round(r["first_step_s"], 2), "s_per_step": round(s_per_step, 3),
                "img_per_s": round(ips, 2), "ratio": round(ips / ref_ips, 3),
                "train_gflop_per_img": round(flops / 1e9, 3), "achieved_gflops": round(ips * flops / 1e9, 1),
                "peak_fp32_gflops": peak, "share_of_peak": round(ips * flops / 1e9 / peak, 4) if peak else "",
                "first_loss": round(r["first_loss"], 6), "first_loss_diff": f"{diff:.2e}", "losses_agree": diff <= tol,
                "timed_steps": r["steps"], "rounds": args.rounds, "warmup": args.warmup,
                "cpu": info["cpu"], "mhz": info["mhz"], "cores": info["cores"], "isa": info["isa"],
                "threads": torch.get_num_threads(), "loadavg_start": round(load0[0], 2),
                "loadavg_end": round(load1[0], 2), "torch": torch.__version__, "commit": commit, "date": t0,
            })
        del steps, res
    return rows


def run_gpu(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device or "cuda")
    torch.manual_seed(args.seed)
    backbone = create_backbone(args.backbone, input_size=args.size).to(device)
    head = fr.create_head("cosface", num_classes=args.classes, embedding_size=backbone.embedding_size).to(device)
    steps = {"reference": InsightfaceStyleStep(copy.deepcopy(backbone), head.classifier.weight, head.rule.s,
                                               head.rule.m, amp=True),
             "ours": OurStep(backbone, head, amp=True, compile="default" if args.compile else None)}
    per_round = {n: max(1, math.ceil(args.steps / args.rounds)) for n in steps}
    res = measure(steps, make_batches(args.batch, args.size, args.classes, args.seed, device), warmup=args.warmup,
                  rounds=args.rounds, per_round=per_round, device=device)
    flops = train_flops_per_image(backbone, head_classes=args.classes)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    peak = peak_tflops(dev_name, args.peak_tflops)
    commit, date = code_version(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    ref_ips = res["reference"]["steps"] * args.batch / res["reference"]["elapsed"]
    rows = []
    for name in steps:
        r = res[name]
        ips = r["steps"] * args.batch / r["elapsed"]
        diff, tol = loss_check(r["first_loss"], res["reference"]["first_loss"], "bf16")
        rows.append({
            "variant": name, "img_per_s": round(ips, 2), "ratio": round(ips / ref_ips, 3),
            "first_loss": round(r["first_loss"], 6), "first_loss_diff": f"{diff:.2e}", "losses_agree": diff <= tol,
            "backbone": args.backbone, "size": args.size, "batch": args.batch, "classes": args.classes,
            "timed_steps": r["steps"], "rounds": args.rounds, "warmup": args.warmup,
            "channels_last": name != "reference", "compile": args.compile and name != "reference",
            "precision": "bf16-autocast", "device": dev_name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "commit": commit, "date": date,
            "train_gflop_per_img": round(flops / 1e9, 2), "achieved_tflops": round(ips * flops / 1e12, 1),
            "peak_bf16_tflops": peak, "share_of_peak": round(ips * flops / 1e12 / peak, 4) if peak else "",
            "first_step_s": round(r["first_step_s"], 2),
        })
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    keys = [k for k in ("config", "variant", "first_step_s", "s_per_step", "img_per_s", "ratio", "first_loss_diff",
                        "achieved_gflops", "achieved_tflops", "share_of_peak") if k in rows[0]]
    print(" ".join(f"{k:>16}" for k in keys))
    for r in rows:
        print(" ".join(f"{str(r[k]):>16}" for k in keys))
    print(f"wrote {out}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", help="CPU: comma-separated configurations, of iresnet18, recipe "
                                     "(default both; quick with --quick)")
    p.add_argument("--variants", help=f"CPU: comma-separated variants besides the reference, of "
                                      f"{', '.join(CPU_VARIANTS)} (default all; --quick: all but the compiled)")
    p.add_argument("--steps", type=int, help="timed steps per variant (default 6 CPU, 60 GPU, 2 quick)")
    p.add_argument("--slow-steps", type=int, default=1, help="CPU: timed steps per round of the bf16 variant")
    p.add_argument("--batch", type=int, help="GPU: batch size (default 512)")
    p.add_argument("--size", type=int, help="GPU: input size in pixels (default 112)")
    p.add_argument("--classes", type=int, default=1000, help="GPU: number of classes of the CosFace head")
    p.add_argument("--warmup", type=int, help="steps per variant before timing, the first included "
                                              "(default 2 CPU, 5 GPU, 1 quick)")
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 2 CPU, 4 GPU, 2 quick)")
    p.add_argument("--backbone", help="GPU: registered backbone (default iresnet50); --quick: the tiny one's")
    p.add_argument("--compile", action="store_true", help="GPU: torch.compile our backbone")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    p.add_argument("--gpu", action="store_true", help="GPU mode (IResNet-50, batch 512, bf16); needs CUDA")
    p.add_argument("--peak-tflops", type=float, help="GPU: the dense bf16 peak, if not in the table")
    p.add_argument("--peak-gflops", type=float, help="CPU: the FP32 peak (default: fr.envinfo.cpu_info's)")
    p.add_argument("--device", help="GPU mode on this device instead (--gpu --device cpu checks the code)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--warm-cache", action="store_true",
                   help="keep the user's inductor cache (default: an empty one, so compilation is timed cold)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="CSV path (default results/bench/train_cpu[_quick].csv, "
                                            "train_gpu.csv with --gpu)")
    args = p.parse_args(argv)
    if args.gpu:
        defaults = dict(steps=60, batch=512, size=112, warmup=5, rounds=4, backbone="iresnet50")
    elif args.quick:
        defaults = dict(steps=2, warmup=1, rounds=2, configs="quick", variants="eager,eager_nchw,bf16")
    else:
        defaults = dict(steps=6, warmup=2, rounds=2, configs="iresnet18,recipe", variants=",".join(CPU_VARIANTS))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not args.gpu:
        args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
        args.variants = [v.strip() for v in args.variants.split(",") if v.strip() and v.strip() != "reference"]
        unknown = [v for v in args.variants if v not in CPU_VARIANTS]
        if unknown:
            p.error(f"unknown variants {unknown}; choose from {', '.join(CPU_VARIANTS)}")
    if args.warmup < 1:
        p.error("--warmup must be >= 1 (the first step is always run before timing)")
    if args.out is None:
        stem = "train_gpu" if args.gpu else "train_cpu"
        args.out = results_root() / "bench" / (f"{stem}_quick.csv" if args.quick else f"{stem}.csv")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.gpu and args.device is None and not torch.cuda.is_available():
        print("--gpu: no CUDA device here; nothing to measure", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    elif (args.device or ("cuda" if args.gpu else "cpu")) == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    cache = None
    if not args.warm_cache:  # time compilation as a first run on this machine pays it
        cache = tempfile.TemporaryDirectory(prefix="bench_train_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name
    try:
        if args.gpu:
            print(f"GPU benchmark: {args.backbone} @ {args.size}px, batch {args.batch}, {args.classes} classes, "
                  f"{args.steps} timed steps in {args.rounds} rounds, compile={args.compile}", flush=True)
            rows = run_gpu(args)
        else:
            info = cpu_info()
            print(f"CPU benchmark on {info['cpu']} ({info['cores']} cores, {info['mhz']} MHz, {info['isa']}, "
                  f"nominal FP32 peak {info['peak_fp32_gflops']} GFLOP/s), threads={torch.get_num_threads()}, "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
            rows = run_cpu(args)
    finally:
        if cache is not None:
            cache.cleanup()
    write(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
