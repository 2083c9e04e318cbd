"""One lookup rule finds training sets and one finds verification sets, for the data loaders and the trainer
alike: the shared layout and insightface's flat one under the data root, absolute paths as they are, never the
current directory; errors name what was looked for and the data root."""
from __future__ import annotations

import re

import pytest
import torch

from fr.config import DataCfg
from fr.data import find_bin, find_train_set, load_training_set, save_bin, synthetic_faces
from fr.data.locate import DEFAULT_TRAIN_SET
from fr.engine.evaluation import VerificationSets
from test_data_datasets import make_set


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FR_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def _parts(folder):
    return folder / "train.rec", folder / "train.idx", folder / "property"


def test_train_set_by_name_default_rec_path_and_absolute(root, tmp_path, monkeypatch):
    make_set(root / DEFAULT_TRAIN_SET)
    make_set(root / "casia", counts=(2, 2))
    assert find_train_set() == _parts(root / DEFAULT_TRAIN_SET)
    assert find_train_set("casia") == _parts(root / "casia")
    assert find_train_set("casia/train.rec") == _parts(root / "casia")  # a .rec path under the data root
    assert find_train_set(root / "casia") == find_train_set(root / "casia" / "train.rec") == _parts(root / "casia")
    monkeypatch.chdir(root)  # a relative name is never looked up in the current directory
    monkeypatch.setenv("FR_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="no training set 'casia'"):
        find_train_set("casia")


def test_train_set_flat_layout_answers_any_name(root):
    make_set(root)  # insightface's flat layout: train.rec in the data root itself
    assert find_train_set() == find_train_set("ms1mv2") == _parts(root)


def test_train_set_errors_name_the_path_and_the_data_root(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"no training set 'webface4m' under the data root "
                                                rf"{re.escape(str(root))}: looked for 'webface4m/train\.rec' and "
                                                r"'train\.rec'; set FR_DATA"):
        find_train_set("webface4m")
    with pytest.raises(FileNotFoundError, match=f"training set {re.escape(str(tmp_path / 'nowhere'))} does not exist"):
        find_train_set(tmp_path / "nowhere")  # an absolute path that does not exist
    make_set(root / "broken")
    (root / "broken" / "train.idx").unlink()
    with pytest.raises(FileNotFoundError, match=r"training set incomplete: .*broken/train\.idx is missing"):
        find_train_set("broken")


def test_the_training_set_a_config_names(root):
    make_set(root / "tiny", counts=(2, 3), size=16)
    ds = load_training_set(DataCfg(train="tiny"), size=8, seed=0)
    assert len(ds) == 5 and ds.num_classes == 2 and ds.images.shape[-2:] == (8, 8)
    assert ds.source == "tiny/train.rec@8x8"
    syn = load_training_set(DataCfg(train="synthetic", synthetic_classes=3, synthetic_per_class=2), size=16, seed=4)
    assert torch.equal(syn.images, synthetic_faces(3, 2, size=16, seed=4).images)
    with pytest.raises(FileNotFoundError, match="no training set 'absent'"):
        load_training_set(DataCfg(train="absent"), size=8, seed=0)


def _bin(path):
    faces = synthetic_faces(2, 2, size=8, seed=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_bin(path, faces.images[[0, 1, 0, 2]], [True, False])
    return path


def test_bin_lookup_layouts_and_errors(root, tmp_path):
    nested, flat = _bin(root / "verification" / "lfw.bin"), _bin(root / "cfp_fp.bin")
    other = _bin(root / "sets" / "agedb.bin")
    outside = _bin(tmp_path / "outside" / "x.bin")
    assert find_bin("lfw") == nested and find_bin("cfp_fp") == flat
    assert find_bin("sets/agedb.bin") == other and find_bin(outside) == outside
    _bin(root / "lfw.bin")
    assert find_bin("lfw") == nested  # the shared layout first
    with pytest.raises(FileNotFoundError, match=rf"no verification set 'agedb_30' under the data root "
                                                rf"{re.escape(str(root))}: looked for 'verification/agedb_30\.bin', "
                                                r"'agedb_30\.bin' and 'agedb_30'; set FR_DATA"):
        find_bin("agedb_30")
    with pytest.raises(FileNotFoundError, match=f"verification set {re.escape(str(tmp_path / 'no.bin'))} does not"):
        find_bin(tmp_path / "no.bin")
    # the trainer's verification sets go through the same rule
    sets = VerificationSets(size=8)
    assert sets.get("cfp_fp").issame.tolist() == [True, False]
    with pytest.raises(FileNotFoundError, match="no verification set 'agedb_30'"):
        sets.get("agedb_30")
