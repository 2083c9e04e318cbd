"""The book's generated pages follow the registry, and the notebooks are stored clean and parameterised."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import fr
from fr.book import head_page, write_pages
from fr.heads import head_info

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_one_page_per_head_with_equation_defaults_and_citation(tmp_path):
    written = write_pages(tmp_path)
    names = fr.list_heads()
    assert {p.stem for p in written} == set(names) | {"index"}
    for n in names:
        page = (tmp_path / f"{n}.md").read_text()
        info = head_info(n)
        assert info["tex"] in page and info["paper"] in page
        for k in info["defaults"]:
            assert f"`{k}`" in page, f"{n}: default {k} missing from its page"
        if info["reconstructed"]:
            assert "Reconstruction" in page
    index = (tmp_path / "index.md").read_text()
    assert all(f"[`{n}`]({n}.md)" in index for n in names)


def test_stale_pages_are_removed(tmp_path):
    (tmp_path / "no_such_head.md").write_text("old")
    write_pages(tmp_path)
    assert not (tmp_path / "no_such_head.md").exists()


def test_page_changes_with_the_registry():
    assert "m` | 0.35" in head_page("cosface")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs_and_has_parameters(nb):
    data = json.loads(nb.read_text())
    code = [c for c in data["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{nb.name}: store notebooks without outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), \
        f"{nb.name}: needs a cell tagged 'parameters' for papermill"
    assert data["metadata"].get("kernelspec", {}).get("name") == "python3"


def test_toc_and_config_exist():
    assert (ROOT / "_config.yml").exists() and (ROOT / "_toc.yml").exists()
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
