"""The training display: a bar over batches and the epoch table, printed as it goes.

Shown on stderr when it is a terminal (or when asked); quiet otherwise, so logs and
pipes get nothing from the library. The same numbers are always in ``Learner.history``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from collabfilter.progress import progress_enabled

if TYPE_CHECKING:
    from collabfilter.fitted import EpochRecord

HEADER = f"{'epoch':>5}  {'train_loss':>10}  {'valid_loss':>10}  {'valid_rmse':>10}  {'time':>7}"


def format_record(record: EpochRecord) -> str:
    """One line of the epoch table (blank validation columns without a valid set)."""

    def number(value: float | None) -> str:
        return f"{value:10.4f}" if value is not None else f"{'':10}"

    return (
        f"{record.epoch:5d}  {number(record.train_loss)}  {number(record.valid_loss)}  "
        f"{number(record.valid_rmse)}  {record.seconds:6.2f}s"
    )


def announce(text: str, enabled: bool | None) -> None:
    """A line on stderr about a choice training made (shown with the epoch table)."""
    if progress_enabled(enabled):
        Console(stderr=True).print(f"note: {text}", highlight=False)


class EpochReporter:
    """Context manager: ``advance(n)`` after each batch, ``epoch_done(record)`` after each epoch."""

    def __init__(self, epochs: int, batches_per_epoch: int, enabled: bool | None) -> None:
        self.enabled = progress_enabled(enabled)
        self.epochs = epochs
        self.batches = batches_per_epoch
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> EpochReporter:
        if self.enabled:
            console = Console(stderr=True)
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=True,
            )  # fmt: skip
            self._progress.start()
            self._progress.console.print(HEADER, highlight=False)
            self._task = self._progress.add_task("epoch 1", total=self.batches * self.epochs)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def epoch_done(self, record: EpochRecord) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.console.print(format_record(record), highlight=False)
            self._progress.update(self._task, description=f"epoch {record.epoch + 1}")

    def note(self, text: str) -> None:
        """A line under the table (e.g. which epoch's weights were kept, and why)."""
        if self._progress is not None:
            self._progress.console.print(f"note: {text}", highlight=False)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
