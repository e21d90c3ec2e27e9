"""Every exception and warning collabfilter raises.

Each class also subclasses the builtin a generic handler would expect (``ValueError`` for
bad input, ``KeyError`` for an unknown id, ``OSError`` for a missing file), so code
written against plain Python exceptions keeps working. This module imports nothing from
the package so that every layer can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


class CollabFilterError(Exception):
    """Base class of all collabfilter errors."""


class DataError(CollabFilterError, ValueError):
    """Ratings data that cannot be used as given (bad values, missing columns, empty)."""


class RatingsFormatError(DataError):
    """A ratings file or frame holds values of the wrong kind.

    ``source`` names the file (or ``"DataFrame"``), ``column`` the field, and ``lines``
    the 1-based line numbers (file) or row positions (frame) of the first offenders.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        column: str | None = None,
        lines: Sequence[int] = (),
    ) -> None:
        super().__init__(message)
        self.source = source
        self.column = column
        self.lines = list(lines)


class DuplicateRatingsError(DataError):
    """The same (user, item) pair is rated more than once under ``duplicates="error"``."""


class UnknownIdError(CollabFilterError, KeyError):
    """A user or item id (or title) that the vocabulary does not hold."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class AmbiguousTitleError(UnknownIdError):
    """A title shared by several ids; the message lists them."""


class DatasetError(CollabFilterError):
    """Base class for problems with named datasets (registry, files, downloads)."""


class UnknownDatasetError(DatasetError, ValueError):
    """A dataset name that is not in the registry."""


class DatasetUnavailableError(DatasetError, OSError):
    """The dataset is neither on disk nor downloadable; the message says how to get it."""


class ChecksumError(DatasetError, OSError):
    """A downloaded or cached file does not match its published size or digest."""


class SplitError(DataError):
    """A split that cannot be made with the given parameters."""


class ConfigError(CollabFilterError, ValueError):
    """A configuration value outside what is allowed; the message says what is."""


class NotFittedError(CollabFilterError, ValueError, AttributeError):
    """A model used before it was trained or loaded."""


class TrainingDivergedError(CollabFilterError, ArithmeticError):
    """The loss became NaN or infinite; the message suggests a lower learning rate."""


class ListenError(CollabFilterError, OSError):
    """The service cannot listen where it was asked to (the address is in use, or not
    this machine's); the message says which address and what to do."""

    exit_code: ClassVar[int] = 9
    """The exit code of ``collabfilter serve`` and ``python -m collabfilter.serve``."""


class ModelFileError(CollabFilterError, ValueError):
    """A model file that is missing parts, from an unknown format version, or corrupt."""


class CollabFilterWarning(UserWarning):
    """Base class of all collabfilter warnings."""


class ChecksumMismatchWarning(CollabFilterWarning):
    """A development release (e.g. ml-latest-small) differs from the recorded digest."""


class DataWarning(CollabFilterWarning):
    """Input was usable but something was dropped or changed; the message counts it."""


class TrainingWarning(CollabFilterWarning):
    """A fit ran but its settings look wrong for the data (a rate on another scale, a
    result worse than the bias baseline); the message says what to use instead."""
