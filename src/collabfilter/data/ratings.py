"""The ratings object every later stage consumes: codes, vocabularies, scale, report.

A :class:`Ratings` holds one rating per (user, item) pair as flat arrays (int32 codes,
float32 ratings, optional int64 timestamps) beside the two vocabularies that map codes
back to raw ids and titles. Splits share the vocabularies of the full data, so every
user and item keeps one index for the life of a model.
"""

from __future__ import annotations

import copy as _copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from collabfilter.data.csr import SparseRows
from collabfilter.data.encoding import INDEX_DTYPE, Vocabulary
from collabfilter.data.features import SideFeatures
from collabfilter.data.io import (
    ColumnMap,
    IdType,
    LoadReport,
    read_csv,
    read_parquet,
    validate_frame,
    write_frame_parquet,
)
from collabfilter.errors import DataError, DataWarning, DuplicateRatingsError

DuplicatePolicy = Literal["last", "first", "mean", "error"]
"""How repeated (user, item) pairs are resolved.

``"last"`` keeps the latest rating (by timestamp when there is one, then by position),
``"first"`` the earliest, ``"mean"`` averages them (keeping the latest timestamp), and
``"error"`` refuses the data. Whatever is dropped is counted in the load report and
announced with a :class:`~collabfilter.errors.DataWarning`.
"""

_DUPLICATE_POLICIES = ("last", "first", "mean", "error")


@dataclass(frozen=True)
class RatingScale:
    """The range ratings live in, and their step (1 for stars, 0.5 for half stars).

    Attributes:
        low: the smallest possible rating.
        high: the largest possible rating.
        step: the spacing of possible ratings, or None when ratings are continuous.
    """

    low: float
    high: float
    step: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
            raise DataError(f"rating scale needs finite low < high, got {self.low}..{self.high}")
        if self.step is not None and not (np.isfinite(self.step) and self.step > 0):
            raise DataError(f"rating scale step must be positive and finite, got {self.step}")

    @classmethod
    def infer(cls, ratings: np.ndarray) -> RatingScale:
        """The scale seen in the data: its min and max, and a step of 1 or 0.5 if it fits."""
        low, high = float(ratings.min()), float(ratings.max())
        if low == high:
            high = low + 1.0
        step = next((s for s in (1.0, 0.5) if np.all(np.mod(ratings, s) == 0)), None)
        return cls(low, high, step)

    def __str__(self) -> str:
        step = f" in steps of {self.step:g}" if self.step is not None else ""
        return f"{self.low:g}..{self.high:g}{step}"


@dataclass(frozen=True)
class RatingsSummary:
    """Headline figures of a ratings set (what ``make demo`` prints first)."""

    n_ratings: int
    n_users: int
    n_items: int
    density: float
    mean: float
    std: float
    scale: RatingScale
    histogram: pd.Series
    ratings_per_user: tuple[int, float, int]
    ratings_per_item: tuple[int, float, int]
    time_range: tuple[pd.Timestamp, pd.Timestamp] | None
    report: LoadReport


class Ratings:
    """Explicit ratings encoded to dense indices.

    Args:
        user_idx: int32 user index per rating, in ``[0, len(users))``.
        item_idx: int32 item index per rating, in ``[0, len(items))``.
        rating: float32 rating per rating.
        users: vocabulary of users (covers the whole data set, not only this part).
        items: vocabulary of items, with titles when known.
        timestamp: optional int64 unix seconds per rating.
        scale: the rating scale; inferred from the data when not given.
        report: what loading dropped or changed.
        user_features, item_features: side information about the users or items
            (:class:`~collabfilter.data.features.SideFeatures`), shared by every part
            of a split.

    Raises:
        DataError: on misaligned arrays or indices outside the vocabularies.
    """

    def __init__(
        self,
        user_idx: np.ndarray,
        item_idx: np.ndarray,
        rating: np.ndarray,
        *,
        users: Vocabulary,
        items: Vocabulary,
        timestamp: np.ndarray | None = None,
        scale: RatingScale | None = None,
        report: LoadReport | None = None,
        user_features: SideFeatures | None = None,
        item_features: SideFeatures | None = None,
    ) -> None:
        self.user_idx = np.ascontiguousarray(user_idx, dtype=INDEX_DTYPE)
        self.item_idx = np.ascontiguousarray(item_idx, dtype=INDEX_DTYPE)
        self.rating = np.ascontiguousarray(rating, dtype=np.float32)
        self.timestamp = None if timestamp is None else np.ascontiguousarray(timestamp, np.int64)
        self.users = users
        self.items = items
        self._check_alignment()
        if scale is None:
            if len(self.rating) == 0:
                raise DataError("cannot infer a rating scale from no ratings; pass scale=")
            scale = RatingScale.infer(self.rating)
        self.scale = scale
        self.report = report or LoadReport(source="arrays", rows_read=len(self.rating))
        self.user_features = user_features
        self.item_features = item_features

    def _check_alignment(self) -> None:
        lengths = {len(self.user_idx), len(self.item_idx), len(self.rating)}
        if self.timestamp is not None:
            lengths.add(len(self.timestamp))
        if len(lengths) != 1:
            raise DataError(f"ratings arrays must have one length, got {sorted(lengths)}")
        for name, codes, vocab in (
            ("user_idx", self.user_idx, self.users),
            ("item_idx", self.item_idx, self.items),
        ):
            if codes.size and (codes.min() < 0 or codes.max() >= len(vocab)):
                raise DataError(f"{name} must lie in [0, {len(vocab)}) to match its vocabulary")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_df(
        cls,
        frame: pd.DataFrame,
        *,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        title: str | None = None,
        scale: tuple[float, float] | RatingScale | None = None,
        duplicates: DuplicatePolicy = "last",
        ids: IdType = "auto",
        user_features: pd.DataFrame | SideFeatures | None = None,
        item_features: pd.DataFrame | SideFeatures | None = None,
    ) -> Ratings:
        """Ratings from a DataFrame whose columns are named by the keyword arguments.

        ``title`` names a column of item titles (fastai's ``item_name``). Id columns
        keep their type (text ids stay text, see :data:`~collabfilter.data.io.IdType`).
        Errors name 0-based row positions. ``user_features`` and ``item_features``
        are tables indexed by raw id (see :meth:`with_features`).
        """
        columns = ColumnMap(user, item, rating, timestamp, title, ids)
        canonical, report = validate_frame(frame, columns=columns, scale=_bounds(scale))
        ratings = cls.from_canonical(canonical, report, scale=scale, duplicates=duplicates)
        return ratings.with_features(user_features, item_features)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        *,
        sep: str = ",",
        header: bool = True,
        names: Sequence[str] | None = None,
        encoding: str = "utf-8",
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        title: str | None = None,
        scale: tuple[float, float] | RatingScale | None = None,
        duplicates: DuplicatePolicy = "last",
        ids: IdType = "auto",
        user_features: pd.DataFrame | SideFeatures | None = None,
        item_features: pd.DataFrame | SideFeatures | None = None,
    ) -> Ratings:
        """Ratings from a CSV/TSV file; errors name the file and 1-based line numbers.

        For a headerless file give ``names`` (then map fields to them) or refer to
        columns by position: ``user="0", item="1", rating="2"``. Ids keep their text
        ("007" and "7" are two users) unless every id is a plain integer or
        ``ids="int"`` asks for numbers (see :data:`~collabfilter.data.io.IdType`).
        """
        columns = ColumnMap(user, item, rating, timestamp, title, ids)
        canonical, report = read_csv(
            path,
            columns=columns,
            sep=sep,
            header=header,
            names=names,
            encoding=encoding,
            scale=_bounds(scale),
        )
        ratings = cls.from_canonical(canonical, report, scale=scale, duplicates=duplicates)
        return ratings.with_features(user_features, item_features)

    @classmethod
    def from_parquet(
        cls,
        path: str | Path,
        *,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        title: str | None = None,
        scale: tuple[float, float] | RatingScale | None = None,
        duplicates: DuplicatePolicy = "last",
        ids: IdType = "auto",
        user_features: pd.DataFrame | SideFeatures | None = None,
        item_features: pd.DataFrame | SideFeatures | None = None,
    ) -> Ratings:
        """Ratings from a parquet file (typed columns keep their type); errors name
        0-based rows."""
        columns = ColumnMap(user, item, rating, timestamp, title, ids)
        canonical, report = read_parquet(path, columns=columns, scale=_bounds(scale))
        ratings = cls.from_canonical(canonical, report, scale=scale, duplicates=duplicates)
        return ratings.with_features(user_features, item_features)

    @classmethod
    def from_canonical(
        cls,
        frame: pd.DataFrame,
        report: LoadReport,
        *,
        scale: tuple[float, float] | RatingScale | None = None,
        duplicates: DuplicatePolicy = "last",
        titles: Mapping[Any, str] | pd.Series | None = None,
    ) -> Ratings:
        """Encode a validated canonical frame (see :func:`~collabfilter.data.io.validate_frame`).

        ``titles`` maps raw item ids to titles when they come from a separate file;
        a ``title`` column in the frame is used otherwise.
        """
        if duplicates not in _DUPLICATE_POLICIES:
            raise DataError(f"duplicates must be one of {_DUPLICATE_POLICIES}, got {duplicates!r}")
        users, user_idx = Vocabulary.encode(frame["user"].to_numpy(), kind="user")
        items, item_idx = Vocabulary.encode(frame["item"].to_numpy(), kind="item")
        rating = frame["rating"].to_numpy(dtype=np.float32)
        timestamp = frame["timestamp"].to_numpy() if "timestamp" in frame else None
        keep, rating, timestamp, dropped = _resolve_duplicates(
            user_idx, item_idx, rating, timestamp, len(items), duplicates, report.source
        )
        if titles is None and "title" in frame:
            titles = _first_title_per_item(items, item_idx, frame["title"].to_numpy(dtype=object))
        if titles is not None:
            items = items.with_titles(titles)
        untitled = 0 if items.titles is None else int(pd.isna(items.titles).sum())
        report = report.with_changes(
            duplicates=dropped, duplicate_policy=duplicates, items_without_title=untitled
        )
        return cls(
            user_idx[keep],
            item_idx[keep],
            rating,
            users=users,
            items=items,
            timestamp=timestamp,
            scale=_as_scale(scale, rating),
            report=report,
        )

    # ----------------------------------------------------------------- basic views
    def __len__(self) -> int:
        return len(self.rating)

    @property
    def n_users(self) -> int:
        """Number of users in the vocabulary (all users of the data set)."""
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of items in the vocabulary (all items of the data set)."""
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"Ratings({len(self):,} ratings, {self.n_users:,} users, {self.n_items:,} items, "
            f"scale {self.scale}, from {self.report.source})"
        )

    def subset(self, rows: np.ndarray) -> Ratings:
        """The ratings at ``rows`` (indices or a boolean mask), sharing vocabularies."""
        rows = np.asarray(rows)
        return Ratings(
            self.user_idx[rows],
            self.item_idx[rows],
            self.rating[rows],
            users=self.users,
            items=self.items,
            timestamp=None if self.timestamp is None else self.timestamp[rows],
            scale=self.scale,
            report=self.report,
            user_features=self.user_features,
            item_features=self.item_features,
        )

    def with_features(
        self, user_features: pd.DataFrame | SideFeatures | None = None,
        item_features: pd.DataFrame | SideFeatures | None = None, *, separator: str = "|",
    ) -> Ratings:  # fmt: skip
        """A copy that carries side information: tables indexed by raw id (or
        :class:`~collabfilter.data.features.SideFeatures` built with options), with
        categorical, multi-label (values joined by ``separator``) and numeric columns.
        Features already carried are kept unless replaced.

        Ids of the ratings without a row in a table are allowed (see
        :meth:`feature_coverage`); rows for ids the ratings do not have are kept for
        cold start.

        Raises:
            DataError: for a table none of whose ids is an id of the ratings (ids
                read as text against numbers, or the wrong table), or a bad table.
        """
        copy = _copy.copy(self)
        for side, given, vocabulary in (
            ("user", user_features, self.users), ("item", item_features, self.items),
        ):  # fmt: skip
            if given is None:
                continue
            features = (
                given if isinstance(given, SideFeatures)
                else SideFeatures(given, separator=separator, kind=side)
            )  # fmt: skip
            without, _ = features.coverage(vocabulary)
            if without == len(vocabulary):
                raise DataError(
                    f"no id of the {side} features is a {side} id of the ratings (features "
                    f"ids like {features.frame.index[:3].tolist()}, ratings ids like "
                    f"{vocabulary.ids[:3].tolist()}): read both id columns the same way"
                )
            setattr(copy, f"{side}_features", features)
        return copy

    def with_new_items(self) -> Ratings:
        """A copy whose items also include the ids of its item features that have no
        rating: new items, known by their features alone, after the rated ones (whose
        indices do not change). A model that reads item features (bayes) predicts and
        lists them, marked cold; other families give their pairs the bias baseline and
        never list them.

        Raises:
            DataError: when the ratings carry no item features, or a features id cannot
                be an item id (text naming no integer beside integer item ids).
        """
        features = self.item_features
        if features is None:
            raise DataError("new items come from the item features: these ratings carry none")
        index = features.frame.index.to_numpy()
        copy = _copy.copy(self)
        copy.items = self.items.extended(index[self.items.find(index) < 0])
        return copy

    def keep_features(self, user: Sequence[str] = (), item: Sequence[str] = ()) -> Ratings:
        """A copy carrying only the named feature columns of each side (a side with
        none named carries no features).

        Raises:
            DataError: naming a column a side does not have.
        """
        copy = _copy.copy(self)
        for side, names in (("user", user), ("item", item)):
            features: SideFeatures | None = getattr(self, f"{side}_features")
            if names and features is None:
                raise DataError(f"these ratings carry no {side} features; asked for {list(names)}")
            kept = features.select(names) if names and features is not None else None
            setattr(copy, f"{side}_features", kept)
        return copy

    def feature_rows(self, side: Literal["user", "item"]) -> SparseRows | None:
        """The side's features encoded one row per id of its vocabulary, in index order
        (what a model reads); None when the side carries none."""
        features = self.user_features if side == "user" else self.item_features
        vocabulary = self.users if side == "user" else self.items
        return None if features is None else features.encode(vocabulary).matrix

    def feature_coverage(self) -> dict[str, tuple[int, int]]:
        """Per side that carries features: ``(ids without a row, rows for ids the
        ratings do not have)``."""
        return {
            side: features.coverage(vocabulary)
            for side, features, vocabulary in (
                ("user", self.user_features, self.users),
                ("item", self.item_features, self.items),
            )
            if features is not None
        }

    def with_titles(self, titles: Mapping[Any, str] | pd.Series) -> Ratings:
        """A copy whose item titles come from a mapping raw item id -> title."""
        copy = self.subset(np.arange(len(self)))
        copy.items = self.items.with_titles(titles)
        return copy

    def user_counts(self) -> np.ndarray:
        """Ratings per user index (int64, length ``n_users``)."""
        return np.bincount(self.user_idx, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Ratings per item index (int64, length ``n_items``)."""
        return np.bincount(self.item_idx, minlength=self.n_items)

    def to_frame(self) -> pd.DataFrame:
        """Raw ids, title (when known), rating and timestamp per rating."""
        columns: dict[str, Any] = {
            "user": self.users.ids[self.user_idx],
            "item": self.items.ids[self.item_idx],
        }
        if self.items.titles is not None:
            columns["title"] = self.items.titles[self.item_idx]
        columns["rating"] = self.rating
        if self.timestamp is not None:
            columns["timestamp"] = self.timestamp
        return pd.DataFrame(columns)

    def to_parquet(self, path: str | Path) -> Path:
        """Write :meth:`to_frame` to parquet atomically (temp file, then rename)."""
        return write_frame_parquet(self.to_frame(), path)

    # ----------------------------------------------------------------- summaries
    def histogram(self) -> pd.Series:
        """Count of ratings per distinct rating value, in rating order."""
        values, counts = np.unique(self.rating, return_counts=True)
        return pd.Series(counts, index=pd.Index(values.astype(float), name="rating"), name="count")

    def summary(self) -> RatingsSummary:
        """Counts, density, mean/std, histogram and activity spreads."""
        per_user = self.user_counts()
        per_item = self.item_counts()
        time_range = None
        if self.timestamp is not None and len(self):
            time_range = (
                pd.Timestamp(int(self.timestamp.min()), unit="s"),
                pd.Timestamp(int(self.timestamp.max()), unit="s"),
            )
        return RatingsSummary(
            n_ratings=len(self),
            n_users=self.n_users,
            n_items=self.n_items,
            density=len(self) / max(1, self.n_users * self.n_items),
            mean=float(self.rating.mean(dtype=np.float64)) if len(self) else float("nan"),
            std=float(self.rating.std(dtype=np.float64)) if len(self) else float("nan"),
            scale=self.scale,
            histogram=self.histogram(),
            ratings_per_user=_spread(per_user),
            ratings_per_item=_spread(per_item),
            time_range=time_range,
            report=self.report,
        )

    def sample(self, n: int = 10, *, seed: int | None = 42) -> pd.DataFrame:
        """``n`` random ratings with raw ids and titles (fastai's ``show_batch``)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(self), size=min(n, len(self)), replace=False))
        return self.subset(rows).to_frame().reset_index(drop=True)

    def crosstab(self, top_users: int = 15, top_items: int = 15) -> pd.DataFrame:
        """Ratings of the most active users (rows) on the most rated items (columns).

        Missing ratings are NaN. Rows are raw user ids and columns raw item ids, both
        by falling activity (ties by index), as in the fastai 0.7 MovieLens lesson.
        """
        if top_users < 1 or top_items < 1:
            raise ValueError("top_users and top_items must be >= 1")
        users = _most_frequent(self.user_counts(), top_users)
        items = _most_frequent(self.item_counts(), top_items)
        user_pos = np.full(self.n_users, -1)
        user_pos[users] = np.arange(len(users))
        item_pos = np.full(self.n_items, -1)
        item_pos[items] = np.arange(len(items))
        rows, cols = user_pos[self.user_idx], item_pos[self.item_idx]
        inside = (rows >= 0) & (cols >= 0)
        table = np.full((len(users), len(items)), np.nan)
        table[rows[inside], cols[inside]] = self.rating[inside]
        return pd.DataFrame(
            table,
            index=pd.Index(self.users.ids[users], name="user"),
            columns=pd.Index(self.items.ids[items], name="item"),
        )


def _most_frequent(counts: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-counts, kind="stable")[:k]


def _spread(counts: np.ndarray) -> tuple[int, float, int]:
    if counts.size == 0:
        return (0, 0.0, 0)
    return (int(counts.min()), float(np.median(counts)), int(counts.max()))


def _bounds(scale: tuple[float, float] | RatingScale | None) -> tuple[float, float] | None:
    if scale is None:
        return None
    if isinstance(scale, RatingScale):
        return (scale.low, scale.high)
    low, high = scale
    return (float(low), float(high))


def _as_scale(scale: tuple[float, float] | RatingScale | None, rating: np.ndarray) -> RatingScale:
    if isinstance(scale, RatingScale):
        return scale
    if scale is None:
        if len(rating) == 0:
            raise DataError("no ratings to infer a scale from")
        return RatingScale.infer(rating)
    inferred = RatingScale.infer(rating)
    return RatingScale(float(scale[0]), float(scale[1]), inferred.step)


def _first_title_per_item(items: Vocabulary, item_idx: np.ndarray, titles: np.ndarray) -> pd.Series:
    present = ~pd.isna(titles)
    first = pd.Series(titles[present]).groupby(item_idx[present]).first()
    return pd.Series(first.to_numpy(), index=items.ids[first.index.to_numpy()])


def _resolve_duplicates(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    rating: np.ndarray,
    timestamp: np.ndarray | None,
    n_items: int,
    policy: DuplicatePolicy,
    source: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Rows to keep (ascending), their ratings/timestamps, and how many were dropped."""
    key = user_idx.astype(np.int64) * n_items + item_idx
    ordered = np.sort(key)  # a plain sort of integer keys beats hashing them
    if not (ordered[1:] == ordered[:-1]).any():
        return np.arange(len(key)), rating, timestamp, 0
    repeated = pd.Series(key).duplicated(keep=False).to_numpy()
    candidates = np.flatnonzero(repeated)
    n_dropped = len(candidates) - len(np.unique(key[candidates]))
    if policy == "error":
        example = candidates[:2]
        raise DuplicateRatingsError(
            f"{source}: {n_dropped} repeated (user, item) pair(s), e.g. rows "
            f"{example.tolist()}; choose duplicates='last', 'first' or 'mean'"
        )
    when = timestamp[candidates] if timestamp is not None else np.zeros(len(candidates))
    order = candidates[np.lexsort((candidates, when, key[candidates]))]
    group_key = key[order]
    last_of_group = np.r_[group_key[1:] != group_key[:-1], True]
    first_of_group = np.r_[True, group_key[1:] != group_key[:-1]]
    chosen = order[first_of_group] if policy == "first" else order[last_of_group]
    rating = rating.copy()
    if policy == "mean":
        means = pd.Series(rating[order]).groupby(group_key).mean().to_numpy(np.float32)
        rating[chosen] = means  # groupby sorts keys; chosen is in key order too
    keep_mask = ~repeated
    keep_mask[chosen] = True
    keep = np.flatnonzero(keep_mask)
    warnings.warn(
        f"{source}: {n_dropped} repeated rating(s) of the same (user, item) pair "
        f"resolved by duplicates={policy!r}",
        DataWarning,
        stacklevel=4,
    )
    return keep, rating[keep], None if timestamp is None else timestamp[keep], n_dropped
