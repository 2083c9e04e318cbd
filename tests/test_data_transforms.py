"""uint8 batch transforms: input normalisation per InputSpec, flips, resizing, blur, AdaFace augmentation."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from fr.data.transforms import TrainAugment, gaussian_blur, hflip, resize, to_input


def batch(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def spec(**kw):
    base = dict(size=(32, 32), color="RGB", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    base.update(kw)
    return SimpleNamespace(**base)


def test_to_input_rgb_and_bgr():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = 255  # pure red
    rgb = to_input(x, spec())
    assert rgb.dtype == torch.float32
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    bgr = to_input(x, spec(color="BGR", mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 4.0)))
    # channel 0 is now blue (0), channel 2 red (1); mean/std are in BGR order
    assert torch.allclose(bgr[0, :, 0, 0], torch.tensor([(0 - 0.1) / 1.0, (0 - 0.2) / 2.0, (1 - 0.3) / 4.0]))
    single = to_input(x[0], spec())
    assert single.shape == (3, 32, 32) and torch.equal(single, rgb[0])


def test_to_input_resizes_to_spec_and_checks_dtype():
    x = batch(2, 64)
    y = to_input(x, spec(size=(32, 32)))
    assert y.shape == (2, 3, 32, 32)
    assert torch.allclose(y, to_input(resize(x, 32), spec()), atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        to_input(x.float(), spec())
    with pytest.raises(ValueError, match="color"):
        to_input(x, spec(color="YUV"))


def test_hflip_and_resize():
    x = batch()
    assert torch.equal(hflip(hflip(x)), x) and torch.equal(hflip(x)[..., 0], x[..., -1])
    assert resize(x, 32) is x
    flat = torch.full((2, 3, 40, 40), 77, dtype=torch.uint8)
    assert (resize(flat, 13) == 77).all() and resize(flat, (13, 20)).shape == (2, 3, 13, 20)
    assert resize(x.float(), 16).dtype == torch.float32


def test_gaussian_blur_matches_conv_reference():
    x = batch(2, 24).float()
    sigma, r = 1.3, 4
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    k2 = (k[:, None] * k[None, :]).view(1, 1, 2 * r + 1, 2 * r + 1).repeat(3, 1, 1, 1)
    ref = F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), k2, groups=3)
    assert torch.allclose(gaussian_blur(x, sigma), ref, atol=1e-3)
    flat = torch.full((1, 3, 10, 10), 50, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 2.0), flat)


def test_augment_is_reproducible():
    x = batch(32)
    a = TrainAugment(p_lowres=0.5, p_crop=0.5, p_photo=0.5, seed=7)
    out1 = [a(x) for _ in range(3)]
    b = TrainAugment(p_lowres=0.5, p_crop=0.5, p_photo=0.5, seed=7)
    out2 = [b(x) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(out1, out2, strict=True))
    assert not torch.equal(out1[0], out1[1])  # the stream advances
    assert not torch.equal(out1[0], TrainAugment(p_lowres=0.5, p_crop=0.5, p_photo=0.5, seed=8)(x))
    assert out1[0].dtype == torch.uint8 and out1[0].shape == x.shape
    g = torch.Generator().manual_seed(3)
    assert torch.equal(a(x, generator=g), a(x, generator=torch.Generator().manual_seed(3)))


def test_augment_defaults_follow_adaface():
    a = TrainAugment()
    assert (a.p_lowres, a.p_crop, a.p_photo, a.p_flip) == (0.2, 0.2, 0.2, 0.5)


def test_augment_off_and_flip_only():
    x = batch()
    assert torch.equal(TrainAugment(0, 0, 0, 0, seed=0)(x), x)
    assert torch.equal(TrainAugment(0, 0, 0, 1.0, seed=0)(x), hflip(x))


def test_crop_keeps_a_window_in_place_and_zeros_the_rest():
    x = torch.randint(1, 256, (16, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = TrainAugment(0, 1.0, 0, 0, seed=0)(x)
    for img, src in zip(y, x, strict=True):
        kept = (img != 0).any(0)
        rows, cols = kept.any(1).nonzero().flatten(), kept.any(0).nonzero().flatten()
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert kept[r0:r1, c0:c1].all() and kept.sum() == (r1 - r0) * (c1 - c0)  # a full rectangle
        assert torch.equal(img[:, r0:r1, c0:c1], src[:, r0:r1, c0:c1])  # pixels unchanged, not resized
        area = float((r1 - r0) * (c1 - c0)) / 1600
        assert 0.15 <= area <= 1.0


def test_crop_params_distribution():
    a = TrainAugment(seed=0)
    g = torch.Generator().manual_seed(0)
    areas = []
    for _ in range(300):
        top, left, h, w = a.crop_params(112, 112, g)
        assert 0 <= top and top + h <= 112 and 0 <= left and left + w <= 112
        assert 0.74 <= w / h <= 1.35 or (h, w) == (112, 112)
        areas.append(h * w / 112 ** 2)
    assert 0.5 < sum(areas) / len(areas) < 0.7  # U(0.2, 1) area scale: mean about 0.6


def test_lowres_blurs_and_photometric_changes_colour():
    x = batch(16, 48)
    low = TrainAugment(1.0, 0, 0, 0, seed=0)(x)

    def roughness(t):
        return (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean()

    assert roughness(low) < 0.8 * roughness(x)
    grey = torch.full((64, 3, 8, 8), 100, dtype=torch.uint8)
    grey[:, :, :4] = 160
    photo = TrainAugment(0, 0, 1.0, 0, seed=0)(grey).float()
    means = photo.mean(dim=(1, 2, 3))
    assert means.min() < 110 and means.max() > 150  # brightness/contrast factors spread over [0.5, 1.5]
    assert torch.equal(photo[:, 0], photo[:, 1])  # grey stays grey: saturation of grey is a no-op


def test_augment_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        TrainAugment(seed=0)(batch().float())
    with pytest.raises(ValueError, match="p_crop"):
        TrainAugment(p_crop=1.5)


def test_grayscale_augmentation_makes_luma_images_and_leaves_other_draws_unchanged():
    from fr.data.transforms import TrainAugment

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), generator=g, dtype=torch.uint8)
    base = TrainAugment(p_lowres=0.3, p_crop=0.3, p_photo=0.3, seed=5)(x)
    gray = TrainAugment(p_lowres=0.3, p_crop=0.3, p_photo=0.3, p_gray=0.5, seed=5)(x)
    is_gray = (gray[:, 0] == gray[:, 1]).all(-1).all(-1) & (gray[:, 1] == gray[:, 2]).all(-1).all(-1)
    assert 16 < int(is_gray.sum()) < 48  # about half
    assert torch.equal(gray[~is_gray], base[~is_gray])  # the other augmentations drew the same values
    # a grey image is the luma of the augmented colour image (within the final rounding)
    luma = (base[is_gray].float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert (gray[is_gray][:, 0].float() - luma).abs().max() <= 1.0
    with pytest.raises(ValueError, match="p_gray"):
        TrainAugment(p_gray=1.5)
