"""The code version recorded beside every result and benchmark figure."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from fr.envinfo import code_version, git_info


def test_outside_a_checkout_the_version_is_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("FR_GIT_SHA", raising=False)
    assert git_info(tmp_path) == {"sha": None, "dirty": None}
    assert code_version(tmp_path) == "unknown"


def test_a_copy_can_name_its_commit(tmp_path, monkeypatch):
    """Also inside a checkout: the variable wins over a stale .git shipped with a copy."""
    monkeypatch.setenv("FR_GIT_SHA", "0123456789abcdef0123")
    monkeypatch.delenv("FR_GIT_DIRTY", raising=False)
    assert git_info(tmp_path) == {"sha": "0123456789abcdef0123", "dirty": None}
    monkeypatch.setenv("FR_GIT_DIRTY", "1")
    assert code_version(tmp_path) == "0123456789ab-dirty"
    monkeypatch.setenv("FR_GIT_DIRTY", "0")
    assert code_version(tmp_path) == "0123456789ab"
    assert code_version() == "0123456789ab"  # the repository itself


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_changed_tracked_file_marks_the_version_dirty(tmp_path, monkeypatch):
    monkeypatch.delenv("FR_GIT_SHA", raising=False)

    def git(*a):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.csv").write_text("1")
    git("add", "f.txt", "results/r.csv")
    git("commit", "-qm", "x")
    clean = code_version(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{12}", clean)
    (tmp_path / "untracked.txt").write_text("ignored")  # untracked files do not change the code
    assert code_version(tmp_path) == clean
    (tmp_path / "results" / "r.csv").write_text("2")      # recorded results are outputs, not code
    assert code_version(tmp_path) == clean
    (tmp_path / "f.txt").write_text("b")
    assert code_version(tmp_path) == clean + "-dirty"


def test_cpu_info_reads_clock_cores_and_vector_width():
    from fr.envinfo import cpu_info

    def text(flags, cores=2, siblings=2):
        block = (f"processor\t: 0\nmodel name\t: Some CPU\ncpu MHz\t\t: 2500.000\nsiblings\t: {siblings}\n"
                 f"cpu cores\t: {cores}\nflags\t\t: {flags}\n\n")
        return block + block.replace("processor\t: 0", "processor\t: 1")

    avx2 = cpu_info(text("fpu sse2 avx fma avx2"))
    assert avx2["cpu"] == "Some CPU" and avx2["mhz"] == 2500.0 and avx2["isa"] == "avx2+fma"
    cores = avx2["cores"]  # os.cpu_count(): every logical CPU is a core when siblings == cpu cores
    assert avx2["peak_fp32_gflops"] == round(cores * 2.5 * 32, 1)
    smt = cpu_info(text("sse2 avx fma avx2 avx512f avx512_bf16", cores=1, siblings=2))
    assert smt["isa"] == "avx512+bf16" and smt["fp32_flops_per_cycle"] == 64 and smt["cores"] == cores // 2
    assert cpu_info(text("sse2 avx"))["fp32_flops_per_cycle"] == 16
