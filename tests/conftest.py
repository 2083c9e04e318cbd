from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_report_header(config):
    from fr.paths import data_root
    return f"fr data root: {data_root()} (set FR_DATA to change)"


@pytest.fixture
def data_root():
    from fr.paths import data_root as _dr
    return _dr()


@pytest.fixture
def toy_bin(tmp_path, monkeypatch):
    """A 20-pair verification set ``toy`` of synthetic faces under a temporary data root (FR_DATA)."""
    from fr.data import save_bin, synthetic_faces

    faces = synthetic_faces(10, 4, size=16, seed=5)
    rows, same = [], []
    for k in range(20):
        is_same = (k // 2) % 2 == 0  # folds of 2 pairs; a 10-pair subset still has both kinds
        a = (k % 10) * 4
        b = a + 1 if is_same else ((k % 10 + 3) % 10) * 4 + 2
        rows += [a, b]
        same.append(is_same)
    root = tmp_path / "data"
    (root / "verification").mkdir(parents=True)
    save_bin(root / "verification" / "toy.bin", faces.images[rows], same)
    monkeypatch.setenv("FR_DATA", str(root))
    return root


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test that trains (``fr.train`` sets ``runtime.threads``) leaves the session's thread count as it was."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
