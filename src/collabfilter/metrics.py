"""Metrics: pure functions that return numbers and never print.

Rating prediction (RMSE, MAE, error by bucket) and top-N ranking (precision, recall,
NDCG, MAP, hit rate, catalogue coverage, popularity share). Every function refuses
misaligned inputs instead of broadcasting them, and ignores nothing silently: NaN
predictions are an error unless the caller drops them first.

Top-N evaluation never holds a users x items array: the held-out and the seen items
are :class:`ItemSets` (CSR rows), users are scored a block at a time by any
``scores_for(block_user_idx) -> Tensor`` and the metrics are summed block by block
(ml-25m's 162,541 x 59,047 would be 10 GB as one boolean matrix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.errors import DataError

USER_BLOCK = 1024
"""Users scored at once in top-N evaluation (a block of 1,024 x 59,047 float32 scores
is 240 MB)."""


def _aligned(predictions: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
    actual = np.asarray(truth, dtype=np.float64).reshape(-1)
    if predicted.shape != actual.shape:
        raise DataError(
            f"predictions and truth must align: {predicted.shape[0]} vs {actual.shape[0]} values"
        )
    if predicted.size == 0:
        raise DataError("no predictions to evaluate")
    if np.isnan(predicted).any():
        raise DataError(
            f"{int(np.isnan(predicted).sum())} predictions are NaN (unknown users or items?); "
            "drop them or predict with a fallback"
        )
    return predicted, actual


def mse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error."""
    predicted, actual = _aligned(predictions, truth)
    return float(np.mean((predicted - actual) ** 2))


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(predictions, truth)))


def mae(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error."""
    predicted, actual = _aligned(predictions, truth)
    return float(np.mean(np.abs(predicted - actual)))


def error_metrics(predictions: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"rmse", "mae", "mse"}`` in one call."""
    return {
        "rmse": rmse(predictions, truth),
        "mae": mae(predictions, truth),
        "mse": mse(predictions, truth),
    }


def error_by_bucket(
    predictions: np.ndarray,
    truth: np.ndarray,
    counts: np.ndarray,
    edges: tuple[int, ...] = (0, 1, 6, 21, 101),
    *,
    label: str = "train ratings",
) -> pd.DataFrame:
    """RMSE/MAE per bucket of ``counts`` (e.g. the item's training ratings per pair).

    Buckets are ``[edges[k], edges[k+1])`` and a last open one; ``0`` alone is the cold
    bucket (never seen in training). Empty buckets are kept with a count of 0.
    """
    predicted, actual = _aligned(predictions, truth)
    counts = np.asarray(counts).reshape(-1)
    if counts.shape != predicted.shape:
        raise DataError("counts must align with predictions")
    bounds = list(edges) + [np.iinfo(np.int64).max]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (counts >= low) & (counts < high)
        name = (
            f"{low}"
            if high == low + 1
            else (f"{low}+" if high == bounds[-1] else f"{low}-{high - 1}")
        )
        errors = predicted[inside] - actual[inside]
        rows.append(
            {
                label: name,
                "ratings": int(inside.sum()),
                "rmse": float(np.sqrt(np.mean(errors**2))) if inside.any() else float("nan"),
                "mae": float(np.mean(np.abs(errors))) if inside.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- top-N
@dataclass(frozen=True)
class ItemSets:
    """A set of items per user, as CSR rows: user ``u`` has
    ``indices[indptr[u]:indptr[u + 1]]`` (sorted, no repeats).

    Attributes:
        indptr: int64, shape ``(n_users + 1,)``.
        indices: int64 item indices.
        n_items: size of the item index space.
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_items: int

    @classmethod
    def from_pairs(
        cls, user_idx: np.ndarray, item_idx: np.ndarray, n_users: int, n_items: int
    ) -> ItemSets:
        """The sets of (user, item) pairs; repeats are kept once.

        Raises:
            DataError: on misaligned arrays or indices outside the sizes.
        """
        users = np.asarray(user_idx, dtype=np.int64).reshape(-1)
        items = np.asarray(item_idx, dtype=np.int64).reshape(-1)
        if users.shape != items.shape:
            raise DataError(f"user_idx and item_idx must align: {len(users)} vs {len(items)}")
        for name, values, size in (("user_idx", users, n_users), ("item_idx", items, n_items)):
            if values.size and (values.min() < 0 or values.max() >= size):
                raise DataError(f"{name} must lie in [0, {size})")
        keys = np.unique(users * n_items + items)
        counts = np.bincount(keys // n_items, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, keys % n_items, n_items)

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        """Items per user, int64."""
        return np.diff(self.indptr)

    def block(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of the given users: (position of the user in ``users``, item)."""
        users = np.asarray(users, dtype=np.int64)
        lengths = self.indptr[users + 1] - self.indptr[users]
        rows = np.repeat(np.arange(len(users)), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return rows, self.indices[np.repeat(self.indptr[users], lengths) + offsets]

    def mask(self, scores: Tensor, users: np.ndarray) -> None:
        """Set each row's items to ``-inf`` in place (``scores``: ``(len(users), n_items)``)."""
        rows, items = self.block(users)
        scores[torch.from_numpy(rows), torch.from_numpy(items)] = -torch.inf

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean ``(len(users), m)``: is ``items[r, c]`` in the set of ``users[r]``?"""
        rows, members = self.block(users)
        dense = np.zeros((len(users), self.n_items), dtype=bool)  # one block only
        dense[rows, members] = True
        return np.take_along_axis(dense, items, axis=1)


class RatedPairs(Protocol):
    """Rated (user, item) pairs with their ratings, as arrays or tensors (on any device)
    aligned by position: a :class:`~collabfilter.data.Ratings` or its tensors."""

    @property
    def user_idx(self) -> np.ndarray | Tensor: ...
    @property
    def item_idx(self) -> np.ndarray | Tensor: ...
    @property
    def rating(self) -> np.ndarray | Tensor: ...
    @property
    def n_users(self) -> int: ...
    @property
    def n_items(self) -> int: ...


def _numpy(values: np.ndarray | Tensor) -> np.ndarray:
    return values.cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)


def seen_items(ratings: RatedPairs) -> ItemSets:
    """The items each user rated, as CSR rows."""
    users, items = _numpy(ratings.user_idx), _numpy(ratings.item_idx)
    return ItemSets.from_pairs(users, items, ratings.n_users, ratings.n_items)


def relevant_items(test: RatedPairs, relevance: float | None) -> ItemSets:
    """The held-out items rated at least ``relevance`` (all of them for None)."""
    users, items = _numpy(test.user_idx), _numpy(test.item_idx)
    if relevance is not None:
        keep = _numpy(test.rating) >= relevance
        users, items = users[keep], items[keep]
    return ItemSets.from_pairs(users, items, test.n_users, test.n_items)


def popular_items(item_counts: np.ndarray, share: float = 0.01) -> np.ndarray:
    """Boolean mask of the ``share`` most rated items (at least one; ties by index)."""
    counts = np.asarray(item_counts)
    top = max(1, int(round(share * len(counts))))
    mask = np.zeros(len(counts), dtype=bool)
    mask[np.argsort(-counts, kind="stable")[:top]] = True
    return mask


class RankingAccumulator:
    """Top-N metrics summed over blocks of users, averaged at the end.

    Args:
        ks: list lengths to report.
        n_items: catalogue size (for coverage).
        popular: boolean mask of the popular items (for ``popular_share``), or None.
    """

    def __init__(self, ks: Sequence[int], n_items: int, popular: np.ndarray | None) -> None:
        if not ks or min(ks) < 1:
            raise DataError(f"ks must be list lengths >= 1, got {list(ks)}")
        self.ks = sorted(set(int(k) for k in ks))
        self.n_items = n_items
        self.popular = popular
        names = ("precision", "recall", "ndcg", "map", "hit_rate", "popular")
        self.sums = {k: dict.fromkeys(names, 0.0) for k in self.ks}
        self.recommended = {k: np.zeros(n_items, dtype=bool) for k in self.ks}
        self.users = 0

    def add(self, top_items: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray) -> None:
        """One block: ranked items ``(n, >= max k)``, whether each is a hit, and each
        user's number of relevant items (all > 0)."""
        discounts = 1.0 / np.log2(np.arange(2, self.ks[-1] + 2))
        self.users += len(top_items)
        for k in self.ks:
            hit = hits[:, :k].astype(np.float64)
            ideal = np.cumsum(discounts[:k])[np.minimum(n_relevant, k) - 1]
            precision_at = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
            sums = self.sums[k]
            sums["precision"] += float((hit.sum(axis=1) / k).sum())
            sums["recall"] += float((hit.sum(axis=1) / n_relevant).sum())
            sums["ndcg"] += float(((hit * discounts[:k]).sum(axis=1) / ideal).sum())
            average = (precision_at * hit).sum(axis=1) / np.minimum(n_relevant, k)
            sums["map"] += float(average.sum())
            sums["hit_rate"] += float(hit.any(axis=1).sum())
            if self.popular is not None:
                sums["popular"] += float(self.popular[top_items[:, :k]].mean(axis=1).sum())
            self.recommended[k][top_items[:, :k].reshape(-1)] = True

    def result(self) -> list[dict[str, float]]:
        """One dict per ``k``: the means over users of precision, recall, ndcg, map and
        hit_rate, catalogue ``coverage`` (share of items recommended to anyone),
        ``popular_share`` (share of recommended slots taken by popular items; NaN
        without a popular mask) and the number of ``users``."""
        users = max(self.users, 1)
        rows = []
        for k in self.ks:
            sums = self.sums[k]
            row = {"k": float(k)}
            row |= {m: sums[m] / users for m in ("precision", "recall", "ndcg", "map", "hit_rate")}
            row["coverage"] = float(self.recommended[k].sum() / self.n_items)
            row["popular_share"] = (
                sums["popular"] / users if self.popular is not None else float("nan")
            )
            row["users"] = float(self.users)
            rows.append(row)
        return rows


def ranking_metrics(
    top_items: np.ndarray,
    relevant: ItemSets,
    k: int,
    *,
    popular: np.ndarray | None = None,
) -> dict[str, float]:
    """Top-N metrics of ranked lists against held-out items.

    Args:
        top_items: item indices ranked best first, shape ``(users, >= k)``.
        relevant: the held-out items that count as hits, one row per row of
            ``top_items``.
        k: list length evaluated.
        popular: boolean mask over items of the "popular" ones (see
            :func:`popular_items`), for ``popular_share``.

    Returns:
        Means over users with at least one relevant item of ``precision``, ``recall``,
        ``ndcg``, ``map`` and ``hit_rate`` at ``k``, plus ``coverage``, ``popular_share``
        and ``users`` (see :meth:`RankingAccumulator.result`).

    Raises:
        DataError: on misaligned inputs.
    """
    if top_items.ndim != 2 or top_items.shape[1] < k:
        raise DataError(f"top_items must be (users, >= {k}), got {top_items.shape}")
    if relevant.n_users != top_items.shape[0]:
        raise DataError("top_items and relevant must have one row per user")
    users = np.flatnonzero(relevant.lengths() > 0)
    accumulator = RankingAccumulator([k], relevant.n_items, popular)
    if len(users):
        hits = relevant.contains(users, top_items[users, :k])
        accumulator.add(top_items[users], hits, relevant.lengths()[users])
    result = accumulator.result()[0]
    del result["k"]
    return result


def evaluate_top_n(
    scores_for: Callable[[np.ndarray], Tensor],
    seen: ItemSets,
    relevant: ItemSets,
    *,
    ks: Sequence[int] = (10, 20),
    popular: np.ndarray | None = None,
    block_size: int = USER_BLOCK,
) -> list[dict[str, float]]:
    """Top-N metrics of a scorer, users scored a block at a time.

    Only users with a relevant item are scored. Each block's scores are masked with the
    user's ``seen`` items (never recommended), ranked by ``topk`` and compared with
    ``relevant``; nothing larger than one block's scores is ever held.

    Args:
        scores_for: scores of every item for a block of user indices, a float tensor
            ``(len(block), n_items)`` that this function may modify.
        seen: items each user may not be recommended (their training items).
        relevant: held-out items that count as hits.
        ks: list lengths to report.
        popular: boolean mask of popular items, for ``popular_share``.
        block_size: users per block.

    Returns:
        One dict per ``k`` (see :meth:`RankingAccumulator.result`).

    Raises:
        DataError: if ``seen`` and ``relevant`` disagree on the sizes, or a block's
            scores have the wrong shape.
    """
    if (seen.n_users, seen.n_items) != (relevant.n_users, relevant.n_items):
        raise DataError("seen and relevant must cover the same users and items")
    if max(ks) > relevant.n_items:
        raise DataError(f"lists of {max(ks)} items need as many items, not {relevant.n_items}")
    accumulator = RankingAccumulator(ks, relevant.n_items, popular)
    users = np.flatnonzero(relevant.lengths() > 0)
    k = max(ks)
    for start in range(0, len(users), block_size):
        block = users[start : start + block_size]
        scores = scores_for(block)
        if tuple(scores.shape) != (len(block), relevant.n_items):
            raise DataError(
                f"scores_for returned {tuple(scores.shape)} for {len(block)} users; "
                f"expected ({len(block)}, {relevant.n_items})"
            )
        seen.mask(scores, block)
        top = torch.topk(scores, k, dim=1).indices.numpy()
        accumulator.add(top, relevant.contains(block, top), relevant.lengths()[block])
    return accumulator.result()
