"""Seeded train/validation splits of a :class:`~collabfilter.data.ratings.Ratings`.

Every split returns a :class:`Split` whose two parts are disjoint, cover the input, and
share its vocabularies, plus a :class:`SplitReport` that counts what a model cannot
learn: validation users and items absent from training. Random draws use NumPy's
``RandomState``, whose stream is frozen across NumPy versions, so a seed gives the same
split everywhere (``split_random(ml100k, 0.1, seed=42, keep_known=False)`` is exactly
the shared ``ml-100k-r90`` benchmark split).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from collabfilter.data.ratings import Ratings
from collabfilter.errors import SplitError


@dataclass(frozen=True)
class SplitReport:
    """What a split did and what it leaves unpredictable.

    Attributes:
        method: how the split was made, with its parameters.
        n_train: ratings in the training part.
        n_valid: ratings in the validation part.
        moved_to_train: validation ratings moved to training so that their user or item
            is known to the model (``keep_known=True``).
        unseen_users: users with validation ratings but none in training.
        unseen_items: items with validation ratings but none in training.
    """

    method: str
    n_train: int
    n_valid: int
    moved_to_train: int
    unseen_users: int
    unseen_items: int

    def __str__(self) -> str:
        moved = f", {self.moved_to_train} moved to train" if self.moved_to_train else ""
        return (
            f"{self.method}: {self.n_train:,} train / {self.n_valid:,} valid{moved}; "
            f"validation users unseen in train: {self.unseen_users}, "
            f"items unseen: {self.unseen_items}"
        )


@dataclass(frozen=True)
class Split:
    """A training part and a validation part of the same ratings."""

    train: Ratings
    valid: Ratings
    report: SplitReport

    def __iter__(self) -> Iterator[Ratings]:
        """Unpack as ``train, valid = split``."""
        yield self.train
        yield self.valid


def make_split(ratings: Ratings, valid_mask: np.ndarray, method: str, moved: int = 0) -> Split:
    """Build a :class:`Split` from a boolean validation mask and count unseen ids."""
    train, valid = ratings.subset(~valid_mask), ratings.subset(valid_mask)
    unseen_users = np.setdiff1d(np.unique(valid.user_idx), np.unique(train.user_idx)).size
    unseen_items = np.setdiff1d(np.unique(valid.item_idx), np.unique(train.item_idx)).size
    report = SplitReport(
        method=method,
        n_train=len(train),
        n_valid=len(valid),
        moved_to_train=moved,
        unseen_users=int(unseen_users),
        unseen_items=int(unseen_items),
    )
    return Split(train, valid, report)


def split_random(
    ratings: Ratings, valid_pct: float = 0.1, *, seed: int = 42, keep_known: bool = True
) -> Split:
    """Hold out a random ``valid_pct`` of the ratings (fastai's ``RandomSplitter``).

    With ``keep_known`` (the default), a validation rating is moved back to training
    for each user or item that would otherwise have none there, since a model cannot
    predict from an embedding it never trained; the report counts the moves.

    Raises:
        SplitError: unless ``0 < valid_pct < 1``.
    """
    if not 0.0 < valid_pct < 1.0:
        raise SplitError(f"valid_pct must lie strictly between 0 and 1, got {valid_pct}")
    order = np.random.RandomState(seed).permutation(len(ratings))
    valid_mask = np.zeros(len(ratings), dtype=bool)
    valid_mask[order[: int(valid_pct * len(ratings))]] = True
    moved = _move_unseen_to_train(ratings, valid_mask, order) if keep_known else 0
    method = f"random valid_pct={valid_pct:g} seed={seed}"
    return make_split(ratings, valid_mask, method, moved)


def split_cold_items(ratings: Ratings, frac: float = 0.1, *, seed: int = 42) -> Split:
    """Hold out every rating of a random ``frac`` of the items: cold items, known to
    the vocabulary (and to side features) but without a training rating, as a new film
    is. The report counts them as unseen items.

    Raises:
        SplitError: unless ``0 < frac < 1``, or when it would hold out every item.
    """
    return _split_cold(ratings, "item", frac, seed)


def split_cold_users(ratings: Ratings, frac: float = 0.1, *, seed: int = 42) -> Split:
    """Hold out every rating of a random ``frac`` of the users (see
    :func:`split_cold_items`)."""
    return _split_cold(ratings, "user", frac, seed)


def _split_cold(ratings: Ratings, side: str, frac: float, seed: int) -> Split:
    if not 0.0 < frac < 1.0:
        raise SplitError(f"frac must lie strictly between 0 and 1, got {frac}")
    idx = ratings.item_idx if side == "item" else ratings.user_idx
    present = np.unique(idx)
    n_cold = int(round(frac * len(present)))
    if not 0 < n_cold < len(present):
        raise SplitError(
            f"frac={frac:g} of {len(present):,} {side}s holds out {n_cold}: pick a share that "
            f"leaves some {side}s on each side"
        )
    cold = np.random.RandomState(seed).permutation(present)[:n_cold]
    valid_mask = np.isin(idx, cold)
    return make_split(ratings, valid_mask, f"cold {side}s frac={frac:g} seed={seed}")


def train_test_split(
    ratings: Ratings, test_size: float | int = 0.2, *, seed: int = 42, keep_known: bool = True
) -> Split:
    """scikit-learn style: ``test_size`` is a fraction in (0, 1) or a number of ratings."""
    n = len(ratings)
    if isinstance(test_size, int | np.integer) and not isinstance(test_size, bool):
        if not 0 < test_size < n:
            raise SplitError(f"test_size must lie in 1..{n - 1} ratings, got {test_size}")
        fraction = (int(test_size) + 0.5) / n
    else:
        fraction = float(test_size)
    return split_random(ratings, fraction, seed=seed, keep_known=keep_known)


def _move_unseen_to_train(ratings: Ratings, valid_mask: np.ndarray, order: np.ndarray) -> int:
    """Move one validation rating of each unseen user, then of each unseen item."""
    moved = 0
    for codes, size in ((ratings.user_idx, ratings.n_users), (ratings.item_idx, ratings.n_items)):
        in_train = np.bincount(codes[~valid_mask], minlength=size) > 0
        candidates = order[valid_mask[order] & ~in_train[codes[order]]]  # in shuffled order
        _, first = np.unique(codes[candidates], return_index=True)
        valid_mask[candidates[first]] = False
        moved += len(first)
    return moved


def split_kfold(ratings: Ratings, n_folds: int = 5, *, seed: int = 42) -> list[Split]:
    """``n_folds`` splits whose validation parts are disjoint and together cover the data.

    Raises:
        SplitError: unless ``2 <= n_folds <= len(ratings)``.
    """
    if not 2 <= n_folds <= len(ratings):
        raise SplitError(f"n_folds must lie in 2..{len(ratings)}, got {n_folds}")
    order = np.random.RandomState(seed).permutation(len(ratings))
    splits = []
    for fold, rows in enumerate(np.array_split(order, n_folds), start=1):
        valid_mask = np.zeros(len(ratings), dtype=bool)
        valid_mask[rows] = True
        splits.append(make_split(ratings, valid_mask, f"kfold {fold}/{n_folds} seed={seed}"))
    return splits


def split_by_user(
    ratings: Ratings,
    *,
    n: int | None = None,
    frac: float | None = None,
    seed: int = 42,
    min_train: int = 1,
) -> Split:
    """Hold out ``n`` random ratings (or a fraction ``frac``) of every user.

    Each user keeps at least ``min_train`` ratings in training; users with fewer
    ratings than that contribute none to validation. Used for top-N evaluation.
    """
    key = np.random.RandomState(seed).random_sample(len(ratings))
    mask = _hold_out_last(ratings, key, n, frac, min_train)
    amount = f"n={n}" if n is not None else f"frac={frac:g}"
    return make_split(ratings, mask, f"per-user random {amount} seed={seed}")


def split_temporal(ratings: Ratings, valid_pct: float = 0.1) -> Split:
    """Hold out the latest ``valid_pct`` of all ratings by timestamp (ties by position).

    Raises:
        SplitError: if the ratings carry no timestamps or ``valid_pct`` is not in (0, 1).
    """
    timestamp = _timestamps(ratings)
    if not 0.0 < valid_pct < 1.0:
        raise SplitError(f"valid_pct must lie strictly between 0 and 1, got {valid_pct}")
    order = np.argsort(timestamp, kind="stable")
    valid_mask = np.zeros(len(ratings), dtype=bool)
    n_valid = int(valid_pct * len(ratings))
    valid_mask[order[len(order) - n_valid :]] = True
    return make_split(ratings, valid_mask, f"temporal valid_pct={valid_pct:g}")


def split_temporal_by_user(
    ratings: Ratings, *, n: int | None = None, frac: float | None = None, min_train: int = 1
) -> Split:
    """Hold out each user's latest ``n`` ratings (or fraction ``frac``) by timestamp."""
    mask = _hold_out_last(ratings, _timestamps(ratings), n, frac, min_train)
    amount = f"n={n}" if n is not None else f"frac={frac:g}"
    return make_split(ratings, mask, f"per-user temporal {amount}")


def _timestamps(ratings: Ratings) -> np.ndarray:
    if ratings.timestamp is None:
        raise SplitError("a temporal split needs timestamps; load them with timestamp=...")
    return ratings.timestamp


def _hold_out_last(
    ratings: Ratings, key: np.ndarray, n: int | None, frac: float | None, min_train: int
) -> np.ndarray:
    """Mask of each user's ratings with the largest ``key`` (n or frac of them)."""
    if (n is None) == (frac is None):
        raise SplitError("give exactly one of n (ratings per user) or frac (fraction per user)")
    if n is not None and n < 1:
        raise SplitError(f"n must be >= 1, got {n}")
    if frac is not None and not 0.0 < frac < 1.0:
        raise SplitError(f"frac must lie strictly between 0 and 1, got {frac}")
    if min_train < 0:
        raise SplitError(f"min_train must be >= 0, got {min_train}")
    users = ratings.user_idx
    counts = np.bincount(users, minlength=ratings.n_users)
    order = np.lexsort((np.arange(len(users)), key, users))  # by user, then key, then position
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - starts[users[order]]
    if n is not None:
        wanted = np.full_like(counts, n)
    else:
        wanted = np.rint(float(frac or 0.0) * counts).astype(np.int64)
    held = np.clip(np.minimum(wanted, counts - min_train), 0, None)
    return np.asarray(rank >= (counts - held)[users])
