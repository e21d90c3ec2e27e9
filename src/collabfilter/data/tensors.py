"""Training tensors built once, and shuffled batches sliced from them.

The tutorials' ``DataLoader`` over a ``Dataset`` calls ``__getitem__`` once per rating
and collates Python objects; at batch size 64 that alone caps training at a few
thousand ratings per second. Here the three columns live in tensors, each epoch draws
one seeded permutation, and a batch is three slices of the permuted columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.ratings import Ratings


@dataclass(frozen=True)
class Batch:
    """One batch: int64 user and item indices and float32 ratings, shape ``(size,)``."""

    user_idx: Tensor
    item_idx: Tensor
    rating: Tensor

    def __len__(self) -> int:
        return int(self.rating.shape[0])


class RatingTensors:
    """The index and rating columns of a :class:`Ratings` as tensors on one device."""

    def __init__(self, ratings: Ratings, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        # Stored as int32 (half the memory of int64); batches are widened to the int64
        # that index_add_ needs for its fast path.
        self.user_idx = tensor_of(ratings.user_idx).to(self.device, torch.int32)
        self.item_idx = tensor_of(ratings.item_idx).to(self.device, torch.int32)
        self.rating = tensor_of(ratings.rating).to(self.device, torch.float32)
        self.n_users = ratings.n_users
        self.n_items = ratings.n_items
        self._user_counts: Tensor | None = None
        self._item_counts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.rating.shape[0])

    def user_counts(self) -> Tensor:
        """Ratings per user index in these tensors (counted once: set-up asks often)."""
        if self._user_counts is None:
            self._user_counts = torch.bincount(self.user_idx, minlength=self.n_users)
        return self._user_counts

    def item_counts(self) -> Tensor:
        """Ratings per item index in these tensors (counted once)."""
        if self._item_counts is None:
            self._item_counts = torch.bincount(self.item_idx, minlength=self.n_items)
        return self._item_counts

    def counts(self, side: str) -> Tensor:
        """Ratings per row of the ``"user"`` or ``"item"`` side."""
        return self.user_counts() if side == "user" else self.item_counts()

    def batches(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Batches in a random order (one ``randperm`` per call) or, without a
        generator, in storage order (evaluation)."""
        order = self.shuffled_order(generator) if generator is not None else None
        for start in range(0, len(self), batch_size):
            if order is None:
                rows = slice(start, start + batch_size)
                users, items = self.user_idx[rows], self.item_idx[rows]
                yield Batch(users.long(), items.long(), self.rating[rows])
            else:
                yield self.take(order[start : start + batch_size])

    def shuffled_order(self, generator: torch.Generator) -> Tensor:
        """A random permutation of the rows (int64), drawn from ``generator``."""
        return torch.randperm(len(self), generator=generator).to(self.device)

    def take(self, rows: Tensor) -> Batch:
        """The batch of the given rows. Gathering per batch rather than per epoch keeps
        the extra memory at one batch, whatever the data size."""
        return Batch(
            self.user_idx.index_select(0, rows).long(),
            self.item_idx.index_select(0, rows).long(),
            self.rating.index_select(0, rows),
        )

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch."""
        return -(-len(self) // batch_size)


def tensor_of(values: np.ndarray) -> Tensor:
    """``values`` as a tensor sharing their memory, or a copy of them when they are
    read-only (memory-mapped or Arrow-backed columns): torch has no read-only tensors,
    so sharing would let a write through the tensor change the caller's data."""
    return torch.from_numpy(values if values.flags.writeable else values.copy())
