"""Class centres: Partial FC (sampled and/or sharded), of which a full cosine classifier is the one-process,
``sample_rate=1`` case.

``PartialFC(num_classes, embedding_size, sample_rate=1.0)`` in one process is a plain cosine
classifier. With ``sample_rate < 1`` each training step keeps every class present in the batch plus
uniformly sampled negatives (insightface ``partial_fc_v2``); under torch.distributed the centres are
sharded over ranks and each rank computes the cosines of its shard against the all-gathered batch.

Faithfulness note (as in insightface v2): ``W`` is one dense parameter, so SGD's weight decay and
momentum still touch the rows that were not sampled this step.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import dist as D

INITS = ("normal", "unit_uniform", "xavier")


def shard_bounds(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, count)`` of rank ``rank``'s contiguous shard of ``num_classes`` class centres.

    The first ``num_classes % world_size`` ranks hold one class more (insightface ``partial_fc_v2``'s split).
    :class:`PartialFC` shards its centres with it and :mod:`fr.engine.checkpoint` gathers and splits them
    with it, so a checkpoint written on one number of ranks loads on another."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} of world size {world_size} is not a valid shard")
    base, extra = divmod(num_classes, world_size)
    return base * rank + min(rank, extra), base + int(rank < extra)


def init_centres(weight: torch.Tensor, init: str) -> None:
    """Initialise class centres in place. ``normal``: N(0, 0.01) (insightface PFC, CurricularFace,
    ElasticFace); ``unit_uniform``: uniform(-1, 1) renormalised to unit rows (AdaFace, MagFace,
    MV-Softmax); ``xavier``: xavier_normal (SFace uses gain 2)."""
    with torch.no_grad():
        if init == "normal":
            weight.normal_(0.0, 0.01)
        elif init == "unit_uniform":
            weight.uniform_(-1.0, 1.0)
            weight.copy_(F.normalize(weight, dim=1))
        elif init == "xavier":
            nn.init.xavier_normal_(weight, gain=2.0)
        else:
            raise ValueError(f"unknown centre init {init!r}; known: {', '.join(INITS)}")


class PartialFC(nn.Module):
    def __init__(self, num_classes: int, embedding_size: int, sample_rate: float = 1.0, init: str = "normal"):
        super().__init__()
        if num_classes < 1 or embedding_size < 1:
            raise ValueError(f"num_classes and embedding_size must be positive, got {num_classes}, {embedding_size}")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        self.num_classes = num_classes
        self.embedding_size = embedding_size
        self.sample_rate = float(sample_rate)
        self.world_size, self.rank = D.world_size(), D.rank()
        self.class_start, self.num_local = shard_bounds(num_classes, self.world_size, self.rank)
        self.weight = nn.Parameter(torch.empty(self.num_local, embedding_size))
        init_centres(self.weight, init)
        self.last_index: torch.Tensor | None = None
        self.last_centres: torch.Tensor | None = None

    @torch.no_grad()
    def init_world_invariant(self, init: str, seed: int, chunk_rows: int = 65536) -> None:
        """Re-initialise this shard's centres as if all classes lived in one process, from ``seed``.

        The constructor draws each shard from the rank's global RNG, so its values depend on the world size.
        Here rows ``0..class_start + num_local`` are drawn chunk by chunk from a dedicated generator state
        (the global RNG is left as it was) and this shard's rows are kept: ``W`` ranks start from the very
        centres one process starts from. ``xavier`` uses the full matrix's fan,
        ``std = 2 * sqrt(2 / (num_classes + D))`` (gain 2, as :func:`init_centres`)."""
        c, dim = self.num_classes, self.embedding_size
        start, count = self.class_start, self.num_local
        out = torch.empty(count, dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for lo in range(0, min(c, start + count), chunk_rows):
                hi = min(c, lo + chunk_rows)
                chunk = torch.empty(hi - lo, dim)
                if init == "xavier":
                    chunk.normal_(0.0, 2.0 * math.sqrt(2.0 / (c + dim)))
                else:
                    init_centres(chunk, init)
                a, b = max(lo, start), min(hi, start + count)
                if a < b:
                    out[a - start:b - start] = chunk[a - lo:b - lo]
        self.weight.copy_(out)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, "
                f"sample_rate={self.sample_rate}, shard=[{self.class_start}, {self.class_start + self.num_local})")

    def _sample(self, local_labels: torch.Tensor) -> torch.Tensor | None:
        """Indices of the sampled local classes (sorted), or None for all of them."""
        if self.sample_rate >= 1.0 or not self.training:
            return None
        num_sample = int(self.sample_rate * self.num_local)
        positive = torch.unique(local_labels[local_labels >= 0], sorted=True)
        if num_sample <= positive.numel():
            return positive
        perm = torch.rand(self.num_local, device=local_labels.device)
        perm[positive] = 2.0
        return torch.topk(perm, k=num_sample).indices.sort().values

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: l2-normalised embeddings (B, D) (all-gathered when sharded); ``labels``: global ids
        (-1 = ignore). Returns the clamped cosines over the local (sampled) classes and the local label
        of each row (-1 where its class is not among them)."""
        if x.shape[1] != self.embedding_size:
            raise ValueError(f"embedding size {x.shape[1]} does not match the head's {self.embedding_size}")
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise ValueError(f"label {int(labels.max())} out of range for {self.num_classes} classes")
        in_shard = (labels >= self.class_start) & (labels < self.class_start + self.num_local)
        local = torch.where(in_shard, labels - self.class_start, torch.full_like(labels, -1))
        index = self._sample(local)
        self.last_index = index
        w = self.weight
        if index is not None:
            w = w[index]
            pos = torch.searchsorted(index, local.clamp_min(0))
            local = torch.where(local >= 0, pos, local)
        w = F.normalize(w.to(x.dtype), dim=1)
        self.last_centres = w
        cos = F.linear(x, w).float() if x.dtype != torch.float64 else F.linear(x, w)
        return cos.clamp(-1.0, 1.0), local

