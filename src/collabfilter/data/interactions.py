"""Who rated what in training, and how: the part of the data a trained model keeps.

Recommendation masks the items each user already rated; fold-in, explanations and
interpretation need per-item counts and means; ranking models score a user from their
rated items. None of that needs the training ``Ratings`` object itself, so a model
file can carry this compact form instead: the ratings as a users x items CSR matrix
(row pointers, item indices, ratings), with the rating scale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from collabfilter.data.encoding import INDEX_DTYPE
from collabfilter.data.ratings import Ratings, RatingScale
from collabfilter.errors import DataError
from collabfilter.runtime import compile_parallel, use_threads


@dataclass(frozen=True, eq=False)
class Interactions:
    """Training ratings by user, CSR: user ``u`` rated ``item_idx[indptr[u]:indptr[u+1]]``
    with ``rating[indptr[u]:indptr[u+1]]`` (items ascending within a user).

    Attributes:
        indptr: int64, shape ``(n_users + 1,)``.
        item_idx: int32, shape ``(n_ratings,)``.
        rating: float32, shape ``(n_ratings,)``.
        n_items: catalogue size.
        scale: the ratings' scale.
    """

    indptr: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    n_items: int
    scale: RatingScale

    def __post_init__(self) -> None:
        indptr, items = self.indptr, self.item_idx
        if indptr.ndim != 1 or len(indptr) < 1 or indptr[0] != 0:
            raise DataError("interactions: indptr must be 1-D and start at 0")
        if (np.diff(indptr) < 0).any() or indptr[-1] != len(items):
            raise DataError("interactions: indptr must rise to the number of ratings")
        if len(self.rating) != len(items):
            raise DataError("interactions: item_idx and rating must have one length")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"interactions: item indices must lie in [0, {self.n_items})")
        for array in (indptr, items, self.rating):
            array.setflags(write=False)

    @classmethod
    def from_ratings(cls, ratings: Ratings) -> Interactions:
        """The CSR form of ``ratings`` (sorted by user, then item; ratings of one pair
        keep their order)."""
        counts = np.bincount(ratings.user_idx, minlength=ratings.n_users)
        indptr = np.zeros(ratings.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        items = np.empty(len(ratings), dtype=INDEX_DTYPE)
        values = np.empty(len(ratings), dtype=np.float32)
        use_threads()
        _group_by_user()(ratings.user_idx, ratings.item_idx, ratings.rating, indptr, items, values)
        return cls(indptr, items, values, ratings.n_items, ratings.scale)

    def __len__(self) -> int:
        return len(self.item_idx)

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return len(self.indptr) - 1

    def user_idx(self) -> np.ndarray:
        """The user index of every rating (int32), aligned with ``item_idx``."""
        return np.repeat(np.arange(self.n_users, dtype=INDEX_DTYPE), self.user_counts())

    def user_counts(self) -> np.ndarray:
        """Ratings per user (int64)."""
        return np.diff(self.indptr)

    def item_counts(self) -> np.ndarray:
        """Ratings per item (int64)."""
        return np.bincount(self.item_idx, minlength=self.n_items)

    def global_mean(self) -> float:
        """Mean training rating."""
        return float(self.rating.mean(dtype=np.float64)) if len(self) else float("nan")

    def item_means(self) -> np.ndarray:
        """Mean training rating per item (NaN where there is none)."""
        sums = np.bincount(self.item_idx, weights=self.rating, minlength=self.n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(sums / self.item_counts())

    def user_means(self) -> np.ndarray:
        """Mean training rating per user (NaN where there is none)."""
        sums = np.bincount(self.user_idx(), weights=self.rating, minlength=self.n_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(sums / self.user_counts())

    def items_of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """The items one user rated and their ratings."""
        part = slice(int(self.indptr[user]), int(self.indptr[user + 1]))
        return self.item_idx[part], self.rating[part]

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ratings of several users at once: ``(row, item_idx, rating)`` where ``row``
        is each rating's position in ``users`` (no loop over users)."""
        users = np.asarray(users, dtype=np.int64)
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        row = np.repeat(np.arange(len(users)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        picks = np.repeat(starts, lengths) + offsets
        return row, self.item_idx[picks], self.rating[picks]

    def fingerprint(self) -> str:
        """SHA-256 of the ratings (who, what, how): identifies the training data."""
        digest = hashlib.sha256()
        for array in (self.indptr, self.item_idx, self.rating):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(f"{self.n_items}|{self.scale}".encode())
        return digest.hexdigest()


@cache
def _group_by_user() -> Callable[..., None]:
    """The CSR build, compiled on first use (:func:`collabfilter.runtime.compile_parallel`)."""
    return compile_parallel(_group)  # type: ignore[no-any-return]


prange = range  # numba's parallel range, bound by compile_parallel


def _group(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, indptr: np.ndarray,
    out_items: np.ndarray, out_ratings: np.ndarray,
) -> None:  # fmt: skip
    """A counting sort by user, then each user's ratings sorted by item, users in
    parallel: no temporary the size of the ratings, where one sort of a combined key
    takes two of 8 bytes a rating and O(n log n) time."""
    fill = indptr[:-1].copy()
    for k in range(users.shape[0]):
        row = users[k]
        out_items[fill[row]] = items[k]
        out_ratings[fill[row]] = ratings[k]
        fill[row] += 1
    for row in prange(indptr.shape[0] - 1):
        start, stop = indptr[row], indptr[row + 1]
        order = np.argsort(out_items[start:stop], kind="mergesort")
        out_items[start:stop] = out_items[start:stop][order]
        out_ratings[start:stop] = out_ratings[start:stop][order]
