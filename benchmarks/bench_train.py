"""Training-step throughput: our loop against a reference loop written the way insightface runs it.

CPU mode (default): IResNet-18, 112 px, batch 64, CosFace (s=64, m=0.35), 1000 classes, fp32.

* ``reference``: what ``arcface_torch/train_v2.py`` does per step, on the CPU: eager, NCHW, fp32; the
  class centres are a plain parameter, the cosine is ``linear(normalize(emb), normalize(W)).clamp(-1, 1)``
  and the margin is written inline (``logits[i, y_i] -= m``, ``logits *= s``, cross-entropy), then
  ``clip_grad_norm_(backbone, 5)`` and SGD (momentum 0.9, weight decay 5e-4).
* ``ours``: the same backbone and optimiser, with ``fr.create_head("cosface")``, the model and input in
  channels_last, optionally ``torch.compile`` on the backbone (``--compile``); fp32.
* ``ours_bf16``: the same as ``ours`` under bf16 autocast, what the engine does with ``runtime.amp: bf16``
  on a CPU (fast where the CPU has bf16 instructions, e.g. AVX512-BF16 or AMX; slow where it has not).
  Its first loss is checked at a bf16 tolerance; whether bf16 changes accuracy is a training question,
  answered by a recorded run of the CPU recipe, not here.

Both start from the same weights and see the same batches; the script checks that their first losses
agree, warms both up, then times them in interleaved rounds (so a background load hits both alike) and
writes ``results/bench/train.csv`` with images/s and the ratio ours/reference. Goal: ratio >= 1.3.

GPU mode (``--gpu``, needs CUDA): IResNet-50, batch 512, bf16 autocast; records images/s and the share of
the GPU's dense bf16 peak reached (FLOPs counted analytically from the conv/linear shapes, 3x the forward
pass per training step; see :mod:`fr.backbones.flops`). The peak comes from ``--peak-tflops`` or a small
table keyed by the device name. The reference there uses bf16 autocast too (insightface uses fp16 with a
GradScaler; bf16 needs no scaler), so the comparison isolates the memory format and compilation.

    python benchmarks/bench_train.py                 # CPU, full size (minutes)
    python benchmarks/bench_train.py --quick         # tiny sizes, a smoke test of the script
    python benchmarks/bench_train.py --compile
    python benchmarks/bench_train.py --gpu
"""
from __future__ import annotations

import argparse
import copy
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fr  # noqa: E402
from fr.backbones import create_backbone, train_flops_per_image  # noqa: E402
from fr.envinfo import code_version  # noqa: E402
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
    """Our step: channels_last backbone (optionally compiled) and ``fr.create_head``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, amp: bool, compile: bool):
        self.backbone = backbone.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.backbone) if compile else self.backbone
        self.head, self.amp = head, amp
        self.opt = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=0.1, momentum=0.9,
                                   weight_decay=5e-4)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
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


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device or ("cuda" if args.gpu else "cpu"))
    torch.manual_seed(args.seed)
    backbone = create_backbone(args.backbone, input_size=args.size).to(device)
    head = fr.create_head("cosface", num_classes=args.classes, embedding_size=backbone.embedding_size).to(device)
    ref = InsightfaceStyleStep(copy.deepcopy(backbone), head.classifier.weight, head.rule.s, head.rule.m,
                               amp=args.gpu)
    # variant -> (step, precision); every variant starts from the same weights
    steps = {"reference": (ref, "bf16-autocast" if args.gpu else "fp32")}
    if args.gpu:
        steps["ours"] = (OurStep(backbone, head, amp=True, compile=args.compile), "bf16-autocast")
    else:
        steps["ours"] = (OurStep(copy.deepcopy(backbone), copy.deepcopy(head), amp=False, compile=args.compile),
                         "fp32")
        if not args.no_bf16:  # the engine's runtime.amp=bf16 on a CPU with bf16 support
            steps["ours_bf16"] = (OurStep(backbone, head, amp=True, compile=args.compile), "bf16-autocast")
    g = torch.Generator().manual_seed(args.seed + 1)
    batches = [(torch.rand(args.batch, 3, args.size, args.size, generator=g).mul_(2).sub_(1).to(device),
                torch.randint(0, args.classes, (args.batch,), generator=g).to(device)) for _ in range(2)]

    # same weights, same batch: the first losses must agree (channels_last/compile change rounding only;
    # bf16 rounds to 8 mantissa bits, hence its looser tolerance)
    first = {name: float(step(*batches[0])) for name, (step, _) in steps.items()}
    check = {}
    for name, (_, precision) in steps.items():
        diff = abs(first[name] - first["reference"])
        tol = (2e-2 if precision.startswith("bf16") else 1e-3) * max(1.0, abs(first["reference"]))
        check[name] = (diff, tol)
        print(f"first loss {name}: {first[name]:.6f}, |diff| to reference {diff:.2e} "
              f"({'agree' if diff <= tol else 'DISAGREE'}; tolerance {tol:.1e})", flush=True)

    for name, (step, _) in steps.items():  # warm-up (compilation happens here)
        t0 = time.perf_counter()
        for i in range(args.warmup):
            step(*batches[i % 2])
        sync(device)
        print(f"warm-up {name}: {args.warmup} steps in {time.perf_counter() - t0:.1f} s", flush=True)

    elapsed = {name: 0.0 for name in steps}
    per_round = max(1, math.ceil(args.steps / args.rounds))
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]  # alternate who goes first
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            for i in range(per_round):
                loss = steps[name][0](*batches[i % 2])
            float(loss)  # wait for the step's result
            sync(device)
            elapsed[name] += time.perf_counter() - t0
    n_img = per_round * args.rounds * args.batch

    flops = train_flops_per_image(backbone, head_classes=args.classes) if args.gpu else None
    dev_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else (platform.processor() or platform.machine()))
    peak = peak_tflops(dev_name, args.peak_tflops) if args.gpu else None
    commit, date = code_version(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = []
    for name, (_, precision) in steps.items():
        ips = n_img / elapsed[name]
        diff, tol = check[name]
        row = {
            "variant": name, "img_per_s": round(ips, 2),
            "ratio": round(ips / (n_img / elapsed["reference"]), 3),
            "first_loss": round(first[name], 6), "first_loss_diff": f"{diff:.2e}",
            "losses_agree": diff <= tol,
            "backbone": args.backbone, "size": args.size, "batch": args.batch, "classes": args.classes,
            "timed_steps": per_round * args.rounds, "rounds": args.rounds, "warmup": args.warmup,
            "channels_last": name != "reference", "compile": args.compile and name != "reference",
            "precision": precision,
            "device": dev_name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "commit": commit, "date": date,
        }
        if args.gpu:
            row["train_gflop_per_img"] = round(flops / 1e9, 2)
            row["achieved_tflops"] = round(ips * flops / 1e12, 1)
            row["peak_bf16_tflops"] = peak
            row["share_of_peak"] = round(ips * flops / 1e12 / peak, 4) if peak else ""
        rows.append(row)
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    keys = [k for k in ("variant", "img_per_s", "ratio", "first_loss", "first_loss_diff", "achieved_tflops",
                        "share_of_peak") if k in rows[0]]
    print(" ".join(f"{k:>16}" for k in keys))
    for r in rows:
        print(" ".join(f"{str(r[k]):>16}" for k in keys))
    print(f"wrote {out}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, help="timed steps per variant (default 40 CPU, 60 GPU, 4 quick)")
    p.add_argument("--batch", type=int, help="batch size (default 64 CPU, 512 GPU, 8 quick)")
    p.add_argument("--size", type=int, help="input size in pixels (default 112; 32 quick)")
    p.add_argument("--classes", type=int, default=1000, help="number of classes of the CosFace head")
    p.add_argument("--warmup", type=int, help="untimed steps per variant first (default 3; 1 quick)")
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 4; 2 quick)")
    p.add_argument("--backbone", help="registered backbone (default iresnet18 CPU, iresnet50 GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile our backbone")
    p.add_argument("--no-bf16", action="store_true", help="CPU: skip the bf16-autocast variant of our step")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    p.add_argument("--gpu", action="store_true", help="GPU mode (IResNet-50, batch 512, bf16); needs CUDA")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    p.add_argument("--device", help="run on this device instead (e.g. --gpu --device cpu checks the GPU mode's code)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="CSV path (default results/bench/train[_gpu][_quick].csv)")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else ("gpu" if args.gpu else "cpu")
    defaults = {
        "cpu": dict(steps=40, batch=64, size=112, warmup=3, rounds=4, backbone="iresnet18"),
        "gpu": dict(steps=60, batch=512, size=112, warmup=5, rounds=4, backbone="iresnet50"),
        "quick": dict(steps=4, batch=8, size=32, warmup=1, rounds=2, backbone="iresnet18"),
    }[mode]
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out is None:
        stem = "train_gpu" if args.gpu else "train"
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
    print(f"{'GPU' if args.gpu else 'CPU'} benchmark: {args.backbone} @ {args.size}px, batch {args.batch}, "
          f"{args.classes} classes, {args.steps} timed steps in {args.rounds} rounds, compile={args.compile}, "
          f"threads={torch.get_num_threads()}", flush=True)
    rows = run(args)
    write(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
