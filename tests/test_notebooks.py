"""Every notebook runs under papermill, as `make book` runs it (report mode: no training)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_report_mode(nb, tmp_path):
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    out = tmp_path / nb.name
    pm.execute_notebook(str(nb), str(out), cwd=str(nb.parent), kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    shown = [o for c in cells for o in c.get("outputs", [])]
    assert shown, f"{nb.name} displayed nothing"


def test_results_notebook_says_when_nothing_is_recorded(tmp_path, monkeypatch):
    """On a clone without recorded runs a chapter explains how to make them (the exact commands) instead of failing."""
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    monkeypatch.setenv("FR_RESULTS", str(tmp_path / "empty_results"))
    nb = ROOT / "notebooks" / "01_baselines.ipynb"
    out = tmp_path / nb.name
    pm.execute_notebook(str(nb), str(out), cwd=str(nb.parent), kernel_name="python3", progress_bar=False)
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert "python -m fr.train --config configs/cpu/celeba_v2.yaml" in text


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(nb):
    """Notebooks are committed clean: `make book` executes them; outputs in git would go stale and bloat diffs."""
    cells = json.loads(nb.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells)
             if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{nb.name}: code cells {dirty} carry outputs or an execution count; clear them before committing"


def _modes(nb: Path) -> str:
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    return pm.inspect_notebook(str(nb)).get("mode", {}).get("help", "")


CHAPTERS = [nb for nb in NOTEBOOKS if "smoke" in json.dumps(json.loads(nb.read_text())["cells"][:3])]


@pytest.mark.slow
@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_in_smoke_mode(nb, tmp_path):
    """Every chapter with a `mode` parameter runs in smoke mode (synthetic faces, a tiny backbone, every row of its
    grid for 2 seeds into a temporary results root) as a user would type it: `papermill NB out.ipynb -p mode smoke`."""
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    assert "smoke" in _modes(nb), f"{nb.name}: its `mode` parameter does not document smoke mode"
    out = tmp_path / nb.name
    pm.execute_notebook(str(nb), str(out), parameters={"mode": "smoke"}, cwd=str(nb.parent), kernel_name="python3",
                        progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = json.dumps(cells)
    assert "smoke: " in text and "grid is recorded" in text
