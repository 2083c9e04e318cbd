"""Where things live. Everything is resolved from the repository root or the data root, never from the
current directory (papermill runs notebooks with their own working directory)."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The folder holding ``pyproject.toml`` (walks up from this file)."""
    here = Path(__file__).resolve()
    for p in here.parents:
        if (p / "pyproject.toml").exists():
            return p
    return here.parents[1]


def data_root() -> Path:
    """The data root: ``$FR_DATA`` if set, else ``<repo>/data``."""
    env = os.environ.get("FR_DATA")
    return Path(env).expanduser().resolve() if env else repo_root() / "data"


def results_root() -> Path:
    """The results root: ``$FR_RESULTS`` if set, else ``<repo>/results``."""
    env = os.environ.get("FR_RESULTS")
    return Path(env).expanduser().resolve() if env else repo_root() / "results"


def find_data(*candidates: str) -> Path | None:
    """The first of ``candidates`` (paths relative to the data root) that exists, else None.

    The shared data set keeps its files in sub-folders (``celeba_train/``, ``verification/``) while
    insightface users keep them flat; both layouts are accepted."""
    root = data_root()
    for c in candidates:
        p = root / c
        if p.exists():
            return p
    return None
