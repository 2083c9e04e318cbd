"""Run a function on several gloo ranks (spawned CPU processes) and collect what each rank returns.

The sharded head tests build a head on every rank of a real ``torch.distributed`` group, so that Partial FC shards
its class centres and the margin rules run their collectives, and compare each rank's result in the test process:

    results = run_on_ranks(fn, args, world_size=2, out_dir=tmp_path)    # [fn(0, *args), fn(1, *args)]

``fn`` must be a module-level function (the spawned processes import it by name) and return something
``torch.save`` can write with plain types and tensors (dicts, lists, floats, tensors).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, fn, args: tuple, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.save(fn(rank, *args), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_on_ranks(fn, args: tuple = (), *, world_size: int = 2, out_dir: Path) -> list:
    """``[fn(rank, *args) for rank in range(world_size)]``, each rank in its own process of one gloo group."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(world_size, free_port(), fn, tuple(args), str(out_dir)), nprocs=world_size, join=True)
    return [torch.load(Path(out_dir) / f"rank{r}.pt") for r in range(world_size)]
