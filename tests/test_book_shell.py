"""The book's shell: executed notebooks fold their code, the front page's generated parts, offline math config."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from fr.book import CHAPTERS, chapters_page, hide_inputs, notebook_title

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, cells: list[dict]) -> Path:
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


def _code(src: str, tags=None, **meta) -> dict:
    md = {**meta, **({"tags": tags} if tags is not None else {})}
    return {"cell_type": "code", "execution_count": 1, "id": f"c{abs(hash(src)) % 10**6}",
            "metadata": md, "outputs": [{"output_type": "stream", "name": "stdout", "text": "out\n"}],
            "source": src}


def _md(src: str) -> dict:
    return {"cell_type": "markdown", "id": f"md{abs(hash(src)) % 10**6}", "metadata": {}, "source": src}


def test_hide_inputs_folds_every_code_cell_once(tmp_path):
    nb = _notebook(tmp_path / "x.ipynb", [
        _md("# Title"), _code("mode = 'report'", tags=["parameters"]), _code("x = 1", collapsed=False),
        _code("y = 2", tags=["remove-input"]), _code("z = 3", tags=["hide-cell"]), _code("print(1)")])
    assert hide_inputs(nb) == 3
    cells = json.loads(nb.read_text())["cells"]
    assert [c["metadata"].get("tags") for c in cells] == [
        None, ["parameters", "hide-input"], ["hide-input"], ["remove-input"], ["hide-cell"], ["hide-input"]]
    assert cells[2]["metadata"]["collapsed"] is False and cells[5]["outputs"][0]["text"] == "out\n"
    before = nb.read_bytes()
    assert hide_inputs(nb) == 0 and nb.read_bytes() == before
    nbformat = pytest.importorskip("nbformat", reason="the book extra (nbformat) is not installed")
    nbformat.validate(nbformat.read(nb, as_version=4))


def test_hide_inputs_names_a_file_that_is_not_a_notebook(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.ipynb: not a readable Jupyter notebook"):
        hide_inputs(bad)
    with pytest.raises(ValueError, match="missing.ipynb"):
        hide_inputs(tmp_path / "missing.ipynb")


def test_book_cli_hides_inputs(tmp_path, capsys):
    from fr.book import main

    nb = _notebook(tmp_path / "y.ipynb", [_code("a = 1"), _code("b = 2")])
    main(["--hide-inputs", str(nb)])
    assert "2 code cells folded" in capsys.readouterr().out
    assert all(c["metadata"]["tags"] == ["hide-input"] for c in json.loads(nb.read_text())["cells"])


def test_chapters_page_lists_every_chapter_in_reading_order_and_links_what_exists(tmp_path):
    present = [_notebook(tmp_path / "10_speed.ipynb", [_md("intro text\n\n## Speed: heads and steps\nmore")]),
               _notebook(tmp_path / "03_smaface_ablation.ipynb", [_code("x = 1"), _md("# SMAFace, ablated")]),
               _notebook(tmp_path / "11_extra.ipynb", [_code("x = 1")])]
    page = chapters_page(present)
    rows = [line for line in page.splitlines()[2:]]
    stems = [r.split("`")[1] for r in rows]
    assert stems == sorted(set(CHAPTERS) | {"11_extra"})
    assert stems[:10] == list(CHAPTERS), "CHAPTERS must be written in reading order"
    assert "| `03_smaface_ablation` | [SMAFace, ablated](executed/03_smaface_ablation.ipynb) |" in page
    assert "[Speed: heads and steps](executed/10_speed.ipynb)" in page
    assert "| `11_extra` | [11_extra](executed/11_extra.ipynb) |  |" in page
    assert "| `01_baselines` | *not in this build* |" in page
    assert notebook_title(present[2]) == "11_extra"


def test_front_page_includes_the_generated_parts():
    intro = (ROOT / "book" / "intro.md").read_text()
    for part in ("generated/chapters.md", "generated/claims.md"):
        assert f"```{{include}} {part}\n```" in intro


def test_math_is_served_from_the_packaged_mathjax():
    """The HTML must not load MathJax from a CDN: sphinx-mathjax-offline copies it into the build."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    assert "mathjax_path" not in cfg["sphinx"].get("config", {}), "mathjax_path would override the local copy"
    book_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["book"]
    assert "sphinx-mathjax-offline" in book_extra
