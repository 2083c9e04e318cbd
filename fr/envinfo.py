"""What a result was computed with: interpreter, libraries, device, and the exact code (git SHA + dirty flag).

``collect_env()`` is written to every run's ``env.json``. Git is queried read-only
(``--no-optional-locks``), and a missing git or a copy outside a repository gives ``null`` values rather
than an error.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .paths import repo_root


def _git(*args: str, cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(root: str | Path | None = None) -> dict[str, Any]:
    """``{"sha": full commit or None, "dirty": bool or None}`` (dirty: tracked files outside ``results/``
    differ from the commit). ``$FR_GIT_SHA`` (with ``$FR_GIT_DIRTY``, 0 or 1), where set, takes precedence: a
    copy of the code without its .git, or with a stale one, names the commit it was made from."""
    # code shipped to a cluster node without its .git (or with a stale one) names its commit explicitly
    env_sha = os.environ.get("FR_GIT_SHA") or None
    if env_sha is not None:
        env_dirty = os.environ.get("FR_GIT_DIRTY")
        return {"sha": env_sha, "dirty": env_dirty == "1" if env_dirty in ("0", "1") else None}
    root = Path(root) if root is not None else repo_root()
    sha = _git("rev-parse", "HEAD", cwd=root)
    if sha is None:
        return {"sha": None, "dirty": None}
    # recorded results are outputs, not code: rewriting results/ while measuring does not make the code dirty
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results", cwd=root)
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def short_version(sha: str | None, dirty: bool | None) -> str:
    """A commit as a short string for tables: 12 hex digits, ``-dirty`` when tracked files differed,
    ``unknown`` without a commit."""
    if not sha:
        return "unknown"
    return sha[:12] + ("-dirty" if dirty else "")


def code_version(root: str | Path | None = None) -> str:
    """This checkout's commit as :func:`short_version` writes it."""
    g = git_info(root)
    return short_version(g["sha"], g["dirty"])


def _version(mod: str) -> str | None:
    try:
        m = __import__(mod)
    except Exception:
        return None
    return getattr(m, "__version__", None)


def collect_env(device: Any = None) -> dict[str, Any]:
    """A JSON-ready description of this process's environment."""
    import torch

    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "fr": _version("fr"),
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"),
        "gpu": None,
        "git": git_info(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["gpu_count"] = torch.cuda.device_count()
    return env


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """This CPU's model, clock, physical cores, widest vector ISA and nominal FP32 peak, for benchmark records.

    The peak is ``cores x clock x FP32 FLOPs per cycle per core``, assuming two FMA units per core (AVX-512:
    2 x 16 lanes x 2 = 64; AVX2 with FMA: 2 x 8 x 2 = 32; AVX without FMA: one 8-lane add and one 8-lane
    multiply, 16; SSE: 8). The clock is the ``cpu MHz`` of ``/proc/cpuinfo`` (a virtual machine reports the
    nominal one), so the peak is nominal: turbo and throttling move the true one either way. Fields the
    system does not report are ``None``. ``cpuinfo``: the text to read instead of ``/proc/cpuinfo``."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "mhz": None,
                            "cores": os.cpu_count(), "isa": None, "fp32_flops_per_cycle": None,
                            "peak_fp32_gflops": None}
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():  # the first processor's block is enough: the cores are alike
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    info["cpu"] = fields.get("model name", info["cpu"])
    if fields.get("cpu MHz"):
        info["mhz"] = float(fields["cpu MHz"])
    if fields.get("cpu cores") and fields.get("siblings") and info["cores"]:  # physical cores, not SMT threads
        info["cores"] = info["cores"] * int(fields["cpu cores"]) // int(fields["siblings"])
    if "avx512f" in flags:
        info["isa"], info["fp32_flops_per_cycle"] = "avx512", 64
    elif "avx2" in flags and "fma" in flags:
        info["isa"], info["fp32_flops_per_cycle"] = "avx2+fma", 32
    elif "avx" in flags:
        info["isa"], info["fp32_flops_per_cycle"] = "avx", 16
    elif "sse2" in flags:
        info["isa"], info["fp32_flops_per_cycle"] = "sse2", 8
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        info["isa"] += "+bf16"
    if info["mhz"] and info["fp32_flops_per_cycle"] and info["cores"]:
        info["peak_fp32_gflops"] = round(info["cores"] * info["mhz"] / 1e3 * info["fp32_flops_per_cycle"], 1)
    return info
