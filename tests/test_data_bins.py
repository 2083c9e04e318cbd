"""Verification .bin files: safe loading (malicious pickles are refused without running anything), format
errors, fold-balanced subsets, low-quality variants, and the real LFW file."""
from __future__ import annotations

import hashlib
import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from fr.data import (BinFormatError, ImageDecodeError, UnsafeBinError, VerificationSet, degrade, find_bin,
                     load_bin, read_bin_raw, save_bin, subset_bin)


def png(seed: int, size: int = 12) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def toy_bin(path, n_pairs=20, size=12):
    """Pairs in LFW's fold layout: every fold lists its same pairs first, then its different pairs."""
    fold = n_pairs // 10
    issame = [j < fold // 2 for _ in range(10) for j in range(fold)]
    save_bin(path, [png(i, size) for i in range(2 * n_pairs)], issame)
    return issame


def test_round_trip_exact_with_png(tmp_path):
    issame = toy_bin(tmp_path / "toy.bin")
    v = load_bin(tmp_path / "toy.bin")
    assert isinstance(v, VerificationSet) and v.name == "toy" and len(v) == 20
    assert v.images.shape == (40, 3, 12, 12) and v.images.dtype == torch.uint8
    assert v.issame.tolist() == issame
    want = np.array(Image.open(io.BytesIO(png(7))).convert("RGB")).transpose(2, 0, 1).copy()
    assert torch.equal(v.images[7], torch.from_numpy(want))
    assert v.sha256 == hashlib.sha256((tmp_path / "toy.bin").read_bytes()).hexdigest()
    assert v.path == str(tmp_path / "toy.bin")
    assert load_bin(tmp_path / "toy.bin", size=8).images.shape == (40, 3, 8, 8)


def test_save_bin_encodes_tensors_as_jpeg(tmp_path):
    imgs = torch.full((4, 3, 16, 16), 90, dtype=torch.uint8)
    save_bin(tmp_path / "t.bin", imgs, [True, False])
    bins, issame = pickle.loads((tmp_path / "t.bin").read_bytes())
    assert all(b[:2] == b"\xff\xd8" for b in bins) and issame == [True, False]
    v = load_bin(tmp_path / "t.bin", folds=1)
    assert (v.images.int() - 90).abs().max() <= 2


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_reduce_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(([png(0), _RunsShell(marker)], [True])))
    with pytest.raises(UnsafeBinError, match=r"evil\.bin: refusing to unpickle global (posix|os|nt)\.system"):
        load_bin(evil)
    assert not marker.exists()
    # sanity: the same payload does run under a plain pickle.load, so the test above can fail
    pickle.loads(evil.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("obj", [
    (["x"], [torch.nn.Module]),                # a class reference
    ([b"a", b"b"], [np.bool_(True)]),           # numpy scalars need a global too
    (print, [True]),                            # a builtin
])
def test_any_global_is_refused(tmp_path, obj):
    path = tmp_path / "global.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(UnsafeBinError, match="global.bin: refusing to unpickle global"):
        load_bin(path)


def test_python3_protocol2_bytes_are_refused(tmp_path):
    # protocol-2 pickles of bytes written by Python 3 go through the global _codecs.encode
    path = tmp_path / "p2.bin"
    path.write_bytes(pickle.dumps(([png(0), png(1)], [True]), protocol=2))
    with pytest.raises(UnsafeBinError, match="_codecs.encode"):
        load_bin(path)


@pytest.mark.parametrize("obj, match", [
    (([b"a", b"b", b"c"], [True]), "3 images, an odd count"),
    (([b"a", b"b", b"c", b"d"], [True]), "4 images make 2 pairs but issame_list has 1"),
    (([b"a", 5], [True]), "image 1 is a int"),
    (([b"a", b"b"], ["yes"]), r"issame_list\[0\] is 'yes'"),
    ({"bins": []}, "expected a pickled pair"),
])
def test_format_errors(tmp_path, obj, match):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(BinFormatError, match=match):
        load_bin(path)


def test_garbage_and_undecodable(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(BinFormatError, match="junk.bin: not a readable pickle"):
        load_bin(tmp_path / "junk.bin")
    save_bin(tmp_path / "u.bin", [png(0), png(1), png(2), b"\xff\xd8garbage"], [True, False])
    with pytest.raises(ImageDecodeError, match=r"u\.bin, image 3 \(pair 1\): cannot decode"):
        load_bin(tmp_path / "u.bin", folds=1)
    save_bin(tmp_path / "mixed.bin", [png(0, 12), png(1, 10)], [True])
    with pytest.raises(BinFormatError, match="image 1: size"):
        load_bin(tmp_path / "mixed.bin", folds=1)
    assert load_bin(tmp_path / "mixed.bin", size=10, folds=1).images.shape == (2, 3, 10, 10)


def test_subset_keeps_balanced_contiguous_folds(tmp_path):
    toy_bin(tmp_path / "toy.bin", n_pairs=80)  # folds of 8: 4 same then 4 different
    v = load_bin(tmp_path / "toy.bin")
    s = v.subset(40)
    assert s.name == "toy[40]" and len(s) == 40 and s.sha256 == v.sha256
    # per fold: the first 2 same and first 2 different pairs, in file order
    expected = [f * 8 + j for f in range(10) for j in (0, 1, 4, 5)]
    for i, k in enumerate(expected):
        assert torch.equal(s.images[2 * i], v.images[2 * k]) and torch.equal(s.images[2 * i + 1], v.images[2 * k + 1])
    assert s.issame.view(10, 4).sum(1).tolist() == [2] * 10
    fast = load_bin(tmp_path / "toy.bin", n_pairs=40)
    assert torch.equal(fast.images, s.images) and torch.equal(fast.issame, s.issame) and fast.name == s.name
    assert v.subset(80) is v
    with pytest.raises(ValueError, match="multiple of 10"):
        v.subset(45)
    with pytest.raises(ValueError, match="at most 80"):
        v.subset(90)


def test_subset_bin_writes_the_same_pairs_with_the_original_bytes(tmp_path):
    toy_bin(tmp_path / "toy.bin", n_pairs=80)
    subset_bin(tmp_path / "toy.bin", tmp_path / "small.bin", 40)
    whole, small = load_bin(tmp_path / "toy.bin").subset(40), load_bin(tmp_path / "small.bin")
    assert torch.equal(small.images, whole.images) and torch.equal(small.issame, whole.issame)
    src, dst = read_bin_raw(tmp_path / "toy.bin")[0], read_bin_raw(tmp_path / "small.bin")[0]
    assert set(dst) <= set(src) and len(dst) == 80  # encoded bytes copied, not re-encoded
    subset_bin(tmp_path / "toy.bin", tmp_path / "again.bin", 40)
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "small.bin").read_bytes()  # same sha256
    with pytest.raises(ValueError, match="multiple of 10"):
        subset_bin(tmp_path / "toy.bin", tmp_path / "bad.bin", 45)
    assert not (tmp_path / "bad.bin").exists()


def test_degrade_is_deterministic_and_labelled(tmp_path):
    toy_bin(tmp_path / "toy.bin", size=32)
    v = load_bin(tmp_path / "toy.bin")
    a = degrade(v, face_size=8)
    assert a.name == "toy@lq(face=8)" and a.images.shape == v.images.shape and a.sha256 == v.sha256
    assert not torch.equal(a.images, v.images) and torch.equal(a.issame, v.issame)
    # face_size=8 removes detail finer than 4 px: neighbouring pixels become much more alike
    def roughness(x):
        return (x.float()[..., 1:] - x.float()[..., :-1]).abs().mean()
    assert roughness(a.images) < 0.3 * roughness(v.images)
    full = dict(face_size=16, blur_sigma=1.0, noise_std=3.0, jpeg_quality=40)
    b1, b2 = degrade(v, **full, seed=1), degrade(v, **full, seed=1)
    assert torch.equal(b1.images, b2.images)
    assert b1.name == "toy@lq(face=16,blur=1,noise=3,seed=1,jpeg=40)"
    assert not torch.equal(degrade(v, **full, seed=2).images, b1.images)
    assert torch.equal(degrade(v, jpeg_quality=40).images, degrade(v, jpeg_quality=40).images)
    blurred = degrade(v, blur_sigma=2.0).images.float()
    assert blurred.std() < v.images.float().std()
    with pytest.raises(ValueError, match="at least one"):
        degrade(v)
    with pytest.raises(ValueError, match="face_size"):
        degrade(v, face_size=64)


def _need(name):
    try:
        return find_bin(name)
    except FileNotFoundError:
        pytest.skip(f"{name}.bin not under the data root (set FR_DATA=/work/shared/datasets)")


LFW_SHA256 = "4312f3ac78a5fc1e5c647a7bec2f78e7f579daaa107297a4e9a07db2182992e6"


@pytest.mark.data
def test_lfw_subset():
    v = load_bin(_need("lfw"), n_pairs=200)
    assert v.name == "lfw[200]" and len(v) == 200 and v.images.shape == (400, 3, 112, 112)
    assert int(v.issame.sum()) == 100 and v.issame.view(10, 20).sum(1).tolist() == [10] * 10
    assert v.sha256 == LFW_SHA256
    # LFW here comes from a grayscale copy stored as 3 channels
    assert torch.equal(v.images[:, 0], v.images[:, 1]) or (v.images[:, 0].int() - v.images[:, 1].int()).abs().max() <= 3


@pytest.mark.data
@pytest.mark.slow
def test_lfw_full():
    v = load_bin(_need("lfw"))
    assert len(v) == 6000 and v.images.shape == (12000, 3, 112, 112) and int(v.issame.sum()) == 3000
    assert v.issame.view(10, 600).sum(1).tolist() == [300] * 10
    assert torch.equal(v.subset(200).images, load_bin(_need("lfw"), n_pairs=200).images)
