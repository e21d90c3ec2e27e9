"""Data-parallel training on ``torch.distributed``, as launched by ``torchrun``.

Every rank loads the same ratings and makes the same split, so vocabularies, the
training part and the validation part are those of a single-process run by
construction. Each rank then trains on its shard of the training ratings (every
``world_size``-th rating of a seeded permutation) in batches of ``batch_size /
world_size``, so that the ranks' batches together are one batch of the single-process
run. Decay and rate rules use the counts of the whole training part. After every step
the ranks sum their changes of every parameter with one ``all_reduce``: per-rating SGD
adds one step per rating, so the summed change is what one process would have applied
to the whole batch, and every rank applies the same one (parameters stay identical;
:func:`check_identical` verifies it at the end of training).

Communication per step is the size of the model's parameters (ml-100k's default
model: 0.7 MB; ml-25m's shape at 64 factors: 57 MB), over gloo on CPUs and NCCL on
GPUs. Embedding tables are replicated on every rank: past what one machine holds,
sharded tables (TorchRec) are the tool.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from collabfilter.errors import CollabFilterError
from collabfilter.train.steps import Steps


@dataclass(frozen=True)
class Group:
    """This process's place in the job."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0 prints and writes files."""
        return self.rank == 0


def current() -> Group | None:
    """The job this process trains in, or None for single-process training."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Group(dist.get_rank(), dist.get_world_size())


def start_from_environment() -> Group | None:
    """Join the job ``torchrun`` (or Slurm with its variables) describes: gloo on CPUs,
    NCCL when every rank has a GPU. None when the environment names no job of two or
    more processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend=backend)
    return current()


def stop() -> None:
    """Leave the job (after the last collective)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_rows(n_ratings: int, group: Group, seed: int) -> np.ndarray:
    """This rank's training rows: every ``world_size``-th of a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n_ratings)
    return np.sort(order[group.rank :: group.world_size])


def all_reduce_sum(total: Tensor) -> Tensor:
    """``total`` summed over the ranks (in place; the same on every rank)."""
    dist.all_reduce(total)
    return total


def agree_on_batches(local: int) -> int:
    """The most batches any rank has in an epoch (ranks with fewer take empty steps)."""
    count = torch.tensor([local], dtype=torch.int64)
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    return int(count.item())


class SyncedSteps:
    """The steps of one rank, made collective: after each local step the changes of
    every parameter are summed over the ranks and applied on all of them.

    Args:
        inner: the rank's steps on its shard.
        model: the model they train (its parameters are synchronised).
        n_batches: batches per epoch agreed by all ranks.
    """

    def __init__(self, inner: Steps, model: nn.Module, n_batches: int) -> None:
        self.inner, self.model, self.n_batches = inner, model, n_batches
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    def batches(self) -> Iterator[Any]:
        count = 0
        for batch in self.inner.batches():
            count += 1
            yield batch
        for _ in range(self.n_batches - count):
            yield None  # this rank's shard ran out: it contributes nothing to the step

    def size(self, batch: Any) -> int:
        return 0 if batch is None else self.inner.size(batch)

    @torch.no_grad()
    def step(self, batch: Any, multiplier: float) -> Tensor:
        before = [p.detach().clone() for p in self.parameters]
        loss = torch.zeros((), dtype=torch.float64)
        if batch is not None:
            loss = self.inner.step(batch, multiplier).detach().double().cpu()
        flat = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(self.parameters, before,
                                                                      strict=True)])  # fmt: skip
        dist.all_reduce(flat)
        offset = 0
        for param, old in zip(self.parameters, before, strict=True):
            size = param.numel()
            param.copy_(old + flat[offset : offset + size].view_as(param))
            offset += size
        dist.all_reduce(loss)
        return loss


def check_identical(model: nn.Module) -> str:
    """SHA-256 of the model's state, checked equal on every rank; raises otherwise."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    mine = digest.hexdigest()
    everyone: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    if len(set(everyone)) != 1:
        raise CollabFilterError(
            f"ranks ended training with different parameters ({len(set(everyone))} "
            "distinct states): the model file would not be what every rank holds"
        )
    return mine
