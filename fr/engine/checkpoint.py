"""One checkpoint file per run, whatever the number of ranks.

insightface writes one file per GPU (``checkpoint_gpu_{rank}.pt``), so a run cannot resume on another
number of GPUs (insightface#1811). Here the class-centre shards of a sharded Partial FC, and the optimiser
state that belongs to them, are gathered into full ``(num_classes, D)`` tensors on save
(:func:`gather_centres`), and each rank takes its rows back on load (:func:`load_centres`), both by
``PartialFC``'s own split (:func:`fr.heads.classifier.shard_bounds`); everything else is replicated. The
file is written atomically (:mod:`fr.engine.atomic`): a failure during the write leaves the previous
checkpoint intact.

RNG states (python, numpy, torch CPU and CUDA) are saved for every rank. They are restored exactly when the
world size is unchanged; otherwise each rank is re-seeded deterministically from ``(seed, step, rank)``.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as tdist
import torch.nn as nn

from .. import dist as D
from ..heads.classifier import shard_bounds
from .atomic import atomic_save

log = logging.getLogger("fr.train")

FORMAT = "fr-checkpoint/1"


def gather_rows(t: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Concatenate every rank's row shard of a ``(num_local, ...)`` tensor into ``(num_classes, ...)``
    (on every rank; CPU copy). Identity in one process."""
    if not D.is_dist():
        return t.detach().cpu().clone()
    ws = D.world_size()
    counts = [shard_bounds(num_classes, ws, r)[1] for r in range(ws)]
    pad = max(counts)
    x = t.detach()
    if x.shape[0] < pad:
        x = torch.cat([x, x.new_zeros((pad - x.shape[0], *x.shape[1:]))], 0)
    parts = [torch.empty_like(x) for _ in range(ws)]
    tdist.all_gather(parts, x.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)], 0).cpu()


def shard_of(full: torch.Tensor, num_classes: int) -> torch.Tensor:
    """This rank's rows of a full ``(num_classes, ...)`` tensor."""
    if full.shape[0] != num_classes:
        raise ValueError(f"expected {num_classes} rows of class centres, the checkpoint has {full.shape[0]}")
    start, count = shard_bounds(num_classes, D.world_size(), D.rank())
    return full[start:start + count]


def _param_index(optimizer: torch.optim.Optimizer, param: nn.Parameter) -> int:
    """The position of ``param`` in ``optimizer``'s packed state (its groups' parameters, in order)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        if p is param:
            return i
    raise RuntimeError("the class centres are not in the optimiser")


def _map_rows(optim_state: dict[str, Any], index: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
    """``optim_state`` with ``fn`` applied to the per-row state (momentum) of parameter ``index``; the dicts
    are copied, because a packed optimiser state shares them with the live optimiser."""
    state = dict(optim_state["state"])
    rows = state.get(index)
    if rows is not None:
        state[index] = {k: fn(v) if torch.is_tensor(v) and v.dim() > 0 else v for k, v in rows.items()}
    return {"state": state, "param_groups": optim_state["param_groups"]}


def gather_centres(head: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(head state, optimiser state)`` with the class centres ``head.classifier.weight`` and their
    optimiser state gathered from every rank's shard into full ``(num_classes, ...)`` tensors.
    Collective under torch.distributed: every rank must call it."""
    centres = head.classifier.weight
    n = head.classifier.num_classes
    head_state = dict(head.state_dict())
    head_state["classifier.weight"] = gather_rows(centres, n)
    optim_state = _map_rows(optimizer.state_dict(), _param_index(optimizer, centres), lambda t: gather_rows(t, n))
    return head_state, optim_state


def load_centres(head: nn.Module, optimizer: torch.optim.Optimizer, head_state: dict[str, Any],
                 optim_state: dict[str, Any]) -> None:
    """Load what :func:`gather_centres` wrote, on any number of ranks: each rank takes its rows of the class
    centres and of their optimiser state."""
    centres = head.classifier.weight
    n = head.classifier.num_classes
    head_state = dict(head_state)
    head_state["classifier.weight"] = shard_of(head_state["classifier.weight"], n)
    head.load_state_dict(head_state)
    optimizer.load_state_dict(_map_rows(optim_state, _param_index(optimizer, centres), lambda t: shard_of(t, n)))


def capture_rng() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def reseed(seed: int, step: int, rank: int) -> None:
    """Seed python, numpy and torch from ``(seed, step, rank)``."""
    s = (seed * 1_000_003 + step * 7919 + rank) % (2 ** 31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def all_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG state, in rank order (collective under torch.distributed)."""
    mine = capture_rng()
    if not D.is_dist():
        return [mine]
    out: list[Any] = [None] * D.world_size()
    tdist.all_gather_object(out, mine)
    return out


def restore_rank_rng(states: list[dict[str, Any]], *, seed: int, step: int) -> None:
    """Restore this rank's RNG state from :func:`all_rng_states` of the checkpoint; if it was written by
    another number of ranks, re-seed from ``(seed, step, rank)`` instead (deterministic, not bitwise)."""
    if len(states) == D.world_size():
        restore_rng(states[D.rank()])
        return
    log.warning("checkpoint was written by %d rank(s), resuming on %d: RNG streams re-seeded from "
                "(seed, step, rank); the run stays deterministic but not bitwise equal to an "
                "uninterrupted one", len(states), D.world_size())
    reseed(seed, step, D.rank())


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (call on the main rank only)."""
    state = {"format": FORMAT, **state}
    atomic_save(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise RuntimeError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RuntimeError(f"{path} is not an fr checkpoint (format {state.get('format') if isinstance(state, dict) else type(state).__name__!r})")
    return state
