"""One loaded model file and everything requests need from it, built once.

A :class:`ServedModel` is never changed after it is built, except for caches that
only grow under a lock: a reload builds a new one and swaps a single reference, so
a request that took the old one finishes with it, and no request ever sees half of
each. What is derived from the model (item ids and titles ready for JSON, counts,
the title index, id lookups) is built here once per model instead of once per
request; what a request computes (lists, predictions, reasons) is the library's
(:mod:`collabfilter.recommend`), called by :mod:`collabfilter.serve.lists`.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from collabfilter.data import Vocabulary
from collabfilter.data.encoding import check_text_ids, parse_integer_id
from collabfilter.errors import DataError
from collabfilter.fitted import FittedModel
from collabfilter.interpret import title_index
from collabfilter.persist import load_model
from collabfilter.serve.schemas import MAX_ID_LENGTH
from collabfilter.serve.store import RawId

_LOOKUP_LIMIT = 100_000
_T = TypeVar("_T")


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of a file cheaply (a rename changes the inode)."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileSignature | None:
        """The file's signature, or None when it is absent."""
        try:
            return cls.of_stat(os.stat(path))
        except FileNotFoundError:
            return None

    @classmethod
    def of_stat(cls, stat: os.stat_result) -> FileSignature:
        """The signature of a ``stat`` result."""
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)


class IdLookup:
    """Raw ids as requests send them (URL text, JSON numbers or strings) -> rows.

    Matching is the vocabulary's own (:meth:`Vocabulary.contains`): text finds an
    integer id only in canonical form ("1" finds 1, "007" never finds 7). Answers are
    memoised (a bounded dict), since the same ids come back request after request.
    """

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.integral = vocabulary.ids.dtype.kind == "i"
        self.ids: list[RawId] = vocabulary.ids.tolist()
        self._rows: dict[tuple[type, RawId], int] = {}

    def row(self, value: RawId) -> int | None:
        """The row of ``value``, or None when the vocabulary does not hold it."""
        memo = (type(value), value)  # True == 1 to a dict; never to an id
        row = self._rows.get(memo)
        if row is None:
            found = self.vocabulary.find(np.array([value], dtype=object))[0]
            row = int(found)
            if len(self._rows) >= _LOOKUP_LIMIT:
                self._rows.clear()
            self._rows[memo] = row
        return None if row < 0 else row

    def raw_id(self, row: int) -> RawId:
        """The raw id of a row as a Python int or str (its own type)."""
        return self.ids[row]

    def key(self, value: RawId) -> RawId:
        """``value`` in the vocabulary's type, known or not: how a user is stored.

        Raises:
            DataError: for an id that cannot have the vocabulary's type ("007", "abc" or
                2^63 where ids are int64 integers), text that is not valid Unicode, or an
                id too long.
        """
        row = self.row(value)
        if row is not None:
            return self.raw_id(row)
        text = str(value)
        if len(text) > MAX_ID_LENGTH or not text:
            raise DataError(f"{self.vocabulary.kind} ids are 1 to {MAX_ID_LENGTH} characters")
        if not self.integral:
            return str(check_text_ids(np.array([text], dtype=object))[0])
        number = parse_integer_id(text)
        if number is None:
            raise DataError(
                f"{self.vocabulary.kind} ids of this model are integers in plain form within "
                f"int64 (like {self.raw_id(0)!r}); got {text[:40]!r}"
            )
        return number


class LockedCache:
    """A small LRU dict shared by threads: values are computed outside the lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """The cached value of ``key``, made (and kept) when absent."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                value: _T = self._entries[key]
                return value
        value = make()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
        return value


@dataclass(frozen=True)
class ItemList:
    """Items picked for someone, best first, with their scores, and per item the rated
    item behind it (``because``: an item index, -1 for none) with the rating given."""

    item_idx: np.ndarray
    scores: np.ndarray
    because: np.ndarray
    because_rating: np.ndarray
    rated: int


@dataclass(eq=False)
class ServedModel:
    """A loaded model file and what requests derive from it.

    Attributes:
        path: the model file.
        signature: the file version it was loaded from.
        model: the rating model (or the ranking model when the file holds only one).
        lister: the model top-N lists come from: the ranking companion when present.
        loaded_at: when it was loaded (ISO 8601, UTC, to the microsecond: two reloads
            in a second are told apart).
        min_ratings: items with fewer training ratings are never recommended.
    """

    path: Path
    signature: FileSignature | None
    model: FittedModel
    lister: FittedModel
    loaded_at: str
    min_ratings: int | None = None
    users: IdLookup = field(init=False)
    items: IdLookup = field(init=False)
    item_ids: list[RawId] = field(init=False)
    labels: list[str] = field(init=False)
    counts: np.ndarray = field(init=False)
    folds: LockedCache = field(init=False)
    views: LockedCache = field(init=False)

    def __post_init__(self) -> None:
        model = self.model
        self.users = IdLookup(model.users)
        self.items = IdLookup(model.items)
        self.item_ids = self.items.ids
        self.labels = [str(label) for label in model.items.labels()]
        self.counts = model.item_counts()
        self.folds = LockedCache(4096)
        self.views = LockedCache(32)
        if model.items.titles is not None:
            title_index(model)  # built now: the first search would pay for it

    @classmethod
    def load(cls, path: str | Path, *, min_ratings: int | None = None) -> ServedModel:
        """Load the model file at ``path`` (see :func:`collabfilter.load_model`)."""
        path = Path(path)
        signature, model = _load_snapshot(path)
        loaded_at = datetime.now(UTC).isoformat(timespec="microseconds")
        lister = model.ranker or model
        return cls(path, signature, model, lister, loaded_at, min_ratings)

    @property
    def scores_are_ratings(self) -> bool:
        """Whether list scores are predicted ratings (else ranking scores)."""
        return self.lister.predicts_ratings

    def describe(self) -> dict[str, Any]:
        """What /health says about the model: the file's name, never its folder (the
        server's layout is nobody else's business)."""
        model = self.model
        kind = model.model_config.kind if model.model_config is not None else None
        return {
            "file": self.path.name,
            "loaded_at": self.loaded_at,
            "kind": kind,
            "class": type(model.model).__name__,
            "ranker": None if model.ranker is None else type(model.ranker.model).__name__,
            "users": len(model.users),
            "items": len(model.items),
            "training_ratings": len(model.interactions),
            "scale": {"low": model.scale.low, "high": model.scale.high, "step": model.scale.step},
            "predicts_ratings": model.predicts_ratings,
        }

    def view(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """A derived view (map, bias table) built on first request and kept."""
        return self.views.get_or_make(key, make)


def _load_snapshot(path: Path) -> tuple[FileSignature, FittedModel]:
    """The model file and the signature it had when loading began.

    A loaded model keeps nothing mapped from its file (``load_model`` copies the
    tensors), so the file may be replaced or overwritten while it is served. A file
    replaced during the load is loaded again at the next check, since its signature
    moved; one overwritten in place during the load fails its checksums and is skipped
    until it changes again.
    """
    signature = FileSignature.of_stat(os.stat(path))
    return signature, load_model(path)
