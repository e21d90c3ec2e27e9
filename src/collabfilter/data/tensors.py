"""Training tensors built once, and shuffled batches sliced from them.

The tutorials' ``DataLoader`` over a ``Dataset`` calls ``__getitem__`` once per rating
and collates Python objects; at batch size 64 that alone caps training at a few
thousand ratings per second. Here the three columns live in tensors, each epoch draws
one seeded permutation, and a batch is three slices of the permuted columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
        # int64 indices: what index_select and index_add_ take without conversion.
        self.user_idx = torch.from_numpy(ratings.user_idx).to(self.device, torch.int64)
        self.item_idx = torch.from_numpy(ratings.item_idx).to(self.device, torch.int64)
        self.rating = torch.from_numpy(ratings.rating).to(self.device, torch.float32)
        self.n_users = ratings.n_users
        self.n_items = ratings.n_items

    def __len__(self) -> int:
        return int(self.rating.shape[0])

    def user_counts(self) -> Tensor:
        """Ratings per user index in these tensors."""
        return torch.bincount(self.user_idx, minlength=self.n_users)

    def item_counts(self) -> Tensor:
        """Ratings per item index in these tensors."""
        return torch.bincount(self.item_idx, minlength=self.n_items)

    def batches(
        self, batch_size: int, *, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Batches in a random order (one ``randperm`` per call) or, without a
        generator, in storage order (evaluation)."""
        if generator is None:
            users, items, ratings = self.user_idx, self.item_idx, self.rating
        else:
            order = torch.randperm(len(self), generator=generator).to(self.device)
            # One gather per column per epoch; batches are then contiguous slices.
            users, items, ratings = self.user_idx[order], self.item_idx[order], self.rating[order]
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield Batch(users[start:stop], items[start:stop], ratings[start:stop])

    def n_batches(self, batch_size: int) -> int:
        """Batches per epoch."""
        return -(-len(self) // batch_size)
