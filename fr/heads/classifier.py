"""Class centres: a full cosine classifier, and Partial FC (sampled and/or sharded class centres).

``PartialFC(num_classes, embedding_size, sample_rate=1.0)`` in one process is a plain cosine
classifier. With ``sample_rate < 1`` each training step keeps every class present in the batch plus
uniformly sampled negatives (insightface ``partial_fc_v2``); under torch.distributed the centres are
sharded over ranks and each rank computes the cosines of its shard against the all-gathered batch.

Faithfulness note (as in insightface v2): ``W`` is one dense parameter, so SGD's weight decay and
momentum still touch the rows that were not sampled this step.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import dist as D

INITS = ("normal", "unit_uniform", "xavier")


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
        ws, rk = D.world_size(), D.rank()
        self.world_size, self.rank = ws, rk
        self.num_local = num_classes // ws + int(rk < num_classes % ws)
        self.class_start = num_classes // ws * rk + min(rk, num_classes % ws)
        self.weight = nn.Parameter(torch.empty(self.num_local, embedding_size))
        init_centres(self.weight, init)
        self.last_index: torch.Tensor | None = None
        self.last_centres: torch.Tensor | None = None

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


def CosineClassifier(num_classes: int, embedding_size: int, init: str = "normal") -> PartialFC:
    """A full cosine classifier (Partial FC with every class sampled)."""
    return PartialFC(num_classes, embedding_size, sample_rate=1.0, init=init)
