"""What long work shows as it goes: download bars, the epoch table, notes on choices.

The epoch table and the notes (which decay strength or ranking model a recipe chose)
are plain lines on stderr, shown wherever training runs: a terminal, a notebook, or a
script whose output goes to a file (fastai's table appears in all three). The animated
bar is drawn only where someone watches: a terminal, or a notebook that has ipywidgets
(without it rich cannot animate there, and would only print a warning each time the bar
starts). Both follow one switch: ``RunOptions(progress=False)`` for one run,
``COLLABFILTER_PROGRESS=0`` for every run (``1`` forces them on). Everything shown is
also in ``Learner.history``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


@dataclass(frozen=True)
class EpochRecord:
    """One row of the training table (an epoch, a sampler sweep, or a closed-form fit)."""

    epoch: int
    train_loss: float | None
    """Training MSE (None for a closed-form ranking fit, which has no rating loss)."""
    valid_loss: float | None
    valid_rmse: float | None
    seconds: float


HEADER = f"{'epoch':>5}  {'train_loss':>10}  {'valid_loss':>10}  {'valid_rmse':>10}  {'time':>7}"


def format_record(record: EpochRecord) -> str:
    """One line of the epoch table (blank validation columns without a valid set)."""

    def number(value: float | None) -> str:
        return f"{value:10.4f}" if value is not None else f"{'':10}"

    return (
        f"{record.epoch:5d}  {number(record.train_loss)}  {number(record.valid_loss)}  "
        f"{number(record.valid_rmse)}  {record.seconds:6.2f}s"
    )


def _setting() -> bool | None:
    setting = os.environ.get("COLLABFILTER_PROGRESS", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    return None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where fastai shows its table too)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    get_ipython = getattr(shell, "get_ipython", None)
    kernel = get_ipython() if get_ipython is not None else None
    return kernel is not None and "IPKernelApp" in getattr(kernel, "config", {})


def _widgets() -> bool:
    """Whether rich can animate a bar in a notebook (it draws with ipywidgets)."""
    return importlib.util.find_spec("ipywidgets") is not None


def table_enabled(requested: bool | None = None) -> bool:
    """Whether to show the epoch table and notes: the request, then the environment,
    else yes."""
    if requested is not None:
        return requested
    setting = _setting()
    return True if setting is None else setting


def progress_enabled(requested: bool | None = None) -> bool:
    """Whether to draw animated bars: the request, then the environment, then whether
    someone watches (a terminal, or a notebook with ipywidgets)."""
    if requested is not None:
        return requested
    setting = _setting()
    if setting is not None:
        return setting
    return sys.stderr.isatty() or (in_notebook() and _widgets())


def _console() -> Console:
    return Console(stderr=True, soft_wrap=True)


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
        TextColumn("{task.description}"), BarColumn(), *columns, console=_console(), transient=True
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def announce(text: str, enabled: bool | None) -> None:
    """A note on stderr about a choice training made (shown with the epoch table)."""
    if table_enabled(enabled):
        _console().print(f"note: {text}", highlight=False, markup=False)


class EpochReporter:
    """Context manager: ``advance(n)`` after each batch, ``epoch_done(record)`` after each
    epoch; the table's lines when enabled, and a bar over batches where someone watches."""

    def __init__(self, epochs: int, batches_per_epoch: int, enabled: bool | None) -> None:
        self.table = table_enabled(enabled)
        self.bar = self.table and progress_enabled(enabled)
        self.epochs = epochs
        self.batches = batches_per_epoch
        self._console = _console() if self.table else None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> EpochReporter:
        if self._console is None:
            return self
        if self.bar:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self._console, transient=True,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task("epoch 1", total=self.batches * self.epochs)
        self._print(HEADER)
        return self

    def _print(self, line: str) -> None:
        console = self._progress.console if self._progress is not None else self._console
        if console is not None:
            console.print(line, highlight=False, markup=False)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def epoch_done(self, record: EpochRecord) -> None:
        self._print(format_record(record))
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"epoch {record.epoch + 1}")

    def note(self, text: str) -> None:
        """A line under the table (e.g. which epoch's weights were kept, and why)."""
        self._print(f"note: {text}")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
