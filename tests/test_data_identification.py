"""Identification folders through their manifest: validation, fingerprint checks, per-file sha256, decoding,
the decode cache, and (data-marked) the shared folders against the .bin sets."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import ident_fixture
from fr.data import load_bin
from fr.data.identification import (FaceFileError, ManifestError, load_faces, load_manifest)
from fr.data.transforms import LowQuality
from fr.paths import find_data


@pytest.fixture
def root(tmp_path):
    return ident_fixture.build(tmp_path / "data")["root"]


def test_manifest_rows_subsets_and_fingerprint(root):
    m = load_manifest(root / "identification")
    assert len(m) == sum(ident_fixture.LFW_SIZES) + 4 * 14
    assert m.fingerprint == hashlib.sha256((root / "identification" / "MANIFEST.tsv").read_bytes()).hexdigest()
    lfw, cfp = m.select("lfw"), m.select("cfp")
    assert len(lfw) == sum(ident_fixture.LFW_SIZES) and lfw.num_identities == len(ident_fixture.LFW_SIZES)
    assert len(cfp) == 56 and cfp.num_identities == 4 and cfp.fingerprint == m.fingerprint
    assert lfw.paths[0] == "lfw/Person_A/Person_A_0001.jpg" and lfw.rows[0] == 0
    assert cfp.rows[0] == len(lfw)  # rows keep their place in the full manifest
    assert not m.detected[m.paths.index("lfw/Person_B/Person_B_0001.jpg")] and m.detected.sum() == len(m) - 1
    codes, names = lfw.labels()
    assert codes.shape == (len(lfw),) and names[codes[0]] == "lfw:Person_A"
    with pytest.raises(KeyError, match="no identity with prefix 'ijb'"):
        m.select("ijb")
    assert m.cross_identity_duplicates() == [("lfw/Person_I/Person_I_0001.jpg", "lfw/Person_J/Person_J_0001.jpg")]
    first = m.first_row_of_sha()
    assert first[m.sha256[m.paths.index("lfw/Person_J/Person_J_0001.jpg")]] == \
        m.paths.index("lfw/Person_I/Person_I_0001.jpg")


def test_fingerprint_is_checked_against_sha256sums_and_expected(root):
    good = (root / "SHA256SUMS").read_text().split()[0]
    assert load_manifest(root / "identification", expected_sha256=good).fingerprint == good
    with pytest.raises(ManifestError, match="not the expected"):
        load_manifest(root / "identification", expected_sha256="0" * 64)
    (root / "SHA256SUMS").write_text("0" * 64 + "  identification/MANIFEST.tsv\n")
    with pytest.raises(ManifestError, match="differs from .*SHA256SUMS"):
        load_manifest(root / "identification")
    (root / "SHA256SUMS").write_text("0" * 64 + "  verification/lfw.bin\n")  # does not list the manifest
    assert load_manifest(root / "identification").fingerprint == good


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("path\tidentity", "file\tidentity", 1), "header"),
    (lambda t: t + "lfw/x.jpg\tlfw:x\n", "4 tab-separated fields"),
    (lambda t: t + f"../x.jpg\tlfw:x\tdetected\t{'a' * 64}\n", "without '..'"),
    (lambda t: t + f"lfw/x.jpg\tnoprefix\tdetected\t{'a' * 64}\n", "not 'set:name'"),
    (lambda t: t + f"lfw/x.jpg\tlfw:x\tguessed\t{'a' * 64}\n", "alignment"),
    (lambda t: t + "lfw/x.jpg\tlfw:x\tdetected\tABC\n", "64 lower-case hex"),
    (lambda t: t + t.splitlines()[1] + "\n", "listed twice"),
])
def test_malformed_manifests_are_refused_with_the_line(root, edit, match):
    p = root / "identification" / "MANIFEST.tsv"
    p.write_text(edit(p.read_text()))
    (root / "SHA256SUMS").unlink()
    with pytest.raises(ManifestError, match=match):
        load_manifest(root / "identification")


def test_missing_manifest_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANIFEST.tsv"):
        load_manifest(tmp_path)


def test_load_faces_decodes_resizes_and_caches(root, tmp_path):
    m = load_manifest(root / "identification")
    full = load_faces(m, [0, 1, 2], cache=False)
    assert full.dtype == torch.uint8 and full.shape == (3, 3, 32, 32)
    small = load_faces(m, [0, 1, 2], size=16, cache_root=tmp_path / "c")
    assert small.shape == (3, 3, 16, 16)
    assert len(list((tmp_path / "c").glob("faces-*-3-16x16-v1.pt"))) == 1
    again = load_faces(m, [0, 1, 2], size=16, cache_root=tmp_path / "c")
    assert torch.equal(small, again)
    # the cache is keyed by rows, size and degradation: none of them collides
    assert torch.equal(load_faces(m, [2, 1, 0], size=16, cache_root=tmp_path / "c"), small.flip(0))
    lq = load_faces(m, [0, 1, 2], size=16, low_quality=LowQuality(face_size=8), cache_root=tmp_path / "c")
    assert not torch.equal(lq, small)
    assert torch.equal(lq, load_faces(m, [0, 1, 2], size=16, low_quality=LowQuality(face_size=8), cache=False))
    assert len(list((tmp_path / "c").glob("faces-*.pt"))) == 3
    with pytest.raises(IndexError, match="rows must be in"):
        load_faces(m, [len(m)], cache=False)


def test_same_pixels_as_load_bin(root):
    """Folder files decode (and resize) to the pixels ``load_bin`` gives for the same bytes."""
    from fr.data.bins import read_bin_raw

    m = load_manifest(root / "identification")
    bins, _ = read_bin_raw(root / "verification" / "cfp_fp.bin")
    first = m.first_row_of_sha()
    rows = [first[hashlib.sha256(b).hexdigest()] for b in bins]
    for size in (None, 24):
        v = load_bin(root / "verification" / "cfp_fp.bin", size=size)
        assert torch.equal(load_faces(m, rows, size=size, cache=False), v.images)


def test_changed_and_missing_files_are_errors(root):
    m = load_manifest(root / "identification")
    f = m.file(3)
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(FaceFileError, match=r"Person_A_0004.jpg: sha256 .* does not match"):
        load_faces(m, [3], cache=False)
    load_faces(m, [2], cache=False)          # verification is lazy: only the files read are checked
    f.unlink()
    with pytest.raises(FileNotFoundError, match="listed in .*MANIFEST.tsv .*but missing"):
        load_faces(m, [3], cache=False)


# --- the shared data -----------------------------------------------------------------------------------------

def _shared():
    p = find_data("identification/MANIFEST.tsv")
    if p is None:
        pytest.skip("identification/ not under the data root (set FR_DATA=/work/shared/datasets)")
    return load_manifest(p.parent)


@pytest.mark.data
def test_shared_folders_have_the_documented_counts():
    m = _shared()   # also checks the manifest against SHA256SUMS
    lfw, cfp = m.select("lfw"), m.select("cfp")
    assert (len(lfw), lfw.num_identities, len(cfp), cfp.num_identities) == (13233, 5749, 7000, 500)
    sizes = np.bincount(lfw.labels()[0])
    assert (sizes >= 2).sum() == 1680 and sizes.max() == 530
    assert (~m.detected).sum() == 80


@pytest.mark.data
@pytest.mark.parametrize("name, distinct", [("lfw", 7701), ("cfp_fp", 5890), ("cfp_ff", 4737)])
def test_every_bin_image_is_a_folder_file_with_its_pair_label(name, distinct):
    from fr.data.bins import read_bin_raw

    m = _shared()
    path = find_data(f"verification/{name}.bin")
    if path is None:
        pytest.skip(f"{name}.bin not under the data root")
    bins, issame = read_bin_raw(path)
    first = m.first_row_of_sha()
    rows = np.array([first[hashlib.sha256(b).hexdigest()] for b in bins])
    assert np.unique(rows).size == distinct
    ids = m.identities[rows]
    assert np.array_equal(ids[0::2] == ids[1::2], np.asarray(issame))
    from fr.data._util import decode_chw
    expected = torch.from_numpy(np.stack([decode_chw(b, where=f"{name} image {i}") for i, b in enumerate(bins[:8])]))
    assert torch.equal(load_faces(m, rows[:8], cache=False), expected)
