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
from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.runtime import compile_parallel, use_threads

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
        if self.block < 1 or self.block & (self.block - 1) or batch_size % self.block:
            raise ConfigError(
                f"shuffle_block must be a power of two dividing the batch size {batch_size}, "
                f"got {self.block}"
            )
        self._storage: Tensor | None = None
        if self.block > 1:  # int32 positions: half the memory, the same permutation
            dtype = torch.int32 if n_ratings < 2**31 else torch.int64
            self._storage = torch.randperm(n_ratings, generator=generator, dtype=dtype)

    def stored(self, data: RatingTensors) -> tuple[Tensor, Tensor, Tensor]:
        """The user, item and rating columns in storage order: the one copy of the
        ratings a run makes (none when stored as given). Called once: the storage
        permutation is dropped afterwards, as nothing else needs it."""
        columns = (data.user_idx, data.item_idx, data.rating)
        storage, self._storage = self._storage, None
        if self.block == 1:
            return columns
        if storage is None:
            raise RuntimeError("an epoch order's storage is taken once")
        if data.device.type != "cpu":
            index = storage.to(data.device)
            users, items, rating = (column.index_select(0, index) for column in columns)
            return users, items, rating
        users, items, rating = (torch.empty_like(column) for column in columns)
        use_threads()
        _gathers()(storage.numpy(), *(c.numpy() for c in (*columns, users, items, rating)))
        return users, items, rating

    def draw_blocks(self, generator: torch.Generator) -> Tensor:
        """One epoch as the stored start positions (int64) of its blocks in visiting
        order; the ratings past the last whole block (:attr:`tail`) close the epoch.
        A step that reads the stored columns itself needs only these, not a position
        per rating."""
        if self.block == 1:
            return torch.randperm(self.n_ratings, generator=generator)
        n_blocks = self.n_ratings // self.block
        return torch.randperm(n_blocks, generator=generator).mul_(self.block)

    @property
    def tail(self) -> range:
        """Stored positions past the last whole block, visited last in every epoch."""
        return range(self.n_ratings - self.n_ratings % self.block, self.n_ratings)

    def draw(self, generator: torch.Generator) -> Tensor:
        """One epoch: stored positions (int64) in visiting order; batch ``k`` is the
        slice ``[k * batch_size, (k + 1) * batch_size)`` (a whole number of blocks)."""
        starts = self.draw_blocks(generator)
        if self.block == 1:
            return starts
        runs = starts.unsqueeze(1) + torch.arange(self.block)
        tail = torch.arange(self.tail.start, self.tail.stop)
        return torch.cat([runs.view(-1), tail])


@cache
def _gathers() -> Callable[..., None]:
    """The storage copy on the CPU, compiled on first use
    (:func:`collabfilter.runtime.compile_parallel`)."""
    return compile_parallel(_gather_columns)  # type: ignore[no-any-return]


prange = range  # numba's parallel range, bound by compile_parallel


def _gather_columns(
    index: np.ndarray, users: np.ndarray, items: np.ndarray, rating: np.ndarray,
    out_users: np.ndarray, out_items: np.ndarray, out_rating: np.ndarray,
) -> None:  # fmt: skip
    """The three columns at ``index`` in one parallel pass (one read of the index,
    where ``index_select`` reads it once a column on one thread)."""
    for k in prange(index.shape[0]):
        row = index[k]
        out_users[k] = users[row]
        out_items[k] = items[row]
        out_rating[k] = rating[row]
