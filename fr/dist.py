"""torch.distributed helpers that degrade to no-ops in a single process.

The model-parallel head (Partial FC) computes the *global* loss identically on every rank: each rank
holds a shard of the class centres, all ranks see the all-gathered batch, and the pieces of the
softmax that span shards are summed with :func:`all_sum`. Two conventions follow from that:

* :func:`all_sum` has an identity backward: every rank replicates the computation downstream of the
  sum, so each rank's contribution receives exactly the gradient of the (shared) loss.
* :func:`gather_for_global_loss` sums the gradients of the gathered batch over ranks and multiplies by
  the world size, which cancels DistributedDataParallel's averaging of backbone gradients (every rank
  already back-propagates the full global loss). With this, ``W`` processes follow the same trajectory
  as one process on the same global batch (tested).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def backend() -> str | None:
    """The process group's backend (``"nccl"``, ``"gloo"``), or None in a plain single process."""
    return str(dist.get_backend()) if is_dist() else None


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (any picklable object); ``obj`` itself in one process."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the process group when launched by torchrun; return whether it is distributed.

    A process started by torchrun (which sets ``WORLD_SIZE``) gets a process group even when it is alone
    (``--nproc_per_node=1``), as in insightface: one GPU then runs the same collectives, DDP wrapper and
    sharded head as eight. A plain ``python -m fr.train`` stays a single process without a group."""
    if is_dist():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":  # bind each rank to its GPU up front (NCCL otherwise guesses from the rank)
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, device_id=device)
    else:
        dist.init_process_group(backend=backend)
    return True


class _AllSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, g):
        return g


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over ranks; identity backward (see module docstring). Identity in one process."""
    if not is_dist():
        return x
    return _AllSum.apply(x)


def all_max(x: torch.Tensor) -> torch.Tensor:
    """Elementwise max over ranks, without gradient."""
    if not is_dist():
        return x.detach()
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.MAX)
    return y


class _GatherForGlobalLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ws, rk = dist.get_world_size(), dist.get_rank()
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(ws)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        sizes = [int(s.item()) for s in sizes]
        if len(set(sizes)) != 1:
            raise ValueError(f"every rank must have the same local batch size, got {sizes}")
        out = [torch.empty_like(x) for _ in range(ws)]
        dist.all_gather(out, x.contiguous())
        ctx.rank, ctx.ws, ctx.n = rk, ws, x.shape[0]
        return torch.cat(out, 0)

    @staticmethod
    def backward(ctx, g):
        g = g.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n] * ctx.ws


def gather_for_global_loss(x: torch.Tensor) -> torch.Tensor:
    if not is_dist():
        return x
    return _GatherForGlobalLoss.apply(x)


def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    if not is_dist():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)
