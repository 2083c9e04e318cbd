"""Training input pipeline throughput: images/s per worker, ours against a plain per-sample Pillow loop.

The pipeline measured is what ``fr.engine.Trainer`` runs per step, in the process that trains (one worker):
index a batch (``fr.engine.sampler.batch_loader``), copy the uint8 batch to the device (pinned memory and a
non-blocking copy when it is a GPU), augment it there as one batch (``fr.data.transforms.TrainAugment``:
random draws on the CPU from a seeded generator, arithmetic batched over the images), and convert it to the
backbone's normalised float input (``fr.data.transforms.to_input``). Variants:

* ``reference``: what a torchvision-style ``Dataset`` does (insightface's ``MXFaceDataset``, AdaFace's
  ``Augmenter``): per sample, read the record, decode the JPEG with Pillow, resize with Pillow, draw and
  apply the augmentation with Pillow (:class:`PlainAugment`, Python's ``random``), convert to a normalised
  float tensor; then ``default_collate``;
* ``rec``: ours, reading the ``.rec`` (``fr.data.RecordDataset``: per-sample JPEG decode, unavoidable);
* ``cache``: ours, reading the uint8 decode cache (``fr.data.load_train_set``), what training uses.

Augmentation: the CPU recipe's (``configs/cpu/celeba_v2.yaml``: flip and grayscale at 0.5), or with
``--augment adaface`` AdaFace's mix as well (crop, low resolution, photometric at 0.2). The variants are
timed in interleaved rounds (the order reversed every round) so a background load hits them alike; the load
average is recorded. Output: ``results/bench/loader.csv`` (``loader_adaface.csv`` with ``--augment adaface``;
``_quick`` added with ``--quick``).

    python benchmarks/bench_loader.py                  # 3 rounds of 8 batches of 128 per variant
    python benchmarks/bench_loader.py --quick          # 2 rounds of 2 batches: a smoke test
    python benchmarks/bench_loader.py --augment adaface
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fr.backbones import create_backbone  # noqa: E402
from fr.config import load_config  # noqa: E402
from fr.data import RecordDataset, load_train_set  # noqa: E402
from fr.data.transforms import TrainAugment, to_input  # noqa: E402
from fr.engine.sampler import EpochBatchSampler, batch_loader  # noqa: E402
from fr.envinfo import code_version, cpu_info  # noqa: E402
from fr.paths import results_root  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cpu" / "celeba_v2.yaml"
ADAFACE_MIX = {"p_crop": 0.2, "p_lowres": 0.2, "p_photo": 0.2}


class PlainAugment:
    """``TrainAugment``'s augmentation written per sample on Pillow images, with Python's ``random``, as a
    torchvision-style dataset applies it: the same decisions with the same probabilities and the same
    parameter distributions (torchvision's ``RandomResizedCrop.get_params`` window, kept in place with zeros
    around it; low resolution to ``int(r * H)``, r ~ U(0.2, 1), with random down and up resampling; brightness,
    contrast and saturation factors U(0.5, 1.5) in a random order; ITU-R 601 grayscale; horizontal flip).
    Pillow's resampling filters stand in for torch's modes (nearest, bilinear, box for area, bicubic)."""

    RESAMPLE = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BOX, Image.Resampling.BICUBIC)

    def __init__(self, *, p_flip: float, p_gray: float = 0.0, p_crop: float = 0.0, p_lowres: float = 0.0,
                 p_photo: float = 0.0, seed: int = 0):
        self.p_flip, self.p_gray, self.p_crop, self.p_lowres, self.p_photo = p_flip, p_gray, p_crop, p_lowres, p_photo
        self.rng = random.Random(seed)

    def crop_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        area, (lo, hi) = height * width, TrainAugment.CROP_SCALE
        log_ratio = (np.log(TrainAugment.CROP_RATIO[0]), np.log(TrainAugment.CROP_RATIO[1]))
        for _ in range(10):
            target = area * self.rng.uniform(lo, hi)
            aspect = float(np.exp(self.rng.uniform(*log_ratio)))
            w, h = int(round((target * aspect) ** 0.5)), int(round((target / aspect) ** 0.5))
            if 0 < w <= width and 0 < h <= height:
                return self.rng.randint(0, height - h), self.rng.randint(0, width - w), h, w
        return 0, 0, height, width  # square images: the centre fallback is the whole image

    def params(self, height: int, width: int) -> dict:
        """One image's draws: the decisions, and the parameters of the operations decided on."""
        p: dict = {"crop": None, "lowres": None, "photo": None}
        do_crop, do_low, do_photo = (self.rng.random() < self.p_crop, self.rng.random() < self.p_lowres,
                                     self.rng.random() < self.p_photo)
        if do_crop:
            p["crop"] = self.crop_params(height, width)
        if do_low:
            p["lowres"] = (self.rng.uniform(*TrainAugment.LOWRES_RANGE), self.rng.randrange(4), self.rng.randrange(4))
        if do_photo:
            order = [0, 1, 2]
            self.rng.shuffle(order)
            p["photo"] = ([self.rng.uniform(1 - TrainAugment.JITTER, 1 + TrainAugment.JITTER) for _ in range(3)],
                          order)
        p["gray"] = self.p_gray > 0 and self.rng.random() < self.p_gray
        p["flip"] = self.rng.random() < self.p_flip
        return p

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        p = self.params(h, w)
        if p["crop"] is not None:
            top, left, ch, cw = p["crop"]
            canvas = Image.new("RGB", (w, h))
            canvas.paste(img.crop((left, top, left + cw, top + ch)), (left, top))
            img = canvas
        if p["lowres"] is not None:
            ratio, down, up = p["lowres"]
            small = (max(1, int(ratio * w)), max(1, int(ratio * h)))
            img = img.resize(small, self.RESAMPLE[down]).resize((w, h), self.RESAMPLE[up])
        if p["photo"] is not None:
            factors, order = p["photo"]
            for op in order:
                img = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[op](img).enhance(factors[op])
        if p["gray"]:
            img = img.convert("L").convert("RGB")
        if p["flip"]:
            img = ImageOps.mirror(img)
        return img


class PlainRecordDataset:
    """The reference: ``ds[i]`` reads record ``i``, decodes it with Pillow, resizes, augments and normalises
    it, one sample at a time."""

    def __init__(self, rec: RecordDataset, size: int, augment: PlainAugment, spec):
        self.rec, self.size, self.augment = rec, size, augment
        self.mean = torch.tensor(spec.mean).view(3, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        header, payload = self.rec.rec.unpack(self.rec.keys[i])
        img = Image.open(io.BytesIO(payload)).convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        img = self.augment(img)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div_(255)
        return (x - self.mean) / self.std, int(header.labels[0])


def pipelines(args, device: torch.device):
    """name -> a function that runs ``n`` batches and returns the last float input batch."""
    cfg = load_config(RECIPE)
    size = int(cfg.backbone.params["input_size"])
    spec = create_backbone(cfg.backbone.name, **cfg.backbone.params).input_spec
    aug = {"p_flip": cfg.data.augment.p_flip, "p_gray": cfg.data.augment.p_gray}
    if args.augment == "adaface":
        aug.update(ADAFACE_MIX)
    rec = RecordDataset(cfg.data.train, size=size)
    cached = load_train_set(cfg.data.train, size=size)
    sampler = EpochBatchSampler(len(rec), args.batch, seed=args.seed)
    batches = [sampler.local_indices(0, b).tolist() for b in range(sampler.batches_per_epoch)]
    plain = PlainRecordDataset(rec, size, PlainAugment(**aug, seed=args.seed), spec)
    ours_aug = TrainAugment(p_lowres=aug.get("p_lowres", 0.0), p_crop=aug.get("p_crop", 0.0),
                            p_photo=aug.get("p_photo", 0.0), p_flip=aug["p_flip"], p_gray=aug["p_gray"], seed=args.seed)
    cursor = {"i": 0}

    def next_batches(n):
        out = [batches[(cursor["i"] + k) % len(batches)] for k in range(n)]
        cursor["i"] += n
        return out

    def reference(n):
        for idx in next_batches(n):
            x, y = default_collate([plain[i] for i in idx])
            x, y = x.to(device), y.to(device)
        return x

    def ours(dataset):
        def run(n):
            loader = batch_loader(dataset, next_batches(n), num_workers=0, seed=args.seed,
                                  pin_memory=device.type == "cuda")
            for images, labels in loader:
                images = images.to(device, non_blocking=True)
                x = to_input(ours_aug(images), spec)
                y = labels.to(device, non_blocking=True)
            return x, y
        return lambda n: run(n)[0]

    info = {"size": size, "augment": ",".join(f"{k}={v}" for k, v in aug.items()), "source": cached.source}
    return {"reference": reference, "rec": ours(rec), "cache": ours(cached)}, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128, help="images per batch (the CPU recipe's 128)")
    p.add_argument("--batches", type=int, help="batches per variant per round (default 8; 2 quick)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 2 quick)")
    p.add_argument("--augment", choices=("recipe", "adaface"), default="recipe",
                   help="the CPU recipe's augmentation, or that plus AdaFace's crop/low-resolution/photometric")
    p.add_argument("--device", help="where to augment (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one worker's share)")
    p.add_argument("--quick", action="store_true", help="few batches: checks that the script runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="CSV path (default results/bench/loader[_adaface][_quick].csv)")
    args = p.parse_args(argv)
    args.batches = args.batches or (2 if args.quick else 8)
    args.rounds = args.rounds or (2 if args.quick else 3)
    stem = "loader" if args.augment == "recipe" else f"loader_{args.augment}"
    out = args.out or results_root() / "bench" / (f"{stem}_quick.csv" if args.quick else f"{stem}.csv")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    runs, info = pipelines(args, device)
    cpu = cpu_info()
    print(f"loader benchmark on {cpu['cpu']} ({cpu['cores']} cores), device {device}, torch threads "
          f"{torch.get_num_threads()}, batch {args.batch}, {info['size']} px, "
          f"augment {info['augment']}, load average {os.getloadavg()[0]:.2f}", flush=True)
    for fn in runs.values():  # warm-up: first touches of the files, the cache's pages, allocations
        fn(1)
    load0, date = os.getloadavg(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
    elapsed = dict.fromkeys(runs, 0.0)
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            t0 = time.perf_counter()
            x = runs[name](args.batches)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed[name] += time.perf_counter() - t0
            assert x.shape == (args.batch, 3, info["size"], info["size"]) and x.dtype == torch.float32
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {(r + 1) * args.batches * args.batch / elapsed[n]:.0f} img/s" for n in runs), flush=True)
    load1 = os.getloadavg()
    n_img = args.rounds * args.batches * args.batch
    ref = n_img / elapsed["reference"]
    rows = [{
        "variant": name, "img_per_s_per_worker": round(n_img / elapsed[name], 1),
        "ratio": round(n_img / elapsed[name] / ref, 2), "images": n_img, "batch": args.batch, "size": info["size"],
        "augment": info["augment"], "device": str(device), "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds, "cpu": cpu["cpu"], "cores": cpu["cores"], "mhz": cpu["mhz"],
        "loadavg_start": round(load0[0], 2), "loadavg_end": round(load1[0], 2), "torch": torch.__version__,
        "commit": code_version(), "date": date,
    } for name in runs]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['variant']:>10} {r['img_per_s_per_worker']:>10} img/s per worker  x{r['ratio']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
