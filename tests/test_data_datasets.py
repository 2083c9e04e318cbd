"""Training sets: RecordIO sets crafted with the writer (valid and broken in each way), the tensor cache,
image folders, synthetic identities, label noise, and the real CelebA set."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fr.data import (FaceTensorDataset, ImageDecodeError, ImageFolderDataset, RecordDataset, RecordIOError,
                     add_label_noise, find_train_set, load_train_set, synthetic_faces)
from fr.data.recordio import IRHeader, pack, read_idx, write_records


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")  # lossless, so decoded pixels can be compared exactly
    return buf.getvalue()


def make_set(folder, counts=(3, 2, 4), size=16, *, num_classes=None, seed=0, edit=None):
    """An insightface-layout set with ``counts[c]`` images of class ``c``; returns the images (N, H, W, 3).

    ``edit(records)`` may alter the ``[(key, record bytes)]`` list before it is written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, records, key = [], [], 1
    ranges = []
    for c, n in enumerate(counts):
        ranges.append((key, key + n))
        for _ in range(n):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            images.append(img)
            records.append((key, pack(IRHeader(0, float(c), key), png(img))))
            key += 1
    a = key
    records.insert(0, (0, pack(IRHeader(2, (float(a), float(a + len(counts)))))))
    records += [(a + c, pack(IRHeader(2, (float(s), float(e))))) for c, (s, e) in enumerate(ranges)]
    if edit is not None:
        records = edit(records)
    write_records(folder / "train.rec", folder / "train.idx", records)
    (folder / "property").write_text(f"{num_classes or len(counts)},{size},{size}")
    return np.stack(images)


def test_load_matches_source_pixels_and_labels(tmp_path):
    imgs = make_set(tmp_path / "set")
    ds = load_train_set(tmp_path / "set", cache_root=tmp_path / "cache", progress=False)
    assert isinstance(ds, FaceTensorDataset)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (9, 3, 16, 16)
    assert torch.equal(ds.images, torch.from_numpy(imgs).permute(0, 3, 1, 2))
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2] and ds.num_classes == 3
    assert ds.class_counts().tolist() == [3, 2, 4]
    img, label = ds[4]
    assert img.shape == (3, 16, 16) and int(label) == 1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 16, 16) and batch[1].dtype == torch.long
    lazy = RecordDataset(tmp_path / "set")
    assert len(lazy) == 9 and torch.equal(lazy[4][0], ds.images[4]) and lazy[4][1] == 1
    lazy.validate()


def test_cache_is_written_atomically_and_reused(tmp_path, monkeypatch):
    make_set(tmp_path / "set")
    cache = tmp_path / "cache"
    first = load_train_set(tmp_path / "set", cache_root=cache, progress=False)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.endswith("-16x16-v1.pt") and first.sha256[:24] in files[0].name
    monkeypatch.setattr(RecordDataset, "decode_all", lambda *a, **k: pytest.fail("cache not used"))
    again = load_train_set(tmp_path / "set", cache_root=cache, progress=False)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert again.sha256 == first.sha256
    monkeypatch.undo()
    small = load_train_set(tmp_path / "set", size=8, cache_root=cache, progress=False)
    assert small.images.shape == (9, 3, 8, 8) and len(list(cache.iterdir())) == 2
    assert not [f for f in cache.iterdir() if f.suffix == ".tmp"]
    # different content -> different key
    make_set(tmp_path / "set", seed=1)
    changed = load_train_set(tmp_path / "set", cache_root=cache, progress=False)
    assert changed.sha256 != first.sha256 and not torch.equal(changed.images, first.images)


def test_no_cache_writes_nothing(tmp_path):
    make_set(tmp_path / "set")
    load_train_set(tmp_path / "set", cache=False, cache_root=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_path_none_uses_data_root_flat_layout(tmp_path, monkeypatch):
    make_set(tmp_path)  # flat insightface layout: train.rec directly in the data root
    monkeypatch.setenv("FR_DATA", str(tmp_path))
    monkeypatch.setenv("FR_CACHE", str(tmp_path / "c"))
    assert len(load_train_set(progress=False)) == 9
    monkeypatch.setenv("FR_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="FR_DATA"):
        load_train_set(progress=False)


@pytest.mark.parametrize("case, match", [
    ("undecodable", r"key 2: cannot decode image"),
    ("property_more_classes", r"property says 4 classes but 1 have no image"),
    ("label_out_of_range", r"key 3: label 7\.0 is not a class id in \[0, 3\)"),
    ("class_record_disagrees", r"key 10: class record 0 covers keys 1\.\.3 but key 3 has label 1"),
    ("wrong_magic", r"key 5, byte offset \d+: wrong magic"),
    ("truncated", r"key 12.*truncated record"),
    ("image_size", r"key 1: image is 12x12 but .*property says 16x16"),
])
def test_broken_sets_raise_clear_errors(tmp_path, case, match):
    folder = tmp_path / "set"

    def set_record(key, header, payload=None):
        def edit(records):
            out = []
            for k, rec in records:
                if k == key:
                    rec = pack(header, payload) if payload is not None else pack(header)
                out.append((k, rec))
            return out
        return edit

    rng = np.random.default_rng(5)
    if case == "undecodable":
        make_set(folder, edit=set_record(2, IRHeader(0, 0.0, 2), b"\xff\xd8 not really a jpeg"))
    elif case == "property_more_classes":
        make_set(folder, num_classes=4)
    elif case == "label_out_of_range":
        make_set(folder, edit=set_record(3, IRHeader(0, 7.0, 3), png(rng.integers(0, 255, (16, 16, 3), np.uint8))))
    elif case == "class_record_disagrees":
        make_set(folder, edit=set_record(3, IRHeader(0, 1.0, 3), png(rng.integers(0, 255, (16, 16, 3), np.uint8))))
    elif case == "image_size":
        make_set(folder, edit=set_record(1, IRHeader(0, 0.0, 1), png(rng.integers(0, 255, (12, 12, 3), np.uint8))))
    else:
        make_set(folder)
        raw = bytearray((folder / "train.rec").read_bytes())
        offsets = read_idx(folder / "train.idx")
        if case == "wrong_magic":
            o = offsets[5]
            raw[o:o + 4] = b"\0\0\0\0"
        else:  # truncated: cut the file in the middle of the last record
            raw = raw[:offsets[12] + 12]
        (folder / "train.rec").write_bytes(bytes(raw))
    with pytest.raises((RecordIOError, ImageDecodeError), match=match):
        load_train_set(folder, cache_root=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_class_count_disagrees_with_class_records(tmp_path):
    # property says 3 classes; make the labels cover 3 classes but leave only 2 class records
    make_set(tmp_path / "set", counts=(2, 2), num_classes=3,
             edit=lambda recs: [(k, pack(IRHeader(0, 2.0, k), r[24:]) if k == 4 else r) for k, r in recs])
    with pytest.raises(RecordIOError, match="property says 3 classes but record 0 .* lists 2 class records"):
        load_train_set(tmp_path / "set", cache=False, progress=False)


def test_missing_side_file(tmp_path):
    make_set(tmp_path / "set")
    (tmp_path / "set" / "property").unlink()
    with pytest.raises(FileNotFoundError, match="property is missing"):
        load_train_set(tmp_path / "set", cache=False, progress=False)


def test_face_tensor_dataset_validates():
    imgs = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        FaceTensorDataset(imgs.float(), torch.zeros(4), 2)
    with pytest.raises(ValueError, match="labels span"):
        FaceTensorDataset(imgs, torch.tensor([0, 1, 2, 1]), 2)
    with pytest.raises(ValueError, match="4 images"):
        FaceTensorDataset(imgs, torch.tensor([0, 1]), 2)
    ds = FaceTensorDataset(imgs, torch.tensor([0, 1, 1, 0]), 2, "toy")
    assert ds.resized(4).images.shape == (4, 3, 4, 4) and ds.subset([1, 2]).labels.tolist() == [1, 1]


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("bob", 2), ("alice", 3)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), np.uint8)).save(tmp_path / name / f"{i}.png")
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["alice", "bob"] and len(ds) == 5
    t = ds.to_tensor_dataset()
    assert t.labels.tolist() == [0, 0, 0, 1, 1] and t.images.shape == (5, 3, 10, 10)
    assert ImageFolderDataset(tmp_path, size=6)[0][0].shape == (3, 6, 6)
    (tmp_path / "carol").mkdir()
    with pytest.raises(ValueError, match="carol: identity folder has no image"):
        ImageFolderDataset(tmp_path)


def test_synthetic_is_deterministic_and_learnable():
    a = synthetic_faces(10, 12, size=32, seed=3)
    b = synthetic_faces(10, 12, size=32, seed=3)
    assert torch.equal(a.images, b.images) and a.sha256 == b.sha256
    assert not torch.equal(a.images, synthetic_faces(10, 12, size=32, seed=4).images)
    assert a.images.shape == (120, 3, 32, 32) and a.labels.tolist() == sorted(a.labels.tolist())
    assert a.class_counts().tolist() == [12] * 10
    # nearest class mean on held-out samples: far above chance (10%), but not trivially perfect pixels
    x = a.images.float().flatten(1)
    x = x - x.mean(1, keepdim=True)
    train = torch.arange(120) % 12 < 6
    means = torch.stack([x[train & (a.labels == c)].mean(0) for c in range(10)])
    pred = torch.cdist(x[~train], means).argmin(1)
    acc = (pred == a.labels[~train]).float().mean().item()
    assert acc > 0.5, acc
    same = (a.images[0].float() - a.images[1].float()).abs().mean()
    assert same > 3  # samples of one identity differ


def test_label_noise():
    ds = synthetic_faces(5, 8, size=16)
    noisy, changed = add_label_noise(ds, 0.25, seed=1)
    again, changed2 = add_label_noise(ds, 0.25, seed=1)
    assert torch.equal(changed, changed2) and torch.equal(noisy.labels, again.labels)
    assert len(changed) == 10 and changed.tolist() == sorted(set(changed.tolist()))
    assert (noisy.labels[changed] != ds.labels[changed]).all()
    keep = torch.ones(len(ds), dtype=torch.bool)
    keep[changed] = False
    assert torch.equal(noisy.labels[keep], ds.labels[keep])
    assert noisy.images is ds.images and noisy.sha256 != ds.sha256 and "label_noise" in noisy.source
    assert not torch.equal(add_label_noise(ds, 0.25, seed=2)[1], changed)
    assert len(add_label_noise(ds, 0.0)[1]) == 0
    with pytest.raises(ValueError, match="fraction"):
        add_label_noise(ds, 1.5)


def _need_celeba():
    try:
        find_train_set()
    except FileNotFoundError:
        pytest.skip("CelebA training set not under the data root (set FR_DATA=/work/shared/datasets)")


@pytest.mark.data
def test_celeba_lazy_structure():
    _need_celeba()
    lazy = RecordDataset()
    assert len(lazy) == 5286 and lazy.num_classes == 238 and lazy.keys[0] == 1 and lazy.keys[-1] == 5286
    assert lazy.class_keys == list(range(5287, 5525))
    img, label = lazy[0]
    assert img.shape == (3, 112, 112) and img.dtype == torch.uint8 and label == 0
    labels = lazy.read_labels()
    counts = np.bincount(labels, minlength=238)
    assert counts.min() >= 5 and counts.max() <= 30 and counts.sum() == 5286
    lazy.validate(labels)  # class records agree with the labels, every class present


@pytest.mark.data
@pytest.mark.slow
def test_celeba_train_set_decode_and_cache(tmp_path):
    _need_celeba()
    ds = load_train_set(size=32, cache_root=tmp_path, progress=False)
    assert len(ds) == 5286 and ds.num_classes == 238 and ds.images.shape[1:] == (3, 32, 32)
    assert int(ds.class_counts().min()) >= 5
    assert bool((ds.labels[1:] >= ds.labels[:-1]).all())  # images are stored class by class
    assert torch.equal(ds.labels, torch.tensor(RecordDataset().read_labels()))
    cached = load_train_set(size=32, cache_root=tmp_path, progress=False)
    assert torch.equal(cached.images, ds.images) and cached.sha256 == ds.sha256


def test_unreadable_cache_is_rebuilt(tmp_path):
    make_set(tmp_path / "set")
    first = load_train_set(tmp_path / "set", cache_root=tmp_path / "cache", progress=False)
    (cache_file,) = (tmp_path / "cache").iterdir()
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        again = load_train_set(tmp_path / "set", cache_root=tmp_path / "cache", progress=False)
    assert torch.equal(again.images, first.images)
    assert load_train_set(tmp_path / "set", cache_root=tmp_path / "cache", progress=False).sha256 == first.sha256


def test_record_dataset_reads_whole_batches_as_item_by_item(tmp_path):
    """RecordDataset.__getitems__ (one decode buffer, one resize) gives the images and labels of ds[i] one by
    one, and batch_loader serves batches through it."""
    from fr.engine.sampler import batch_loader

    make_set(tmp_path / "set")
    for size in (None, 8):
        lazy = RecordDataset(tmp_path / "set", size=size)
        idx = [4, 0, 8, 3]
        images, labels = lazy.__getitems__(idx)
        assert torch.equal(images, torch.stack([lazy[i][0] for i in idx]))
        assert labels.dtype == torch.long and labels.tolist() == [lazy[i][1] for i in idx]
        (served, served_labels), = list(batch_loader(lazy, [idx], num_workers=0, seed=0, pin_memory=False))
        assert torch.equal(served, images) and torch.equal(served_labels, labels)
