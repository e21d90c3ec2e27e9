"""What commands print: rich tables for people, JSON for programs (``--json``).

JSON keeps ids in their own type (an integer id is a number, a text id a string),
writes missing values as ``null`` and never ``NaN`` or ``Infinity``; text that is not
valid Unicode (a path's undecodable bytes) is escaped.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from collabfilter.cli.messages import printable
from collabfilter.cli.tables import frame_table


def plain(value: Any) -> Any:
    """A JSON-ready Python value: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return printable(value)
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts."""
    return [
        {str(column): plain(value) for column, value in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(plain(document), allow_nan=False) + "\n")


def show(console: Console, frame: pd.DataFrame, title: str, *, digits: int = 3) -> None:
    """A frame as a rich table with a title."""
    console.print()
    console.print(frame_table(frame, title, digits=digits))
