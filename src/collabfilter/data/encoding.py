"""Id vocabularies: raw ids from the data <-> dense indices used by embeddings.

Raw ids (``user_id``, ``item_id``) are whatever the data holds: integers for MovieLens,
strings elsewhere. Embedding tables need positions ``0..n-1`` (``user_idx``,
``item_idx``). A :class:`Vocabulary` owns that mapping in both directions, plus the
item titles used for display and lookup. Unknown ids are an explicit choice of the
caller: :meth:`Vocabulary.index` raises, :meth:`Vocabulary.contains` lets the caller
flag them; no sentinel index is ever handed out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.errors import AmbiguousTitleError, DataError, UnknownIdError

INDEX_DTYPE = np.int32
"""Dense indices are int32: enough for 2 billion ids, half the memory of int64."""

INT64 = np.iinfo(np.int64)
EXACT_FLOAT = 2**53
"""Whole floats up to this magnitude name one integer exactly; beyond it they may not."""
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
_MISSING_KEY = INT64.min
"""The key of a value that names no integer id (the minimum int64 is refused as an id,
so no vocabulary holds it)."""

_SHOWN_UNKNOWN = 5


def _as_array(values: Any) -> np.ndarray:
    """An ndarray of ``values``; lists become object arrays, because NumPy's fixed-width
    strings would silently strip trailing NUL characters from text ids."""
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, pd.Series | pd.Index):
        return values.to_numpy()
    return np.array(list(values) if not np.isscalar(values) else [values], dtype=object)


def _as_id_array(values: Any) -> np.ndarray:
    """Ids as int64 when they are all integral numbers, else as Python objects (str).

    Raises:
        DataError: for missing ids, fractional numbers, integers beyond int64, whole
            floats too large to name one integer exactly, or text that is not valid
            Unicode.
    """
    array = _as_array(values).reshape(-1)
    if array.dtype == object:
        kind = pd.api.types.infer_dtype(array, skipna=False)
        if kind == "integer":
            keys, exact = integer_keys_of(array)
            if not exact.all():
                raise DataError(
                    f"integer ids must be int64 values in [{INT64.min + 1}, {INT64.max}]; got "
                    f"{array[~exact][:3].tolist()}"
                )
            return keys
        if kind == "floating":
            array = array.astype(np.float64)
    if array.dtype.kind == "u":
        if array.size and int(array.max()) > INT64.max:
            raise DataError(f"integer ids must be int64 values in [{INT64.min + 1}, {INT64.max}]")
        return array.astype(np.int64)
    if array.dtype.kind == "i":
        if array.size and int(array.min()) == INT64.min:
            raise DataError(f"integer ids must be int64 values in [{INT64.min + 1}, {INT64.max}]")
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise DataError("ids must not be missing (NaN)")
        if not np.all(array == np.round(array)):
            raise DataError("numeric ids must be whole numbers; got fractional values")
        if array.size and float(np.abs(array).max()) > EXACT_FLOAT:
            raise DataError(
                "ids written as decimals beyond 2^53 do not name one integer exactly; "
                "read them as integers or as text"
            )
        return array.astype(np.int64)
    return check_text_ids(_as_text(array))


def check_text_ids(texts: np.ndarray) -> np.ndarray:
    """``texts`` (Python str), refusing any that is not valid Unicode (a lone surrogate
    cannot be written to a file, a database or a JSON answer).

    Raises:
        DataError: naming the first offenders.
    """
    bad = [text for text in texts.tolist() if not _valid_unicode(text)]
    if bad:
        raise DataError(f"text ids must be valid Unicode; got {[repr(b) for b in bad[:3]]}")
    return texts


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_integer_id(text: str) -> int | None:
    """The integer a text id names, in canonical decimal form ("7", not "007", "7.0" or
    " 7") and within int64; None for any other text."""
    if _CANONICAL_INT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if INT64.min < value <= INT64.max else None


def integer_keys_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 keys of mixed values for lookup among integer ids, exactly: integers as they
    are (Python or NumPy, never through floats), whole floats up to 2^53, text by
    :func:`parse_integer_id`. Returns ``(keys, named)``: ``named`` is False (and the
    key meaningless) for a value that names no int64 id, such as 2^63, "007" or 7.5."""
    flat = values.reshape(-1)
    keys = np.full(len(flat), _MISSING_KEY, dtype=np.int64)
    if flat.dtype.kind in "iu":
        keep = (flat <= INT64.max) if flat.dtype.kind == "u" else (flat > INT64.min)
        keys[keep] = flat[keep].astype(np.int64)
        return keys, np.asarray(keep)
    if flat.dtype.kind == "f":
        whole = np.isfinite(flat) & (flat == np.round(flat)) & (np.abs(flat) <= EXACT_FLOAT)
        keys[whole] = flat[whole].astype(np.int64)
        return keys, whole
    named = np.zeros(len(flat), dtype=bool)
    for position, value in enumerate(flat.tolist()):
        key = _integer_of(value)
        if key is not None:
            keys[position], named[position] = key, True
    return keys, named


def _integer_of(value: Any) -> int | None:
    if isinstance(value, bool | np.bool_):
        return None  # True is an int to Python, not an id
    if isinstance(value, int | np.integer):
        number = int(value)
        return number if INT64.min < number <= INT64.max else None
    if isinstance(value, float | np.floating):
        real = float(value)
        if real.is_integer() and abs(real) <= EXACT_FLOAT:
            return int(real)
        return None
    if isinstance(value, str):
        return parse_integer_id(value)
    return None


def _as_text(array: np.ndarray) -> np.ndarray:
    """Ids as an object array of Python str (vectorised through pandas).

    Raises:
        DataError: for text that is not valid Unicode (pandas' Arrow strings refuse it).
    """
    try:
        return pd.Series(array.reshape(-1), dtype=object).astype(str).to_numpy(dtype=object)
    except UnicodeEncodeError:
        return check_text_ids(np.array([str(v) for v in array.reshape(-1)], dtype=object))


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` that keeps ids apart when they differ after a NUL character.

    pandas hashes object strings as C strings, so ``"a"`` and ``"a\x00b"`` (or ``""``
    and ``"\x00"``) would become one id; ``Index`` lookups compare whole objects. Text
    holding a NUL takes that exact (slower) path; everything else the fast one.
    """
    if values.dtype == object and len(values):
        has_nul = pd.Series(values, dtype=object).str.contains("\x00", regex=False)
        if has_nul.fillna(False).to_numpy(dtype=bool).any():
            uniques = np.array(list(dict.fromkeys(values.tolist())), dtype=object)
            return pd.Index(uniques, dtype=object).get_indexer(values), uniques
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(codes), np.asarray(uniques)


class Vocabulary:
    """The ordered set of raw ids of one kind (users or items), with optional titles.

    Args:
        ids: unique raw ids; their order defines the dense indices.
        kind: ``"user"`` or ``"item"``, used in error messages.
        titles: optional display names aligned with ``ids`` (``None`` where unknown).

    Raises:
        DataError: if ``ids`` repeats a value or ``titles`` has the wrong length.
    """

    def __init__(self, ids: Any, *, kind: str = "item", titles: Any | None = None) -> None:
        self._ids = _as_id_array(ids)
        self._ids.setflags(write=False)
        self.kind = kind
        self._index = pd.Index(self._ids)
        if not self._index.is_unique:
            repeated = self._index[self._index.duplicated()].unique()[:_SHOWN_UNKNOWN]
            raise DataError(f"{kind} ids must be unique; repeated: {list(repeated)}")
        self._titles: np.ndarray | None = None
        if titles is not None:
            titles_array = np.asarray(titles, dtype=object)
            if titles_array.shape != self._ids.shape:
                raise DataError(
                    f"{kind} titles must align with ids: {len(titles_array)} titles "
                    f"for {len(self._ids)} ids"
                )
            titles_array.setflags(write=False)
            self._titles = titles_array

    @classmethod
    def encode(cls, values: Any, *, kind: str = "item") -> tuple[Vocabulary, np.ndarray]:
        """Build the vocabulary of ``values`` (sorted ids) and their dense codes.

        Returns:
            ``(vocabulary, codes)`` with ``codes`` an int32 array aligned with ``values``.
        """
        # Hash first, then sort only the (few) distinct ids: much faster than
        # factorize(sort=True) or np.unique on 25M values.
        codes, uniques = factorize(_as_id_array(values))
        order = np.argsort(uniques, kind="stable")
        rank = np.empty(len(order), dtype=INDEX_DTYPE)
        rank[order] = np.arange(len(order), dtype=INDEX_DTYPE)
        return cls(uniques[order], kind=kind), rank[codes]

    @property
    def ids(self) -> np.ndarray:
        """Raw ids in index order (read-only)."""
        return self._ids

    @property
    def titles(self) -> np.ndarray | None:
        """Titles in index order, or ``None`` when the data carried none."""
        return self._titles

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        titled = ", titled" if self._titles is not None else ""
        return f"Vocabulary({len(self)} {self.kind}s{titled})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        if self._titles is None or other._titles is None:
            same_titles = self._titles is None and other._titles is None
        else:
            same_titles = bool(np.array_equal(self._titles, other._titles))
        return (
            self.kind == other.kind
            and self._ids.dtype == other._ids.dtype
            and bool(np.array_equal(self._ids, other._ids))
            and same_titles
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, compared by value

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean mask: which of ``ids`` the vocabulary holds."""
        return np.asarray(self._positions(ids) >= 0)

    def find(self, ids: Any) -> np.ndarray:
        """Dense indices (int64) of ``ids``, -1 for those the vocabulary does not hold
        (for callers that handle unknown ids themselves, such as the service)."""
        return np.asarray(self._positions(ids), dtype=np.int64)

    def index(self, ids: Any) -> np.ndarray:
        """Dense indices (int32) of raw ``ids``.

        Raises:
            UnknownIdError: naming up to five ids that are not in the vocabulary.
        """
        positions = self._positions(ids)
        unknown = positions < 0
        if unknown.any():
            missing = _as_array(ids).reshape(-1)[unknown][:_SHOWN_UNKNOWN]
            raise UnknownIdError(
                f"{int(unknown.sum())} unknown {self.kind} id(s), e.g. {missing.tolist()}; "
                f"the vocabulary holds {len(self)} {self.kind}s "
                f"(ids like {self._ids[:3].tolist()})"
            )
        return positions.astype(INDEX_DTYPE)

    def resolve(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Indices of raw ids, or else of exact titles, and a mask of what was found.

        Indices where the mask is False are meaningless (0); callers decide whether
        an unknown value is an error or a NaN.

        Raises:
            AmbiguousTitleError: for a title that several ids share.
        """
        array = _as_array(values).reshape(-1)
        positions = self._positions(array)
        missing = positions < 0
        if missing.any() and self._titles is not None:
            by_title = self._title_positions(array[missing])
            positions[missing] = by_title
        known = positions >= 0
        return np.where(known, positions, 0).astype(INDEX_DTYPE), known

    def _title_positions(self, titles: np.ndarray) -> np.ndarray:
        assert self._titles is not None
        table = pd.Series(np.arange(len(self)), index=pd.Index(self._titles, dtype=object))
        wanted = pd.Index(_as_text(titles))
        repeated = table.index[table.index.duplicated()]
        clash = wanted[wanted.isin(repeated)]
        if len(clash):
            title = clash[0]
            ids = self._ids[table.loc[[title]].to_numpy()].tolist()
            raise AmbiguousTitleError(
                f"{self.kind} title {title!r} is shared by ids {ids}; use one of the ids"
            )
        unique_table = table[~table.index.duplicated(keep=False)]
        return np.asarray(unique_table.reindex(wanted).fillna(-1).to_numpy(), dtype=np.int64)

    def index_of(self, raw_id: Any) -> int:
        """Dense index of one raw id (see :meth:`index`)."""
        return int(self.index([raw_id])[0])

    def id_of(self, indices: Any) -> np.ndarray:
        """Raw ids at dense ``indices``."""
        positions = np.asarray(indices)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"{self.kind} index out of range [0, {len(self)})")
        return np.asarray(self._ids[positions])

    def labels(self, indices: Any | None = None) -> np.ndarray:
        """Display names: the title where known, else the raw id as text."""
        positions = np.arange(len(self)) if indices is None else np.asarray(indices)
        fallback = self._ids[positions].astype(str).astype(object)
        if self._titles is None:
            return fallback
        titles = self._titles[positions].copy()
        missing = pd.isna(titles)
        titles[missing] = fallback[missing]
        return titles

    def with_titles(self, titles: Mapping[Any, str] | pd.Series) -> Vocabulary:
        """A copy whose titles come from a mapping raw id -> title (missing ones: None)."""
        series = titles if isinstance(titles, pd.Series) else pd.Series(dict(titles))
        series.index = pd.Index(_as_id_array(series.index.to_numpy()))
        aligned = series.reindex(self._index).to_numpy(dtype=object)
        aligned[pd.isna(aligned)] = None
        return Vocabulary(self._ids, kind=self.kind, titles=aligned)

    def extended(self, ids: Any) -> Vocabulary:
        """A copy with the new ``ids`` after the existing ones, whose indices keep their
        meaning, in this vocabulary's id type (text "12" joins integer ids as 12); the
        new ids have no title.

        Raises:
            DataError: for an id already present or given twice, or text that names no
                integer in a vocabulary of integer ids.
        """
        given = _as_array(ids).reshape(-1)
        if self._ids.dtype.kind == "i":
            added, named = integer_keys_of(given)
            if not named.all():
                raise DataError(
                    f"{self.kind} ids {given[~named][:_SHOWN_UNKNOWN].tolist()} name no "
                    f"integer, and this vocabulary's {self.kind} ids are integers"
                )
        else:
            added = _as_text(given)
        titles = None
        if self._titles is not None:
            titles = np.concatenate([self._titles, np.full(len(added), None, dtype=object)])
        return Vocabulary(np.concatenate([self._ids, added]), kind=self.kind, titles=titles)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (persisted beside model weights)."""
        integral = self._ids.dtype.kind == "i"
        return {
            "kind": self.kind,
            "id_type": "int" if integral else "str",
            "ids": self._ids.tolist(),
            "titles": None if self._titles is None else self._titles.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_dict`; validates the declared id type."""
        id_type = data.get("id_type")
        if id_type not in ("int", "str"):
            raise DataError(f"vocabulary id_type must be 'int' or 'str', got {id_type!r}")
        ids: Iterable[Any] = data["ids"]
        array = (
            np.asarray(list(ids), dtype=np.int64)
            if id_type == "int"
            else _as_text(np.asarray(list(ids), dtype=object))
        )
        return cls(array, kind=str(data.get("kind", "item")), titles=data.get("titles"))

    def _positions(self, ids: Any) -> np.ndarray:
        """Positions of ``ids`` (-1 where unknown, internal only), matching key types
        so that "1" finds the integer id 1 and 1 finds the string id "1"; a text id
        matches an integer id only in its canonical form ("007" never finds 7)."""
        array = _as_array(ids).reshape(-1)
        if self._ids.dtype.kind != "i":
            return np.asarray(self._index.get_indexer(_as_text(array)))
        keys, named = integer_keys_of(array)
        positions = np.asarray(self._index.get_indexer(keys))
        positions[~named] = -1
        return positions
