"""The batched augmentation (``TrainAugment``: draws from a torch generator, applied to whole batches) against
the per-sample reference of ``benchmarks/bench_loader.py`` (``PlainAugment``: Python's ``random``, one Pillow
image at a time): under fixed seeds, the same distribution of decisions and parameters.

The two draw from different random streams, so the comparison is statistical: decision rates by a two-sided
two-proportion z-test, continuous parameters (crop area and aspect ratio, low-resolution factor) by the
two-sample Kolmogorov-Smirnov test, the resampling modes by a chi-square test of homogeneity. With 4,000
images per side, every test must give p > 1e-3 (seeds fixed: the outcome is deterministic); a wrong
distribution (e.g. a crop scale of U(0.4, 1) instead of U(0.2, 1)) is rejected by the same tests.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from fr.data.transforms import TrainAugment

N, H, W = 4000, 56, 56
P = dict(p_flip=0.5, p_gray=0.5, p_crop=0.3, p_lowres=0.3, p_photo=0.2)
ALPHA = 1e-3


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_loader.py"
    spec = importlib.util.spec_from_file_location("bench_loader", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _batched(seed: int = 0, **over) -> dict[str, np.ndarray]:
    aug = TrainAugment(**{**P, **over}, seed=seed)
    d = aug.draw(N, H, W, aug.generator)
    box = d.boxes.numpy()
    return {"flip": d.do_flip.numpy(), "gray": d.do_gray.numpy(), "crop": d.do_crop.numpy(),
            "lowres": d.do_low.numpy(), "photo": d.do_photo.numpy(),
            "crop_area": box[:, 2] * box[:, 3] / (H * W), "crop_aspect": box[:, 3] / box[:, 2],
            "lowres_ratio": np.array([r for r, _, _ in d.lowres]),
            "lowres_modes": np.array([4 * down + up for _, down, up in d.lowres]),
            "photo_factors": d.factors.numpy().ravel()}


def _reference(seed: int = 0) -> dict[str, np.ndarray]:
    aug = _bench().PlainAugment(**P, seed=seed)
    ps = [aug.params(H, W) for _ in range(N)]
    boxes = np.array([p["crop"] for p in ps if p["crop"] is not None])
    low = [p["lowres"] for p in ps if p["lowres"] is not None]
    return {"flip": np.array([p["flip"] for p in ps]), "gray": np.array([p["gray"] for p in ps]),
            "crop": np.array([p["crop"] is not None for p in ps]), "lowres": np.array([p["lowres"] is not None for p in ps]),
            "photo": np.array([p["photo"] is not None for p in ps]),
            "crop_area": boxes[:, 2] * boxes[:, 3] / (H * W), "crop_aspect": boxes[:, 3] / boxes[:, 2],
            "lowres_ratio": np.array([r for r, _, _ in low]), "lowres_modes": np.array([4 * d + u for _, d, u in low]),
            "photo_factors": np.array([f for p in ps if p["photo"] is not None for f in p["photo"][0]])}


def _p_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided two-proportion z-test."""
    p = (a.sum() + b.sum()) / (len(a) + len(b))
    z = (a.mean() - b.mean()) / np.sqrt(p * (1 - p) * (1 / len(a) + 1 / len(b)))
    return float(2 * stats.norm.sf(abs(z)))


def _p_modes(a: np.ndarray, b: np.ndarray) -> float:
    table = np.array([np.bincount(a, minlength=16), np.bincount(b, minlength=16)])
    return float(stats.chi2_contingency(table[:, table.sum(0) > 0]).pvalue)


def _pvalues(x: dict, y: dict) -> dict[str, float]:
    out = {k: _p_rate(x[k], y[k]) for k in ("flip", "gray", "crop", "lowres", "photo")}
    out.update({k: float(stats.ks_2samp(x[k], y[k]).pvalue)
                for k in ("crop_area", "crop_aspect", "lowres_ratio", "photo_factors")})
    out["lowres_modes"] = _p_modes(x["lowres_modes"], y["lowres_modes"])
    return out


def test_batched_and_per_sample_augmentation_draw_alike():
    batched, reference = _batched(), _reference()
    for k in ("flip", "gray", "crop", "lowres", "photo"):
        assert abs(batched[k].mean() - P[f"p_{k}"]) < 0.03, (k, batched[k].mean())
    pv = _pvalues(batched, reference)
    bad = {k: v for k, v in pv.items() if v <= ALPHA}
    assert not bad, f"batched and per-sample draws differ: {bad} (all p-values: {pv})"


def test_the_comparison_rejects_a_wrong_distribution():
    reference = _reference()
    narrow = TrainAugment.CROP_SCALE
    try:
        TrainAugment.CROP_SCALE = (0.4, 1.0)
        wrong = _batched()
    finally:
        TrainAugment.CROP_SCALE = narrow
    assert _pvalues(wrong, reference)["crop_area"] < ALPHA
    assert _pvalues(_batched(p_gray=0.4), reference)["gray"] < ALPHA


def test_per_sample_reference_applies_its_draws():
    """PlainAugment's images follow its draws: a crop keeps the window and zeros the rest, grayscale makes
    the three channels equal, a flip mirrors."""
    from PIL import Image

    bench = _bench()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(1, 256, (H, W, 3), dtype=np.uint8), "RGB")
    only_crop = bench.PlainAugment(p_flip=0.0, p_crop=1.0, seed=3)
    box = bench.PlainAugment(p_flip=0.0, p_crop=1.0, seed=3).params(H, W)["crop"]
    out = np.asarray(only_crop(img))
    top, left, h, w = box
    window = np.zeros((H, W), dtype=bool)
    window[top:top + h, left:left + w] = True
    assert (out[window] == np.asarray(img)[window]).all() and (out[~window] == 0).all()
    gray = np.asarray(bench.PlainAugment(p_flip=0.0, p_gray=1.0)(img))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    flipped = np.asarray(bench.PlainAugment(p_flip=1.0)(img))
    assert (flipped == np.asarray(img)[:, ::-1]).all()


@pytest.mark.parametrize("kw", [dict(P), dict(p_flip=0.5, p_gray=0.5, p_crop=0.0, p_lowres=0.0, p_photo=0.0)])
def test_augment_on_a_batch_equals_the_same_draws_image_by_image(kw):
    """TrainAugment.apply on the whole batch gives, image for image, what it gives on each image alone with
    that image's draws: batching changes no pixel."""
    aug = TrainAugment(**kw, seed=5)
    x = torch.randint(0, 256, (24, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    d = aug.draw(len(x), 20, 20, aug.generator)
    whole = aug.apply(x, d)
    ci = li = pi = 0
    for i in range(len(x)):
        crop, low, photo = bool(d.do_crop[i]), bool(d.do_low[i]), bool(d.do_photo[i])
        one = type(d)(d.do_crop[i:i + 1], d.do_low[i:i + 1], d.do_photo[i:i + 1], d.do_flip[i:i + 1],
                      d.do_gray[i:i + 1], d.boxes[ci:ci + crop], d.lowres[li:li + low], d.factors[pi:pi + photo],
                      d.order[pi:pi + photo])
        ci, li, pi = ci + crop, li + low, pi + photo
        assert torch.equal(aug.apply(x[i:i + 1], one), whole[i:i + 1]), i


@pytest.mark.parametrize("kw, digest", [
    (dict(p_lowres=0.5, p_crop=0.5, p_photo=0.5, p_flip=0.5, p_gray=0.3), "44808a97217cc01a"),
    (dict(p_flip=0.5, p_gray=0.5, p_lowres=0.0, p_crop=0.0, p_photo=0.0), "14967c65137e7df2"),
])
def test_a_seed_gives_the_images_it_always_gave(kw, digest):
    """Digests of three seeded calls, recorded with the augmentation as it was before its draws were
    separated from their application (commit f7ef7dd): recorded runs keep their training images."""
    import hashlib

    x = torch.randint(0, 256, (64, 3, 24, 24), generator=torch.Generator().manual_seed(123), dtype=torch.uint8)
    aug = TrainAugment(seed=7, **kw)
    outs = [aug(x) for _ in range(3)]
    assert hashlib.sha256(b"".join(o.numpy().tobytes() for o in outs)).hexdigest()[:16] == digest


@pytest.mark.data
@pytest.mark.slow
def test_bench_loader_quick_runs(tmp_path):
    import csv

    from fr.data.locate import find_train_set

    try:
        find_train_set("celeba_train")
    except FileNotFoundError:
        pytest.skip("CelebA training set not under the data root (set FR_DATA=/work/shared/datasets)")
    out = tmp_path / "loader.csv"
    assert _bench().main(["--quick", "--batch", "32", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["variant"] for r in rows] == ["reference", "rec", "cache"]
    assert float(rows[0]["ratio"]) == 1.0 and all(float(r["img_per_s_per_worker"]) > 0 for r in rows)
