"""A deterministic, resumable, world-size-independent batch sampler.

Every epoch draws one permutation of the training set from ``torch.Generator().manual_seed(seed + epoch)``
(the same on every rank, like ``DistributedSampler``) and cuts it into global batches of ``global_batch``
images, dropping the last partial batch. Rank ``r`` of ``W`` takes the ``r``-th contiguous slice of each
global batch. Because the head all-gathers the batch in rank order, the gathered batch is exactly the
batch one process would see: ``W`` processes follow the trajectory of one (tested).

The position ``(epoch, batch)`` is the next batch to train on; it is saved in checkpoints, and a resumed
run continues with the very batch it would have drawn next. :func:`batch_loader` serves the batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset


@dataclass
class SamplerPosition:
    epoch: int = 0
    batch: int = 0


class EpochBatchSampler:
    def __init__(self, num_samples: int, global_batch: int, *, seed: int = 0, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by world size {world_size}")
        if num_samples < global_batch:
            raise ValueError(f"{num_samples} samples cannot fill one batch of {global_batch}")
        self.num_samples, self.global_batch = int(num_samples), int(global_batch)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.local_batch = self.global_batch // self.world_size
        self.batches_per_epoch = self.num_samples // self.global_batch
        self.position = SamplerPosition()
        self._perm_epoch: int | None = None
        self._perm: torch.Tensor | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = torch.randperm(self.num_samples, generator=g)
            self._perm_epoch = epoch
        return self._perm  # type: ignore[return-value]

    def global_indices(self, epoch: int, batch: int) -> torch.Tensor:
        """Indices of global batch ``batch`` of ``epoch`` (all ranks' slices, in rank order)."""
        if not 0 <= batch < self.batches_per_epoch:
            raise IndexError(f"batch {batch} out of range for {self.batches_per_epoch} batches per epoch")
        start = batch * self.global_batch
        return self.permutation(epoch)[start:start + self.global_batch]

    def local_indices(self, epoch: int, batch: int) -> torch.Tensor:
        lo = self.rank * self.local_batch
        return self.global_indices(epoch, batch)[lo:lo + self.local_batch]

    def remaining(self) -> Iterator[list[int]]:
        """Local index lists from the current position to the end of its epoch (position not advanced)."""
        ep = self.position.epoch
        for b in range(self.position.batch, self.batches_per_epoch):
            yield self.local_indices(ep, b).tolist()

    def advance(self) -> None:
        """Mark the current batch as consumed."""
        self.position.batch += 1
        if self.position.batch >= self.batches_per_epoch:
            self.position = SamplerPosition(self.position.epoch + 1, 0)

    def state_dict(self) -> dict:
        return {"epoch": self.position.epoch, "batch": self.position.batch, "seed": self.seed,
                "num_samples": self.num_samples, "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        for k in ("seed", "num_samples", "global_batch"):
            if state[k] != getattr(self, k):
                raise ValueError(f"checkpoint sampler has {k}={state[k]}, this run has {getattr(self, k)}; "
                                 "the training set or batch differs from the checkpoint's")
        self.position = SamplerPosition(int(state["epoch"]), int(state["batch"]))


class _BatchView(Dataset):
    """Serves whole batches of a tensor dataset by fancy indexing (``__getitems__``), of a dataset with its own
    ``__getitems__`` through it, and of anything with ``__getitem__ -> (image, label)`` item by item."""

    def __init__(self, ds):
        self.ds = ds
        self.images = getattr(ds, "images", None)
        self.labels = getattr(ds, "labels", None)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    def __getitems__(self, idx: list[int]):
        if self.images is not None and self.labels is not None:
            t = torch.as_tensor(idx, dtype=torch.long)
            return self.images[t], self.labels[t].long()
        if hasattr(self.ds, "__getitems__"):  # a dataset that reads whole batches (RecordDataset)
            return self.ds.__getitems__(idx)
        items = [self.ds[i] for i in idx]
        return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def _whole_batch(batch):
    return batch  # __getitems__ already made the (images, labels) pair


def batch_loader(dataset, batches: list[list[int]], *, num_workers: int, seed: int, pin_memory: bool) -> DataLoader:
    """A DataLoader yielding ``(uint8 images (B, 3, H, W), labels (B,))`` for each index list in ``batches``
    (e.g. ``list(sampler.remaining())``). Its generator is private and seeded with ``seed``: creating an
    iterator must not draw from the global RNG (a resumed run, which creates one more iterator, would diverge
    from an uninterrupted one)."""
    return DataLoader(_BatchView(dataset), batch_sampler=batches, num_workers=num_workers, collate_fn=_whole_batch,
                      pin_memory=pin_memory, persistent_workers=False, generator=torch.Generator().manual_seed(seed))
