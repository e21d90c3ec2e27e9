"""Data-parallel training on ``torch.distributed``, as launched by ``torchrun``.

Every rank loads the same ratings and makes the same split, so vocabularies, the
training part and the validation part are those of a single-process run by
construction. Each rank then trains on its shard of the training ratings (every
``world_size``-th rating of a seeded permutation) in batches of ``batch_size /
world_size``, so that the ranks' batches together are one batch of the single-process
run. Decay and rate rules use the counts of the whole training part. The sgd families
sum every step's changes over the ranks (:mod:`collabfilter.sgd.synced`); the Bayesian
family sums each shard's Gram matrices and moments. :func:`check_identical` verifies at
the end that every rank holds the same parameters.

Communication per sgd step is the size of the model's parameters, over gloo on CPUs and
NCCL on GPUs. Embedding tables are replicated on every rank: past what one machine
holds, sharded tables (TorchRec) are the tool.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from collabfilter.errors import CollabFilterError


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
