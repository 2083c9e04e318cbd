"""Evaluation throughput: decoding a ``.bin`` set, extracting embeddings, and the 10-fold protocol.

Three stages, each against a reference measured in the same run (alternated A B A B ..., medians reported):

``decode``    ``fr.data.load_bin`` (restricted unpickler, sha256 of the file, Pillow decode into one uint8
              tensor) against a plain loop: ``pickle.load`` then ``np.asarray(Image.open(BytesIO(b)).convert("RGB"))``
              per image, stacked and made channel-first. Unit: images/s.
``extract``   ``fr.eval.extract_embeddings`` (batched, inference mode, ``to_input`` resize to the model's size)
              with flip "none" and "sum", for a small randomly initialised backbone (``fr.backbones`` if
              importable, else a small conv net defined here). Unit: source images/s (with flip, each image
              costs two forward passes). No reference: the model's forward dominates.
``protocol``  ``fr.eval.verify_embeddings`` (vectorised: sorted scores and ``searchsorted`` over the threshold
              grid) for the "insightface", "cosine" and "facexzoo" presets, against a naive re-implementation of
              insightface's ``calculate_roc`` loop (one ``calculate_accuracy`` per threshold and fold). The two
              insightface results are checked equal. Unit: pairs/s.

Output: ``results/bench/eval.csv`` (``eval_quick.csv`` with ``--quick``; ``--out`` to choose), one row per
(stage, implementation) with medians, the ratio to the reference, torch version, threads, commit and date.

    python benchmarks/bench_eval.py                 # all of lfw.bin, 3 repeats (a few minutes on 2 cores)
    python benchmarks/bench_eval.py --quick         # 600 pairs, 1 repeat, 32 px: a smoke test of the script
    python benchmarks/bench_eval.py --bin cfp_fp --backbone iresnet18 --size 112
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import pickle
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr.eval import contiguous_folds, extract_embeddings, verify_embeddings  # noqa: E402
from fr.envinfo import code_version  # noqa: E402
from fr.paths import results_root  # noqa: E402


# --- references -------------------------------------------------------------------------------------------

def pillow_decode(path: Path, n_images: int | None) -> torch.Tensor:
    """The plain way: unpickle, decode every JPEG with Pillow, stack, channel-first."""
    from PIL import Image

    with open(path, "rb") as f:
        bins, _ = pickle.load(f, encoding="bytes")
    bins = bins if n_images is None else bins[:n_images]
    arrays = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in bins]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def naive_insightface(emb: np.ndarray, issame: np.ndarray, n_folds: int = 10) -> np.ndarray:
    """insightface ``calculate_roc`` as written there: a Python loop over thresholds for every fold."""
    e1, e2 = emb[0::2], emb[1::2]
    dist = np.sum(np.square(e1 - e2), 1)
    thresholds = np.arange(0, 4, 0.01)

    def acc(t, d, same):
        pred = np.less(d, t)
        tp = np.sum(np.logical_and(pred, same))
        tn = np.sum(np.logical_and(np.logical_not(pred), np.logical_not(same)))
        return float(tp + tn) / d.size

    out = np.zeros(n_folds)
    for k, test in enumerate(contiguous_folds(issame.size, n_folds)):
        train = np.setdiff1d(np.arange(issame.size), test)
        accs = np.array([acc(t, dist[train], issame[train]) for t in thresholds])
        out[k] = acc(thresholds[int(np.argmax(accs))], dist[test], issame[test])
    return out


class SmallConvNet(nn.Module):
    """Fallback model when fr.backbones is not importable: 4 stride-2 conv blocks + linear, (emb, norm) out."""

    def __init__(self, size: int = 64, dim: int = 512):
        super().__init__()
        from types import SimpleNamespace
        self.input_spec = SimpleNamespace(size=(size, size), color="RGB", mean=(0.5,) * 3, std=(0.5,) * 3)
        layers, c = [], 3
        for w in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.PReLU(w)]
            c = w
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(256 * (size // 16) ** 2, dim)

    def forward(self, x):
        e = self.fc(self.body(x).flatten(1))
        return e, e.norm(dim=1)


def make_model(name: str, size: int | None) -> tuple[nn.Module, str]:
    try:
        from fr.backbones import create_backbone
    except ImportError:
        return SmallConvNet(size or 64), "SmallConvNet (fr.backbones not importable)"
    kw = {} if size is None else {"input_size": size}
    try:
        model = create_backbone(name, **kw)
    except TypeError:               # a backbone without an input_size parameter
        model = create_backbone(name)
    return model, name


# --- timing -----------------------------------------------------------------------------------------------

def alternate(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Run each callable ``repeats`` times, interleaved, returning wall times (s) per name."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="600 pairs, 1 repeat, 32 px model (smoke test)")
    ap.add_argument("--out", type=Path, default=None, help="CSV path (default results/bench/eval[_quick].csv)")
    ap.add_argument("--bin", default="lfw", help="verification set name under the data root (lfw, cfp_fp, cfp_ff)")
    ap.add_argument("--pairs", type=int, default=None, help="pairs to use (default all; 600 with --quick)")
    ap.add_argument("--backbone", default="iresnet_tiny", help="fr.backbones name (random init)")
    ap.add_argument("--size", type=int, default=None,
                    help="model input size (default the backbone's; 32 with --quick)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per stage (default 3; 1 with --quick)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    n_pairs = args.pairs or (600 if args.quick else None)
    size = args.size or (32 if args.quick else None)
    out = args.out or results_root() / "bench" / ("eval_quick.csv" if args.quick else "eval.csv")

    from fr.data import find_bin, load_bin

    try:
        path = find_bin(args.bin)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "commit": code_version(),
            "date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.machine(),
            "data": path.name}
    rows = []

    def row(stage, impl, n, secs, unit, ref=None, notes=""):
        med = statistics.median(secs)
        rows.append({"stage": stage, "impl": impl, "n_items": n, "unit": unit, "repeats": len(secs),
                     "seconds_median": round(med, 4), "items_per_s": round(n / med, 1),
                     "speedup_vs_reference": "" if ref is None else round(statistics.median(ref) / med, 3),
                     "notes": notes, **meta})
        print(f"{stage:9s} {impl:34s} {n:7d} {unit:6s} {med:8.3f} s  {n / med:10.1f} {unit}/s"
              + ("" if ref is None else f"  x{statistics.median(ref) / med:.2f} vs reference"))

    # decode: fr.data.load_bin against the plain Pillow loop (same images: the whole file, or a subset)
    holder = {}
    n_img_ref = None if n_pairs is None else 2 * n_pairs

    def ours():
        holder["vset"] = load_bin(path, n_pairs=n_pairs)

    def reference():
        holder["ref"] = pillow_decode(path, n_img_ref)

    t = alternate({"ours": ours, "ref": reference}, repeats)
    vset = holder["vset"]
    n_img = vset.images.shape[0]
    row("decode", "plain pickle + Pillow loop", holder["ref"].shape[0], t["ref"], "images",
        notes="reference (first images of the file when subsetting)")
    row("decode", "fr.data.load_bin", n_img, t["ours"], "images", ref=t["ref"],
        notes="includes sha256 of the file and the restricted unpickler")

    # extract: a small random backbone, flip none / sum
    model, model_name = make_model(args.backbone, size)
    spec = model.input_spec
    extract_embeddings(model, vset.images[:args.batch_size], flip="none", batch_size=args.batch_size)  # warm-up
    embs = {}
    for flip in ("none", "sum"):
        def run(flip=flip):
            embs[flip] = extract_embeddings(model, vset.images, flip=flip, batch_size=args.batch_size)[0]
        tt = alternate({"x": run}, repeats)["x"]
        row("extract", f"{model_name}@{spec.size[0]}px flip={flip}", n_img, tt, "images",
            notes=f"batch {args.batch_size}, eval mode, inference_mode, random init")

    # protocol: vectorised presets against the naive insightface loop
    emb = embs["sum"].numpy().astype(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    issame = np.asarray(vset.issame)
    res = {}
    fns = {"naive": lambda: res.__setitem__("naive", naive_insightface(emb, issame))}
    for p in ("insightface", "cosine", "facexzoo"):
        fns[p] = lambda p=p: res.__setitem__(p, verify_embeddings(emb, issame, p, flip="sum"))
    t = alternate(fns, repeats)
    if not np.array_equal(res["naive"], np.asarray(res["insightface"].fold_accuracies)):
        print("WARNING: vectorised insightface protocol differs from the naive loop", file=sys.stderr)
        return 1
    row("protocol", "naive insightface calculate_roc loop", len(issame), t["naive"], "pairs", notes="reference")
    for p in ("insightface", "cosine", "facexzoo"):
        row("protocol", f"fr.eval.verify_embeddings({p})", len(issame), t[p], "pairs",
            ref=t["naive"] if p == "insightface" else None,
            notes=f"{res[p].protocol}; acc {res[p].accuracy:.4f} (random backbone)")

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
