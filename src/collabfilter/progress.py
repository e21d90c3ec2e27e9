"""The one adapter over the progress-bar library (rich), shared by downloads and training.

Bars go to stderr and only when it is a terminal (or when forced), so logs, CI output
and piped commands stay clean; ``COLLABFILTER_PROGRESS=0`` silences them everywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


def progress_enabled(requested: bool | None = None) -> bool:
    """Whether to draw bars: an explicit request wins, then the environment, then a tty."""
    if requested is not None:
        return requested
    setting = os.environ.get("COLLABFILTER_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()


@contextmanager
def progress_bar(
    total: float | None,
    description: str,
    *,
    unit: str = "steps",
    enabled: bool | None = None,
) -> Iterator[Callable[[float], None]]:
    """A bar for ``total`` units; yields ``advance(n)``. A no-op when disabled.

    ``unit="bytes"`` shows sizes and transfer speed (downloads).
    """
    if not progress_enabled(enabled):
        yield lambda n: None
        return
    columns: tuple[ProgressColumn, ...]
    if unit == "bytes":
        columns = (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    else:
        columns = (MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
