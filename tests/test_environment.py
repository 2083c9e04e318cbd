"""pyproject.toml is the one list of dependencies; environment.yml mirrors it for conda users."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(map(_norm, project["dependencies"]))
    for extra in project["optional-dependencies"].values():
        wanted |= set(map(_norm, extra))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    got = {_norm(p) for p in pip if not p.startswith("-e")}
    assert got == wanted, f"only in environment.yml: {sorted(got - wanted)}; only in pyproject: {sorted(wanted - got)}"
    assert any(p.startswith("-e") for p in pip), "environment.yml must install the fr package itself"


def test_torch_is_pinned_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps, "torch must be pinned exactly (a range pulls CUDA wheels)"
    assert not any(d.startswith("torchvision") for d in deps), "fr must not depend on torchvision"


def test_fr_imports_without_torchvision():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torchvision'] = None; import fr, fr.heads, fr.data, fr.eval, fr.backbones; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
