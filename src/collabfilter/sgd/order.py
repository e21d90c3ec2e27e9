"""The order in which an epoch visits the ratings.

Small data gets an exact uniform permutation per epoch. At millions of ratings that
costs twice: ``randperm`` itself (one random swap per row), and then a cache miss per
rating for every per-rating array a batch reads in that order.
So large data is stored once in a random order, and an epoch permutes *blocks* of
``block`` consecutive stored ratings: a batch is then hundreds of random blocks, read
as short runs of memory. Each stored block is a random set of ratings and every epoch
still visits each rating once, in a fresh random order of blocks; the only difference
from an exact permutation is that the few ratings of one block always share a batch.
A full batch holds at least 256 blocks, so a block is at most 0.4% of it. Epochs are
faster this way at the same validation RMSE (``benchmarks/bench_scale.py``; a test
checks the accuracy on small data).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from collabfilter.errors import ConfigError

BLOCKED_FROM = 1 << 20
"""Ratings from which epochs permute blocks (about 12 MB of indices and ratings, the
size of a server's last-level cache); below, an exact permutation is cheap."""

MAX_BLOCK = 64
MIN_BLOCKS_PER_BATCH = 256


def block_size(n_ratings: int, batch_size: int) -> int:
    """Ratings per block: 1 (exact permutations) for small data, else the largest power
    of two up to 64 that divides the batch size and leaves 256 blocks per batch."""
    if n_ratings < BLOCKED_FROM:
        return 1
    block = math.gcd(batch_size, MAX_BLOCK)
    while block > 1 and batch_size // block < MIN_BLOCKS_PER_BATCH:
        block //= 2
    return block


class EpochOrder:
    """Epoch orders as positions into a storage order of the ratings.

    Args:
        n_ratings: ratings in the data.
        batch_size: ratings per batch (the last batch of an epoch may be smaller).
        generator: draws the storage order (when blocked) and, later, each epoch.
        block: ratings per block; by default :func:`block_size`.
    """

    def __init__(
        self, n_ratings: int, batch_size: int, generator: torch.Generator, block: int | None = None
    ) -> None:
        self.n_ratings = n_ratings
        self.block = block_size(n_ratings, batch_size) if block is None else block
        if self.block < 1 or batch_size % self.block:
            raise ConfigError(
                f"shuffle_block must divide the batch size {batch_size}, got {self.block}"
            )
        self.storage: Tensor | None = None
        """Data row of each stored position (int64); None when stored as given."""
        if self.block > 1:
            self.storage = torch.randperm(n_ratings, generator=generator)

    def store(self, column: Tensor) -> Tensor:
        """A per-rating column in storage order."""
        if self.storage is None:
            return column
        return column.index_select(0, self.storage.to(column.device))

    def draw(self, generator: torch.Generator) -> Tensor:
        """One epoch: stored positions (int64) in visiting order; batch ``k`` is the
        slice ``[k * batch_size, (k + 1) * batch_size)`` (a whole number of blocks)."""
        if self.block == 1:
            return torch.randperm(self.n_ratings, generator=generator)
        n_blocks = self.n_ratings // self.block
        starts = torch.randperm(n_blocks, generator=generator).mul_(self.block)
        runs = starts.unsqueeze(1) + torch.arange(self.block)
        # the ratings past the last whole block close the epoch's last batch
        tail = torch.arange(n_blocks * self.block, self.n_ratings)
        return torch.cat([runs.view(-1), tail])
