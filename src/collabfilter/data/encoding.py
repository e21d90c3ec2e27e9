"""Id vocabularies: raw ids from the data <-> dense indices used by embeddings.

Raw ids (``user_id``, ``item_id``) are whatever the data holds: integers for MovieLens,
strings elsewhere. Embedding tables need positions ``0..n-1`` (``user_idx``,
``item_idx``). A :class:`Vocabulary` owns that mapping in both directions, plus the
item titles used for display and lookup. Unknown ids are an explicit choice of the
caller: :meth:`Vocabulary.index` raises, :meth:`Vocabulary.contains` lets the caller
flag them; no sentinel index is ever handed out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.errors import AmbiguousTitleError, DataError, UnknownIdError

INDEX_DTYPE = np.int32
"""Dense indices are int32: enough for 2 billion ids, half the memory of int64."""

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
    """Ids as int64 when they are all integral numbers, else as Python objects (str)."""
    array = _as_array(values).reshape(-1)
    if array.dtype == object:
        kind = pd.api.types.infer_dtype(array, skipna=False)
        if kind == "integer":
            array = array.astype(np.int64)
        elif kind == "floating":
            array = array.astype(np.float64)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise DataError("ids must not be missing (NaN)")
        if not np.all(array == np.round(array)):
            raise DataError("numeric ids must be whole numbers; got fractional values")
        return array.astype(np.int64)
    return _as_text(array)


def _as_text(array: np.ndarray) -> np.ndarray:
    """Ids as an object array of Python str (vectorised through pandas)."""
    return pd.Series(array.reshape(-1), dtype=object).astype(str).to_numpy(dtype=object)


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
        if array.dtype.kind in "iu":
            return np.asarray(self._index.get_indexer(array.astype(np.int64)))
        return np.asarray(self._index.get_indexer(integer_keys(array)))


_CANONICAL_INT = r"^-?(?:0|[1-9][0-9]{0,17})$"


def integer_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys of mixed values for lookup in integer ids: whole numbers as they are,
    text only in canonical decimal form ("7", not "007", "7.0" or " 7"); anything else
    becomes a key no vocabulary holds (the minimum int64)."""
    series = pd.Series(values.reshape(-1), dtype=object)
    keys = np.full(len(series), np.iinfo(np.int64).min, dtype=np.int64)
    is_text = series.map(type).isin([str, np.str_]).to_numpy()
    if is_text.any():
        text = series[is_text].astype(str)
        canonical = text.str.fullmatch(_CANONICAL_INT).to_numpy(dtype=bool)
        positions = np.flatnonzero(is_text)[canonical]
        keys[positions] = text[canonical].astype(np.int64).to_numpy()
    other = ~is_text
    if other.any():
        numeric = pd.to_numeric(series[other], errors="coerce").to_numpy(np.float64)
        whole = ~np.isnan(numeric) & (numeric == np.round(numeric))
        positions = np.flatnonzero(other)[whole]
        keys[positions] = numeric[whole].astype(np.int64)
    return keys
