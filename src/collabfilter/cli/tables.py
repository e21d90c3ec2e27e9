"""The command line's tables (rich). Presentation only: no computation here.

The library returns numbers and frames; the CLI passes them to these functions. Keeping
the two apart means the library never prints and the CLI never computes. Every cell,
header and title is a plain :class:`rich.text.Text`: a title such as ``[red]film`` or
``[/]`` is shown as written, never read as rich markup.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from collabfilter.cli.messages import printable
from collabfilter.data import Ratings


def frame_table(frame: pd.DataFrame, title: str, *, index: bool = False, digits: int = 3) -> Table:
    """A rich table of a DataFrame; floats rounded, NaN shown as blank."""
    table = Table(title=plain(title), title_justify="left", show_edge=False, pad_edge=False)
    names = ([str(frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    for position, name in enumerate(names):
        numeric = position >= int(index) and pd.api.types.is_numeric_dtype(
            frame.dtypes.iloc[position - int(index)]
        )
        table.add_column(plain(name), justify="right" if numeric else "left")
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [_cell(v, digits) for v in row]
        table.add_row(*(([_cell(label, digits)] if index else []) + cells))
    return table


def plain(text: str) -> Text:
    """``text`` shown exactly as it is (no markup, no emoji codes)."""
    return Text(printable(text))


def _cell(value: Any, digits: int) -> Text:
    if value is None or value is pd.NA:
        return Text("")
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return Text("")
        return Text(f"{value:.0f}" if float(value).is_integer() else f"{value:.{digits}f}")
    return plain(str(value))


def print_summary(console: Console, ratings: Ratings, *, sample: int = 8) -> None:
    """Counts, histogram, a sample with titles and the activity crosstab."""
    summary = ratings.summary()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    low_u, mid_u, high_u = summary.ratings_per_user
    low_i, mid_i, high_i = summary.ratings_per_item
    rows = [
        ("source", summary.report.source),
        ("ratings", f"{summary.n_ratings:,}"),
        ("users", f"{summary.n_users:,}  (per user: min {low_u}, median {mid_u:g}, max {high_u})"),
        ("items", f"{summary.n_items:,}  (per item: min {low_i}, median {mid_i:g}, max {high_i})"),
        ("density", f"{summary.density:.2%}"),
        ("scale", str(summary.scale)),
        ("mean rating", f"{summary.mean:.3f} (std {summary.std:.3f})"),
    ]  # fmt: skip
    if summary.time_range is not None:
        start, end = summary.time_range
        rows.append(("time span", f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}"))
    report = summary.report
    rows.append(
        (
            "load report",
            f"{report.rows_read:,} rows read, {report.blank_lines} blank lines skipped, "
            f"{report.duplicates} duplicates dropped (policy {report.duplicate_policy!r}), "
            f"{report.items_without_title} items without title",
        )
    )
    for name, value in rows:
        facts.add_row(name, plain(value))
    console.print(facts)
    console.print()
    console.print(histogram_table(summary.histogram))
    console.print()
    console.print(frame_table(ratings.sample(sample), f"A sample of {sample} ratings"))
    console.print()
    crosstab = ratings.crosstab(15, 15)
    console.print(
        frame_table(
            crosstab,
            "Crosstab: the 15 most active users x the 15 most rated items (blank: not rated)",
            index=True,
        )
    )
    legend = ratings.items.labels(ratings.items.index(crosstab.columns.to_numpy()))
    pairs = "; ".join(f"{i}={t}" for i, t in zip(crosstab.columns, legend, strict=True))
    console.print(plain("items: " + pairs), style="dim")


def histogram_table(histogram: pd.Series, width: int = 40) -> Table:
    """Rating -> count with a bar, as a table."""
    table = Table(title="Rating histogram", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("rating", justify="right")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    total = int(histogram.sum())
    peak = int(histogram.max())
    for value, count in histogram.items():
        bar = "#" * max(1, round(width * int(count) / peak))
        table.add_row(_cell(value, 1), f"{int(count):,}", f"{int(count) / total:.1%}", bar)
    return table
