"""Side information about users or items: what a table of features says, encoded as a
sparse design matrix with one row per id of a vocabulary.

A :class:`SideFeatures` holds one table indexed by raw id (an id with no row is
allowed and counted) and the :class:`FeatureEncoder` fitted on it once. Columns are of
three kinds, inferred from their dtype unless named:

* ``category``: one level per distinct value (gender, occupation);
* ``multi``: several levels per id, joined by a separator (``"Action|Comedy"``);
* ``number``: cut at the table's own quantiles into at most ``bins`` levels (age,
  release year), or a level per value when it has no more values than that: the cut
  points adapt to the data instead of a fixed scale, and a number enters the models
  as levels, like everything else.

Each field of a row has norm one (a film of three genres gets ``1/sqrt(3)`` on each),
and a row has norm one over its fields, so an id's features weigh as much as the
``|N(u)|^-1/2``-scaled items it rated in the implicit-feedback terms. A value the
encoder never saw (a new category at prediction time) contributes nothing and is
counted, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from collabfilter.data.csr import SparseRows
from collabfilter.data.encoding import Vocabulary
from collabfilter.data.io import read_table
from collabfilter.errors import DataError

FieldKind = Literal["category", "multi", "number"]
MAX_BINS = 8
"""Levels of a number field: its quantiles cut it into at most this many."""
MAX_LEVELS = 100_000
"""Levels of one field above this are an id column rather than a feature."""


@dataclass(frozen=True)
class FeatureField:
    """One column of a feature table and its levels.

    Attributes:
        name: the column.
        kind: ``category``, ``multi`` or ``number``.
        levels: the values seen (category, multi), or the bins' labels (number).
        cuts: a number field's finite cut points, increasing, ``len(levels) - 1`` of
            them (level ``k`` holds the values from cut ``k - 1`` up to cut ``k``);
            empty for the other kinds.

    Raises:
        DataError: for fields that contradict themselves (a model file's, forged).
    """

    name: str
    kind: FieldKind
    levels: tuple[str, ...]
    cuts: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("category", "multi", "number"):
            raise DataError(f"feature kind must be category, multi or number, got {self.kind!r}")
        if not all(isinstance(v, str) for v in (self.name, *self.levels)):
            raise DataError(f"feature field {self.name!r}: name and levels must be text")
        if len(set(self.levels)) != len(self.levels):
            raise DataError(f"feature field {self.name!r} repeats a level")
        cuts = np.asarray(self.cuts, dtype=np.float64)
        wanted = len(self.levels) - 1 if self.kind == "number" else 0
        if len(cuts) != max(wanted, 0) or not np.isfinite(cuts).all() or (np.diff(cuts) <= 0).any():
            raise DataError(
                f"feature field {self.name!r}: a number field has one finite, increasing cut "
                "fewer than its levels, other kinds none"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (model files keep the feature vocabularies)."""
        return {"name": self.name, "kind": self.kind, "levels": list(self.levels),
                "cuts": [float(c) for c in self.cuts]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureField:
        """The field :meth:`to_dict` wrote.

        Raises:
            DataError: for a record that is not one.
        """
        levels, cuts = data.get("levels"), data.get("cuts", [])
        if not isinstance(levels, list) or not isinstance(cuts, list):
            raise DataError("a feature field's levels and cuts must be lists")
        if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in cuts):
            raise DataError("a feature field's cuts must be numbers")
        return cls(data.get("name"), data.get("kind"), tuple(levels),  # type: ignore[arg-type]
                   tuple(float(c) for c in cuts))  # fmt: skip


@dataclass(frozen=True)
class EncodedFeatures:
    """Feature rows aligned with a vocabulary.

    Attributes:
        matrix: ``(ids, columns)``, float32, each non-empty row of norm one.
        names: one name per column, ``"field=level"``.
        missing: ids of the vocabulary with no row in the table (their rows are empty).
        unseen: values the encoder had no level for (they contribute nothing).
    """

    matrix: SparseRows
    names: tuple[str, ...]
    missing: int
    unseen: int


class FeatureEncoder:
    """The fields of a feature table, fitted once; encodes any rows of that shape.

    Args:
        fields: the fields, in column order.
        separator: what joins the values of a ``multi`` field.
    """

    def __init__(self, fields: Sequence[FeatureField], separator: str = "|") -> None:
        if not fields or not separator:
            raise DataError("a feature encoder needs at least one field and a separator")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise DataError(f"a feature encoder repeats a field: {names}")
        self.fields = tuple(fields)
        self.separator = separator
        self.offsets = np.cumsum([0] + [len(f.levels) for f in self.fields])

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, kinds: Mapping[str, FieldKind], separator: str = "|",
        bins: int = MAX_BINS,
    ) -> FeatureEncoder:  # fmt: skip
        """The fields of ``frame``'s columns, of the given kinds."""
        fields = []
        for name, kind in kinds.items():
            column = frame[name]
            if kind == "number":
                fields.append(_number_field(name, column, bins))
                continue
            values = _split(column, separator) if kind == "multi" else _as_text(column)
            levels = tuple(sorted(set(values.dropna())))
            if len(levels) > MAX_LEVELS:
                raise DataError(
                    f"feature column {name!r} has {len(levels):,} distinct values (at most "
                    f"{MAX_LEVELS:,}): an id column is not a feature"
                )
            fields.append(FeatureField(str(name), kind, levels))
        return cls(fields, separator)

    @property
    def names(self) -> tuple[str, ...]:
        """One name per column of the encoded matrix, ``"field=level"``."""
        return tuple(f"{f.name}={level}" for f in self.fields for level in f.levels)

    @property
    def width(self) -> int:
        """Columns of the encoded matrix."""
        return int(self.offsets[-1])

    def encode(self, frame: pd.DataFrame, n_rows: int | None = None,
               rows: np.ndarray | None = None) -> tuple[SparseRows, int]:  # fmt: skip
        """The rows of ``frame`` (its columns by field name), placed at ``rows`` of a
        matrix of ``n_rows`` rows (by default in order), and the count of values
        without a level. Each field of a row has norm one, and each row over its
        fields."""
        n_rows = len(frame) if n_rows is None else n_rows
        place = np.arange(len(frame)) if rows is None else np.asarray(rows, dtype=np.int64)
        row_parts, column_parts, value_parts, unseen = [], [], [], 0
        fields_present = np.zeros(len(frame), dtype=np.int64)
        for field, offset in zip(self.fields, self.offsets[:-1], strict=True):
            at, levels, missed = _levels_of(field, frame[field.name], self.separator)
            unseen += missed
            at, levels = _unique_pairs(at, levels)
            per_row = np.bincount(at, minlength=len(frame))
            fields_present += per_row > 0
            row_parts.append(at)
            column_parts.append(levels + offset)
            value_parts.append(1.0 / np.sqrt(per_row[at]))
        at = np.concatenate(row_parts)
        values = np.concatenate(value_parts) / np.sqrt(fields_present[at])
        matrix = SparseRows.from_pairs(
            torch.from_numpy(place[at]), torch.from_numpy(np.concatenate(column_parts)),
            torch.from_numpy(values), n_rows, self.width,
        )  # fmt: skip
        return matrix, unseen

    def encode_values(self, values: Mapping[str, Any]) -> tuple[SparseRows, int]:
        """One id's features given as ``{field: value}`` (a field not named is
        missing), as :meth:`encode` encodes a row.

        Raises:
            DataError: naming fields the encoder does not have.
        """
        fields = [f.name for f in self.fields]
        unknown = [name for name in values if name not in fields]
        if unknown:
            raise DataError(f"the features are {fields}; unknown: {unknown}")
        row = {name: _text_of(value) if isinstance(value, str) else value
               for name, value in values.items()}  # fmt: skip
        frame = pd.DataFrame([{name: row.get(name) for name in fields}], dtype=object)
        return self.encode(frame)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (model files keep the feature vocabularies)."""
        return {"separator": self.separator, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        """The encoder :meth:`to_dict` wrote.

        Raises:
            DataError: for a record that is not one.
        """
        fields, separator = data.get("fields"), data.get("separator")
        if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
            raise DataError("a feature encoder's fields must be a list of field records")
        if not isinstance(separator, str):
            raise DataError("a feature encoder's separator must be text")
        return cls([FeatureField.from_dict(f) for f in fields], separator)


class SideFeatures:
    """A feature table of users or items, indexed by raw id, and its encoder.

    Args:
        frame: one row per id, indexed by raw id.
        kinds: each column's kind; columns not named are inferred (numbers are
            ``number``, text with the separator in some value is ``multi``, the rest
            ``category``).
        separator: what joins the values of a ``multi`` column.
        kind: ``"user"`` or ``"item"``, for messages.

    Raises:
        DataError: for a table without columns, repeated or missing ids, or a column
            that is not one of the three kinds.
    """

    def __init__(
        self, frame: pd.DataFrame, *, kinds: Mapping[str, FieldKind] | None = None,
        separator: str = "|", kind: str = "item",
    ) -> None:  # fmt: skip
        if not isinstance(frame, pd.DataFrame) or frame.shape[1] == 0:
            raise DataError(f"{kind} features must be a DataFrame with at least one column")
        if frame.index.hasnans:
            raise DataError(f"{kind} features have rows without an id (NaN in the index)")
        repeated = frame.index[frame.index.duplicated()]
        if len(repeated):
            raise DataError(
                f"{kind} features repeat {len(repeated)} id(s), e.g. {list(repeated[:5])}: "
                "one row per id"
            )
        if not separator:
            raise DataError("the separator of multi-label features must not be empty")
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        given = dict(kinds or {})
        unknown = set(given) - set(frame.columns)
        if unknown:
            raise DataError(f"{kind} features have no column(s) {sorted(unknown)}")
        self.kinds: dict[str, FieldKind] = {
            name: given.get(name) or _infer_kind(frame[name], separator) for name in frame.columns
        }
        self.frame = frame
        self.separator = separator
        self.kind = kind
        self.encoder = FeatureEncoder.fit(frame, self.kinds, separator)

    @classmethod
    def read(
        cls, path: str | Path, *, id_column: str, kind: str = "item",
        kinds: Mapping[str, FieldKind] | None = None, separator: str = "|",
        sep: str | None = None, encoding: str = "utf-8",
    ) -> SideFeatures:  # fmt: skip
        """A feature table from a CSV/TSV/parquet file with one row per id: ids are read
        as text ("007" stays "007"; they match integer ids too), empty cells are
        missing, and a column whose every value is a number is numeric.

        Raises:
            FileNotFoundError: if there is no such file.
            DataError: naming the file, for one that cannot be read or has no
                ``id_column``, and as :class:`SideFeatures` does.
        """
        path = Path(path)
        text = {n for n, k in (kinds or {}).items() if k != "number"}
        frame = read_table(path, text_columns=(id_column, *text), sep=sep, encoding=encoding,
                           what=f"{kind} features file")  # fmt: skip
        if id_column not in frame.columns:
            found = [str(c) for c in frame.columns[:20]]
            raise DataError(
                f"{path}: no id column {id_column!r} in the {kind} features; found {found}"
            )
        ids = frame.pop(id_column).str.strip()
        if (ids == "").any():
            row = int(np.flatnonzero((ids == "").to_numpy())[0]) + 2
            raise DataError(f"{path}: line {row} has no {kind} id in column {id_column!r}")
        frame.index = pd.Index(ids.to_numpy(), name=id_column)
        try:
            return cls(_typed(frame, text), kinds=kinds, separator=separator, kind=kind)
        except DataError as error:
            raise DataError(f"{path}: {error}") from None

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature columns."""
        return tuple(self.frame.columns)

    def select(self, names: Iterable[str]) -> SideFeatures:
        """The same table with only the columns ``names``.

        Raises:
            DataError: naming the columns the table does not have.
        """
        names = list(names)
        unknown = [n for n in names if n not in self.frame.columns]
        if unknown:
            raise DataError(
                f"{self.kind} features have no column(s) {unknown}; they have {list(self.columns)}"
            )
        kinds = {n: self.kinds[n] for n in names}
        return SideFeatures(self.frame[names], kinds=kinds, separator=self.separator,
                            kind=self.kind)  # fmt: skip

    def encode(self, vocabulary: Vocabulary) -> EncodedFeatures:
        """The rows of the vocabulary's ids in order (empty for an id without a row)."""
        positions = _positions(self.frame.index, vocabulary)
        known = positions >= 0
        matrix, unseen = self.encoder.encode(
            self.frame.iloc[positions[known]], len(vocabulary), np.flatnonzero(known)
        )
        return EncodedFeatures(matrix, self.encoder.names, int((~known).sum()), unseen)

    def coverage(self, vocabulary: Vocabulary) -> tuple[int, int]:
        """``(ids of the vocabulary without a row, rows for ids outside it)``."""
        found = vocabulary.find(self.frame.index.to_numpy())
        with_row = np.zeros(len(vocabulary), dtype=bool)
        with_row[found[found >= 0]] = True
        return int((~with_row).sum()), int((found < 0).sum())

    def describe(self) -> str:
        """One line: the columns and their kinds."""
        return ", ".join(f"{n} ({k})" for n, k in self.kinds.items())

    def __repr__(self) -> str:
        return f"SideFeatures({self.kind}: {len(self.frame):,} ids; {self.describe()})"


def _typed(frame: pd.DataFrame, text: set[str]) -> pd.DataFrame:
    """Columns as read from text: blank cells missing, all-number columns numeric
    unless named in ``text``."""
    typed = {}
    for name in frame.columns:
        column = frame[name]
        textual = _is_text(column)
        if textual:
            column = column.where(column.astype(str).str.strip() != "")
        if textual and name not in text:
            numbers = pd.Series(_numbers(column), index=column.index)
            if column.notna().any() and numbers.notna().sum() == column.notna().sum():
                column = numbers
        typed[name] = column
    return pd.DataFrame(typed, index=frame.index)


def _positions(index: pd.Index, vocabulary: Vocabulary) -> np.ndarray:
    """For each id of ``vocabulary``, its row in the table, or -1."""
    rows = vocabulary.find(index.to_numpy())
    positions = np.full(len(vocabulary), -1, dtype=np.int64)
    found = rows >= 0
    positions[rows[found]] = np.flatnonzero(found)
    return positions


def _infer_kind(column: pd.Series, separator: str) -> FieldKind:
    if pd.api.types.is_bool_dtype(column):
        return "category"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    text = column.dropna().astype(str)
    return "multi" if text.str.contains(separator, regex=False).any() else "category"


def _is_text(column: pd.Series) -> bool:
    """Whether a column holds text (object dtype, or pandas' string dtypes)."""
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def _as_text(column: pd.Series) -> pd.Series:
    return column.astype(object).map(_text_of)


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):  # undecodable bytes (lone surrogates) escaped: no level
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return str(value)


def _split(column: pd.Series, separator: str) -> pd.Series:
    """One row per (id position, value) of a multi-label column, values stripped."""
    values = _as_text(column).str.split(separator, regex=False).explode().str.strip()
    return values[values.notna() & (values != "")]


def _number_field(name: str, column: pd.Series, bins: int) -> FeatureField:
    values = pd.Series(_numbers(column))
    finite = values[np.isfinite(values)]
    if finite.empty:
        raise DataError(f"feature column {name!r} is numeric but holds no finite number")
    distinct = np.unique(finite)
    if len(distinct) <= bins:  # a level per value, cut halfway between neighbours
        cuts = (distinct[:-1] + distinct[1:]) / 2
    else:
        cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = (-np.inf, *cuts.tolist(), np.inf)
    labels = tuple(_bin_label(low, high) for low, high in zip(edges[:-1], edges[1:], strict=True))
    return FeatureField(str(name), "number", labels, tuple(float(c) for c in cuts))


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as float64, NaN where a value is not a number (integers beyond any
    float become infinities, which fall in no level)."""
    try:
        return pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    except OverflowError:
        return column.map(_number_or_nan).to_numpy(np.float64)


def _number_or_nan(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float(np.sign(value)) * np.inf
    except (TypeError, ValueError):
        return np.nan


def _bin_label(low: float, high: float) -> str:
    if np.isinf(low):
        return f"<{high:g}"
    if np.isinf(high):
        return f">={low:g}"
    return f"[{low:g}, {high:g})"


def _levels_of(
    field: FeatureField, column: pd.Series, separator: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(row, level) pairs of a column, and the count of values without a level."""
    if field.kind == "number":
        numbers = _numbers(column)
        rows = np.flatnonzero(np.isfinite(numbers))
        levels = np.searchsorted(
            np.asarray(field.cuts, dtype=np.float64), numbers[rows], side="right"
        )
        return rows, levels.astype(np.int64), 0
    column = column.reset_index(drop=True)
    values = _split(column, separator) if field.kind == "multi" else _as_text(column).dropna()
    codes = pd.Index(field.levels).get_indexer(pd.Index(values.to_numpy()))
    seen = codes >= 0
    return values.index.to_numpy()[seen], codes[seen].astype(np.int64), int((~seen).sum())


def _unique_pairs(rows: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (row, level) pairs (a value repeated in one row counts once)."""
    if len(rows) == 0:
        return rows.astype(np.int64), levels.astype(np.int64)
    pairs = np.unique(np.stack([rows, levels], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
