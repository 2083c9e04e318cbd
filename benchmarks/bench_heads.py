"""Cost of every registered head against plain CosFace: forward + backward of the head alone.

For each head in ``fr.list_heads()`` (whatever is registered when the script runs), build it with
``fr.create_head(name, num_classes=C, embedding_size=D)`` (paper defaults, full classifier, train mode) and
time one step: ``head(emb, labels)`` then ``loss.backward()`` into the embeddings and the class centres, on a
fixed batch ``(B, D)``. The reference is ``fr.create_head("cosface")`` on the same batch, measured in the
same run and interleaved with the head (A B A B ...), so a background load or a frequency change hits both
alike. After a warm-up, each side is timed ``--repeats`` times; the row reports the medians and their ratio
(goal: ratio <= 1.5, i.e. a head costs at most 1.5x CosFace).

Output: ``results/bench/heads.csv`` (``heads_quick.csv`` with ``--quick``), one row per head with the
torch version, thread count, git commit and date, and a table on stdout. A head that fails to build or run
gets a row with its error instead of a time; the script goes on.

    python benchmarks/bench_heads.py                       # B=256, D=512, C=10000 (a few minutes on 2 cores)
    python benchmarks/bench_heads.py --quick               # 3 repeats: a smoke test of the script
    python benchmarks/bench_heads.py --heads 'elastic*' --repeats 50
    python benchmarks/bench_heads.py --device cuda
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fr  # noqa: E402
from fr.envinfo import code_version  # noqa: E402
from fr.paths import results_root  # noqa: E402

GOAL = 1.5
REFERENCE = "cosface"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """One forward + backward of a head on a fixed batch; returns its wall time in seconds."""

    def __init__(self, name: str, args: argparse.Namespace, emb: torch.Tensor, labels: torch.Tensor):
        torch.manual_seed(args.seed)
        self.name = name
        self.head = fr.create_head(name, num_classes=args.classes, embedding_size=args.dim).to(emb.device).train()
        self.emb = emb.detach().clone().requires_grad_(True)
        self.labels = labels
        self.device = emb.device

    def __call__(self) -> float:
        self.head.zero_grad(set_to_none=True)
        self.emb.grad = None
        sync(self.device)
        t0 = time.perf_counter()
        out = self.head(self.emb, self.labels)
        out.loss.backward()
        sync(self.device)
        dt = time.perf_counter() - t0
        if not torch.isfinite(out.loss):
            raise FloatingPointError(f"head {self.name!r} gave a non-finite loss {float(out.loss)}")
        return dt


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def iqr_ms(times: list[float]) -> float:
    if len(times) < 2:
        return 0.0
    q = statistics.quantiles(times, n=4, method="inclusive")
    return 1e3 * (q[2] - q[0])


def bench_one(name: str, ref: Step, args: argparse.Namespace, emb: torch.Tensor, labels: torch.Tensor) -> dict:
    """Time ``name`` against the reference, interleaved. Returns the CSV row's measured fields."""
    step = ref if name == REFERENCE else Step(name, args, emb, labels)
    for _ in range(args.warmup):
        step(), ref()
    head_t, ref_t = [], []
    for _ in range(args.repeats):
        head_t.append(step())
        ref_t.append(ref())
    h, r = median_ms(head_t), median_ms(ref_t)
    return dict(median_ms=round(h, 4), cosface_median_ms=round(r, 4), ratio=round(h / r, 4),
                within_goal=h / r <= GOAL, iqr_ms=round(iqr_ms(head_t), 4), error="")


def run(args: argparse.Namespace) -> list[dict]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    emb = (torch.randn(args.batch, args.dim, generator=g) * 10).to(device)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g).to(device)
    names = fr.list_heads(args.heads)
    if not names:
        raise SystemExit(f"no registered head matches {args.heads!r}; registered: {', '.join(fr.list_heads())}")
    common = dict(torch=torch.__version__, threads=torch.get_num_threads(), device=str(device), batch=args.batch,
                  classes=args.classes, embedding_size=args.dim, repeats=args.repeats,
                  git_sha=code_version(), date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  python=platform.python_version())
    ref = Step(REFERENCE, args, emb, labels)
    rows = []
    for name in names:
        try:
            measured = bench_one(name, ref, args, emb, labels)
        except Exception as exc:  # noqa: BLE001 -- one broken head must not hide the others' numbers
            measured = dict(median_ms="", cosface_median_ms="", ratio="", within_goal="", iqr_ms="",
                            error=f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300])
        error = measured.pop("error")
        rows.append(dict(head=name, **measured, **common, error=error))
        if args.verbose:
            print_row(rows[-1])
    return rows


def print_row(r: dict) -> None:
    if r["error"]:
        print(f"{r['head']:<22} {'ERROR':>10}  {r['error']}")
        return
    mark = "yes" if r["within_goal"] else "NO"
    print(f"{r['head']:<22} {r['median_ms']:>10.3f} {r['iqr_ms']:>8.3f} {r['cosface_median_ms']:>10.3f} "
          f"{r['ratio']:>7.3f}  {mark}")


def print_table(rows: list[dict]) -> None:
    c = rows[0]
    print(f"\nheads: forward+backward, B={c['batch']}, D={c['embedding_size']}, C={c['classes']}, "
          f"{c['repeats']} repeats, torch {c['torch']}, {c['threads']} threads, {c['device']}, "
          f"commit {c['git_sha']}, {c['date']}")
    print(f"{'head':<22} {'median ms':>10} {'IQR ms':>8} {'cosface ms':>10} {'ratio':>7}  <= {GOAL}")
    for r in rows:
        print_row(r)
    bad = [r["head"] for r in rows if r["error"] or not r["within_goal"]]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} heads within {GOAL}x CosFace" +
          (f"; not: {', '.join(bad)}" if bad else ""))


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=30, help="timed steps per side after warm-up (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per side first (default 5)")
    p.add_argument("--classes", type=int, default=10000, help="number of classes C (default 10000)")
    p.add_argument("--batch", type=int, default=256, help="batch size B (default 256)")
    p.add_argument("--dim", type=int, default=512, help="embedding size D (default 512)")
    p.add_argument("--heads", default="*", help="glob over registered head names (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up: checks the script, not the numbers")
    p.add_argument("--out", type=Path, help="CSV path (default results/bench/heads.csv, heads_quick.csv if --quick)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each head as it finishes")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 3), min(args.warmup, 1)
    for flag in ("repeats", "classes", "batch", "dim"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but CUDA is not available")
    if args.out is None:
        args.out = results_root() / "bench" / ("heads_quick.csv" if args.quick else "heads.csv")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    rows = run(args)
    print_table(rows)
    write(rows, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
