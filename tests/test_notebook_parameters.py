"""Every notebook documents its parameters: `papermill --help-notebook` prints a type and a help line for each.

papermill reads the `parameters` cell line by line (``name: type = value  # help``) and silently drops what its
pattern does not match (an annotation such as ``str | None``, a second ``=`` on a line), so the test compares its
reading with Python's own parse of the cell and checks each default against its annotation.
"""
from __future__ import annotations

import ast
import json
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "tuple": tuple,
          "Optional": typing.Optional, "Any": typing.Any}


def _parameters_source(nb: Path) -> str:
    cells = [c for c in json.loads(nb.read_text())["cells"]
             if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{nb.name}: needs exactly one code cell tagged 'parameters', found {len(cells)}"
    src = cells[0]["source"]
    return "".join(src) if isinstance(src, list) else src


def _conforms(value, annotation) -> bool:
    """Whether a literal default fits its annotation (containers checked one level deep)."""
    if annotation is typing.Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return any(_conforms(value, a) for a in args)
    if annotation is type(None):
        return value is None
    if origin is None:
        if annotation is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    if not isinstance(value, origin):
        return False
    if origin is dict and args:
        return all(_conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if origin is list and args:
        return all(_conforms(v, args[0]) for v in value)
    return True


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_a_type_and_help(nb):
    pm = pytest.importorskip("papermill", reason="the book extra (papermill) is not installed")
    tree = ast.parse(_parameters_source(nb))
    declared = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "typing":
            continue  # `from typing import Optional` for the annotations
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None, \
            f"{nb.name}: line {stmt.lineno} of the parameters cell is not `name: type = literal  # help`"
        ann = stmt.annotation
        # a quoted annotation ("Optional[int]") is how papermill's pattern reads an optional type
        text = ann.value if isinstance(ann, ast.Constant) and isinstance(ann.value, str) else ast.unparse(ann)
        declared[stmt.target.id] = (text, ast.literal_eval(stmt.value))
    assert declared, f"{nb.name}: the parameters cell declares nothing"
    inspected = pm.inspect_notebook(str(nb))
    assert set(inspected) == set(declared), \
        f"{nb.name}: papermill reads {sorted(inspected)}, the cell declares {sorted(declared)}"
    for name, (annotation, default) in declared.items():
        p = inspected[name]
        assert p["inferred_type_name"] == annotation, f"{nb.name}: {name}: papermill reads type {p['inferred_type_name']!r}"
        assert p["help"], f"{nb.name}: {name} has no help comment on its (last) line"
        assert _conforms(default, eval(annotation, {}, _TYPES)), \
            f"{nb.name}: {name}: default {default!r} is not a {annotation}"


@pytest.mark.parametrize("value, annotation, ok", [
    (1.0, float, True), (1, float, True), (True, float, False), (True, int, False), ("a", str, True),
    ([0, 1], list[int], True), ([0, "1"], list[int], False), ({"a": {}}, dict[str, dict], True),
    ({"a": 1}, dict[str, dict], False), (None, typing.Optional[str], True), (3, typing.Optional[str], False),
])
def test_conforms(value, annotation, ok):
    assert _conforms(value, annotation) is ok
