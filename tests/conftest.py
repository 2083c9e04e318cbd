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
