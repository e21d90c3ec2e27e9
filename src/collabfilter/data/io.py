"""Reading ratings tables (CSV/TSV, parquet, DataFrames) into one validated shape.

Every reader ends in :func:`validate_frame`, which turns the user's columns into the
canonical ``user, item, rating[, timestamp][, title]`` frame and refuses bad input
with the file, the line and the field at fault. Validation is vectorised: a 25M-row
file is checked in one pass per column, never row by row.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from collabfilter.data.encoding import EXACT_FLOAT, factorize, integer_keys_of
from collabfilter.errors import DataError, RatingsFormatError

SHOWN_LINES = 5
"""How many offending lines an error message quotes."""

IdType = Literal["auto", "text", "int"]
"""How ids read from text become raw ids. ``"auto"`` keeps their text, except that a
column whose every id is an integer in canonical decimal form ("7", never "007" or
"+7") becomes integers: nothing is lost either way, and "007" and "7" stay two ids.
``"text"`` always keeps text; ``"int"`` requires integers (formats that fix them, such
as MovieLens)."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each field (names, or positions for headerless files).

    Attributes:
        user: column of user ids.
        item: column of item ids.
        rating: column of numeric ratings.
        timestamp: optional column of event times (unix seconds or datetimes).
        title: optional column of item titles (fastai's ``item_name``).
        ids: how user and item ids become raw ids (see :data:`IdType`).
    """

    user: str = "user"
    item: str = "item"
    rating: str = "rating"
    timestamp: str | None = None
    title: str | None = None
    ids: IdType = "auto"

    def __post_init__(self) -> None:
        if self.ids not in ("auto", "text", "int"):
            raise DataError(f"ids must be 'auto', 'text' or 'int', got {self.ids!r}")

    def required(self) -> dict[str, str]:
        """Canonical field -> source column, for the fields the caller asked for."""
        pairs = {"user": self.user, "item": self.item, "rating": self.rating}
        if self.timestamp is not None:
            pairs["timestamp"] = self.timestamp
        if self.title is not None:
            pairs["title"] = self.title
        return pairs


@dataclass(frozen=True)
class LoadReport:
    """What loading kept, dropped and changed; shown by ``Ratings.summary()``.

    Attributes:
        source: the file path or ``"DataFrame"``.
        rows_read: data rows found, blank lines excluded.
        blank_lines: empty lines skipped in a text file.
        duplicates: ratings dropped because their (user, item) pair repeats.
        duplicate_policy: how repeats were resolved (see ``Ratings.from_frame``).
        items_without_title: items whose title the data did not give.
    """

    source: str
    rows_read: int
    blank_lines: int = 0
    duplicates: int = 0
    duplicate_policy: str = "last"
    items_without_title: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    columns: tuple[tuple[str, str], ...] = ()
    """Which source column held each field, ``(field, column)`` pairs: a model trained
    on the data reads later tables by the same names."""

    def with_changes(self, **changes: Any) -> LoadReport:
        """A copy with some fields replaced (reports are immutable)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class _Where:
    """Turns row positions into what a user can find: file lines or frame rows."""

    source: str
    first_line: int | None  # line number of row 0 in a text file; None for frames

    def describe(self, positions: np.ndarray) -> tuple[str, list[int]]:
        shown = [int(p) for p in positions[:SHOWN_LINES]]
        if self.first_line is None:
            numbers = shown
            noun = "row" if len(shown) == 1 else "rows"
        else:
            numbers = [p + self.first_line for p in shown]
            noun = "line" if len(shown) == 1 else "lines"
        more = f" (and {len(positions) - len(shown)} more)" if len(positions) > len(shown) else ""
        return f"{noun} {', '.join(map(str, numbers))}{more}", numbers

    def fail(self, column: str, positions: np.ndarray, problem: str, values: Any = None) -> None:
        where, numbers = self.describe(positions)
        shown = ""
        if values is not None:
            shown = f": {[_plain(v) for v in np.asarray(values)[:SHOWN_LINES].tolist()]}"
        raise RatingsFormatError(
            f"{self.source}: column {column!r} {problem} at {where}{shown}",
            source=self.source,
            column=column,
            lines=numbers,
        )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def read_csv(
    path: str | Path,
    *,
    columns: ColumnMap,
    sep: str = ",",
    header: bool = True,
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    scale: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Read a delimited text file (``.gz``/``.zip`` too) into the canonical frame.

    Args:
        path: the file.
        columns: which columns hold which field.
        sep: field separator; multi-character separators such as ml-1m's ``::`` work.
        header: whether the first line names the columns.
        names: column names to use (required when ``header`` is False and ``columns``
            uses names; otherwise columns are numbered "0", "1", ...).
        encoding: text encoding (MovieLens before 2016 is ``latin-1``).
        scale: if given, ratings outside ``[low, high]`` are an error.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        RatingsFormatError: naming the file, line and column of bad values.
        DataError: for a missing column or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ratings file not found: {path}")
    with open(path, "rb") as handle:
        return read_csv_buffer(
            handle,
            source=str(path),
            columns=columns,
            sep=sep,
            header=header,
            names=names,
            encoding=encoding,
            scale=scale,
        )


def read_csv_buffer(
    handle: IO[bytes],
    *,
    source: str,
    columns: ColumnMap,
    sep: str = ",",
    header: bool = True,
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    scale: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, LoadReport]:
    """:func:`read_csv` on an open binary file (e.g. a member of a zip archive)."""
    handle, sep, encoding = single_byte_separator(handle, sep, encoding)
    column_names = list(names) if names is not None else None
    try:
        frame = pd.read_csv(
            handle,
            sep=sep,
            header=0 if header else None,
            names=column_names,
            encoding=encoding,
            skip_blank_lines=False,  # keeps row position == line number - offset
            quotechar='"',
            dtype=_text_dtype(columns, header or column_names is not None),
            index_col=False,
        )
    except UnicodeDecodeError as error:
        raise RatingsFormatError(
            f"{source}: not valid {encoding} text ({error.reason} at byte {error.start}); "
            "pass encoding='latin-1' for older MovieLens files",
            source=source,
        ) from error
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{source}: the file is empty; expected ratings") from error
    except pd.errors.ParserError as error:
        raise RatingsFormatError(f"{source}: cannot parse: {error}", source=source) from error
    if column_names is None and not header:  # positions become the names "0", "1", ...
        frame.columns = [str(c) for c in frame.columns]
    first_line = 2 if header else 1
    return validate_frame(frame, columns=columns, source=source, first_line=first_line, scale=scale)


def _text_dtype(columns: ColumnMap, named: bool) -> dict[str | int, Any]:
    """Columns read as text: titles (a title like "1984" must not become a number) and,
    unless the format fixes them as integers, ids ("007" must not become 7)."""
    text = [columns.title] if columns.title is not None else []
    if columns.ids != "int":
        text += [columns.user, columns.item]
    return {(c if named else int(c)): str for c in text if named or c.isdigit()}


def single_byte_separator(handle: IO[bytes], sep: str, encoding: str) -> tuple[IO[bytes], str, str]:
    """Rewrite a multi-character separator (ml-1m's ``::``) to one byte.

    pandas parses multi-character separators only with its slow Python engine; a
    one-byte stand-in keeps the C parser.
    Returns the handle, separator and encoding to read with.
    """
    if len(sep) == 1:
        return handle, sep, encoding
    text = handle.read().decode(encoding).replace(sep, "\x1f")
    return io.BytesIO(text.encode("utf-8")), "\x1f", "utf-8"


def read_table(
    path: Path, *, text_columns: Sequence[str] = (), sep: str | None = None,
    encoding: str = "utf-8", what: str = "table",
) -> pd.DataFrame:  # fmt: skip
    """A CSV/TSV/parquet table as it is (no columns required), ``text_columns`` read as
    text from text files (ids: "007" stays "007"); a tab separates ``.tsv``/``.tab``
    files and a comma the others unless ``sep`` says.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        DataError: naming the file, for one that cannot be read as what it claims.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa

        try:
            return pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read it as parquet ({error})") from None
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, "rb") as raw:
            handle, one_byte, text_encoding = single_byte_separator(raw, sep, encoding)
            return pd.read_csv(handle, sep=one_byte, encoding=text_encoding,
                               dtype=dict.fromkeys(text_columns, str),
                               keep_default_na=False)  # fmt: skip
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not valid {encoding} text ({error.reason} at byte {error.start}); "
            "pass encoding='latin-1' or the file's own encoding"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header line naming its "
                        "columns, then one row per line") from None  # fmt: skip
    except pd.errors.ParserError as error:
        first = str(error).strip().split("\n")[0]  # pandas adds advice about options
        raise DataError(
            f"{path}: cannot parse it ({first}); check the separator (sep=...)"
        ) from None


def read_parquet(
    path: str | Path, *, columns: ColumnMap, scale: tuple[float, float] | None = None
) -> tuple[pd.DataFrame, LoadReport]:
    """Read a parquet file into the canonical frame (errors name 0-based rows)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ratings file not found: {path}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = list(columns.required().values())
    try:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in wanted if c in present])
    except (pa.ArrowException, OSError) as error:
        raise RatingsFormatError(
            f"{path}: not a readable parquet file ({error})", source=str(path)
        ) from error
    # Convert column by column, freeing Arrow's copy as it goes, then hand the freed
    # pool memory back: a 25M-row file would otherwise hold twice its size.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    pa.default_memory_pool().release_unused()
    return validate_frame(frame, columns=columns, source=str(path), scale=scale)


def validate_frame(
    frame: pd.DataFrame,
    *,
    columns: ColumnMap,
    source: str = "DataFrame",
    first_line: int | None = None,
    scale: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Check a frame and return it in canonical form with a load report.

    The canonical frame has columns ``user``, ``item`` (raw ids), ``rating`` (float32),
    and when mapped ``timestamp`` (int64 unix seconds) and ``title`` (object).

    Raises:
        DataError: a mapped column is absent, or there are no ratings.
        RatingsFormatError: missing ids, non-numeric/NaN/infinite ratings, ratings
            outside ``scale``, or bad timestamps, with their lines or rows.
    """
    where = _Where(source, first_line)
    mapping = columns.required()
    missing = [f"{name} ({col!r})" for name, col in mapping.items() if col not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"found {[str(c) for c in frame.columns]}. Map fields to columns with "
            "user=..., item=..., rating=... (and timestamp=..., title=...)"
        )
    frame = frame[list(mapping.values())].set_axis(list(mapping), axis=1)
    blank = frame.isna().all(axis=1).to_numpy() if first_line is not None else None
    positions = np.arange(len(frame))
    if blank is not None and blank.any():
        frame, positions = frame[~blank], positions[~blank]
    if len(frame) == 0:
        raise DataError(f"{source}: no ratings found (expected rows of user, item, rating)")
    out = {
        "user": _check_ids(frame["user"], "user", mapping["user"], where, positions, columns.ids),
        "item": _check_ids(frame["item"], "item", mapping["item"], where, positions, columns.ids),
        "rating": _check_ratings(frame["rating"], mapping["rating"], where, positions, scale),
    }
    if "timestamp" in mapping:
        out["timestamp"] = _check_timestamps(
            frame["timestamp"], mapping["timestamp"], where, positions
        )
    if "title" in mapping:
        titles = frame["title"].to_numpy(dtype=object, copy=True)
        titles[pd.isna(titles)] = None
        out["title"] = titles
    canonical = pd.DataFrame(out)
    blank_lines = int(blank.sum()) if blank is not None else 0
    named = tuple((name, str(column)) for name, column in mapping.items())
    report = LoadReport(
        source=source, rows_read=len(canonical), blank_lines=blank_lines, columns=named
    )
    return canonical, report


def _check_ids(
    values: pd.Series,
    field: str,
    column: str,
    where: _Where,
    positions: np.ndarray,
    ids: IdType = "auto",
) -> np.ndarray:
    missing = values.isna().to_numpy()
    if missing.any():
        where.fail(column, positions[missing], f"has no {field} id")
    array = values.to_numpy()
    if array.dtype.kind == "f":  # ints read beside a NaN elsewhere, or written as 1.0
        fractional = array != np.round(array)
        if fractional.any():
            where.fail(
                column, positions[fractional], f"has non-integer {field} ids", array[fractional]
            )
        inexact = np.abs(array) > EXACT_FLOAT
        if inexact.any():
            where.fail(
                column, positions[inexact],
                f"has {field} ids written as decimals beyond 2^53, which do not name one "
                "integer exactly (write them as integers, or read ids as text)",
                array[inexact],
            )  # fmt: skip
        array = array.astype(np.int64)
    if array.dtype.kind in "iu":
        return array.astype(str).astype(object) if ids == "text" else array
    if array.dtype.kind == "b":
        where.fail(column, positions, f"has true/false values, not {field} ids", array)
    return _text_ids(array, field, column, where, positions, ids)


def _text_ids(
    array: np.ndarray, field: str, column: str, where: _Where, positions: np.ndarray, ids: IdType
) -> np.ndarray:
    """Ids that arrived as text (or mixed objects): checked once per distinct value."""
    codes, uniques = factorize(array)
    texts = pd.Series(uniques, dtype=object)
    is_text = texts.map(type).isin([str, np.str_])
    if not is_text.any() and ids != "text":
        return array  # numbers held as objects: the vocabulary types them
    if ids == "text" or (not is_text.all() and ids == "auto"):
        return np.asarray(texts.astype(str).to_numpy(dtype=object)[codes])
    keys, canonical = integer_keys_of(texts.astype(str).to_numpy(dtype=object))
    if ids == "auto" and not canonical.all():
        return np.asarray(texts.astype(str).to_numpy(dtype=object)[codes])
    if not canonical.all():
        bad = np.isin(codes, np.flatnonzero(~canonical))
        where.fail(
            column, positions[bad],
            f"has {field} ids that are not integers (in canonical form, within int64)",
            array[bad],
        )  # fmt: skip
    return np.asarray(keys[codes])


def _check_ratings(
    values: pd.Series,
    column: str,
    where: _Where,
    positions: np.ndarray,
    scale: tuple[float, float] | None,
) -> np.ndarray:
    missing = values.isna().to_numpy()
    if missing.any():
        where.fail(column, positions[missing], "has a missing rating (expected a number)")
    numeric = _numeric(values, column, where, positions, "is not a number")
    if not np.isfinite(numeric).all():
        bad = ~np.isfinite(numeric)
        where.fail(column, positions[bad], "has an infinite rating", numeric[bad])
    if scale is not None:
        low, high = scale
        outside = (numeric < low) | (numeric > high)
        if outside.any():
            where.fail(
                column,
                positions[outside],
                f"has ratings outside the declared scale [{low:g}, {high:g}]",
                numeric[outside],
            )
    return numeric.astype(np.float32)


def _check_timestamps(
    values: pd.Series, column: str, where: _Where, positions: np.ndarray
) -> np.ndarray:
    missing = values.isna().to_numpy()
    if missing.any():
        where.fail(column, positions[missing], "has a missing timestamp")
    if pd.api.types.is_datetime64_any_dtype(values):
        seconds = values.to_numpy().astype("datetime64[s]").astype(np.int64)
        return np.asarray(seconds)
    numeric = _numeric(values, column, where, positions, "is not a unix timestamp")
    fractional = numeric != np.floor(numeric)
    if fractional.any():
        where.fail(column, positions[fractional], "has fractional timestamps", numeric[fractional])
    return numeric.astype(np.int64)


def _numeric(
    values: pd.Series, column: str, where: _Where, positions: np.ndarray, problem: str
) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64)
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna().to_numpy()
    if bad.any():
        where.fail(column, positions[bad], problem, values.to_numpy()[bad])
    return converted.to_numpy(dtype=np.float64)


def atomic_target(path: str | Path) -> tuple[Path, Path]:
    """A temporary sibling to write, and the final path to rename it to.

    Writing to the sibling and then ``os.replace``-ing it means a crash mid-write
    leaves the old file (or nothing), never a truncated one.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.{os.getpid()}.tmp"), final


def write_frame_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to parquet atomically; returns the final path."""
    temporary, final = atomic_target(path)
    try:
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final
