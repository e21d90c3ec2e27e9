"""What the command line accepts: ``type=`` checks of every option's value, and checks
of the files and folders a command will write, made when the command line is read.

A value out of range is a usage error (exit 2) on one line naming the option, the value
and what is allowed, found before any data is read or any model trained: a model file
that cannot be written is not discovered after training it.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from collabfilter.cli.messages import one_line

MAX_COUNT = 2**31 - 1
"""Users, items and ratings are indexed by int32 codes: no count exceeds this."""
MAX_EPOCHS = 10_000
"""Longer runs are a typing mistake rather than a plan (recipes run 5 to 200)."""
MAX_FACTORS = 4_096
"""Tables of more factors than this do not fit in memory for the larger releases."""
MAX_SEED = 2**32 - 1
"""The splits draw from NumPy's legacy generator, whose seeds lie in 0..2**32-1."""
SHOWN_CHARACTERS = 40
_Number = TypeVar("_Number", int, float)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def shown(text: str) -> str:
    """A value as an error message quotes it: repr, shortened."""
    if len(text) > SHOWN_CHARACTERS:
        return repr(text[:SHOWN_CHARACTERS]) + "..."
    return repr(text)


def whole(low: int, high: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number in ``low..high``."""

    def parse(text: str) -> int:
        value = _converted(int, text, f"a whole number in {low}..{high}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {shown(text)}")
        return value

    return parse


def real(low: float, high: float = math.inf, *, above: bool = False,
         below: bool = False) -> Callable[[str], float]:  # fmt: skip
    """A finite number from ``low`` to ``high``, either end excluded when asked."""
    allowed = (
        f"{'>' if above else '>='} {low:g}"
        if math.isinf(high)
        else f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    )

    def parse(text: str) -> float:
        value = _converted(float, text, f"a number {allowed}")
        inside = (value > low if above else value >= low) and (
            value < high if below else value <= high
        )
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {shown(text)}")
        return value

    return parse


seed = whole(0, MAX_SEED)


def _converted(convert: Callable[[str], _Number], text: str, expected: str) -> _Number:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {shown(text)}") from None


def encoding(text: str) -> str:
    """A text encoding Python knows (``utf-8``, ``latin-1``, ``cp1252``...)."""
    try:
        codecs.lookup(text)
        "a".encode(text)  # refuses codecs that are not text encodings, such as rot13
    except (LookupError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"unknown text encoding {shown(text)} (e.g. utf-8, latin-1, cp1252)"
        ) from None
    return text


def separator(text: str) -> str:
    """A field separator: one or more characters, ``\\t`` for a tab."""
    sep = "\t" if text == "\\t" else text
    control = [c for c in sep if c != "\t" and unicodedata.category(c) in ("Cc", "Zl", "Zp")]
    if not sep or control or '"' in sep:
        raise argparse.ArgumentTypeError(
            f"a separator is one or more characters other than quotes and line breaks "
            f"('\\t' for a tab), got {shown(text)}"
        )
    return sep


def input_path(text: str) -> Path:
    """A file the command will read (whether it exists is the command's check: exit 8)."""
    return _path(text)


def source(text: str) -> str:
    """A MovieLens name or a ratings file (which of the two is the command's check)."""
    _path(text)
    return text


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """A file the command will write (created with its missing folders), optionally with
    one of ``suffixes``."""

    def parse(text: str) -> Path:
        path = _path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{shown(text)} must end in {' or '.join(suffixes)}")
        if _is(path, Path.is_dir):
            raise argparse.ArgumentTypeError(f"{shown(text)} is a folder; give a file name")
        if _is(path, Path.exists) and not _is(path, Path.is_file):
            raise argparse.ArgumentTypeError(f"{shown(text)} exists and is not a regular file")
        _require_writable_folder(path.parent, text)
        return path

    return parse


def output_folder(text: str) -> Path:
    """A folder the command will write into (created when missing)."""
    path = _path(text)
    if _is(path, Path.exists) and not _is(path, Path.is_dir):
        raise argparse.ArgumentTypeError(f"{shown(text)} exists and is not a folder")
    _require_writable_folder(path, text)
    return path


def _path(text: str) -> Path:
    if not text or "\x00" in text:
        raise argparse.ArgumentTypeError(f"not a usable path: {shown(text)}")
    return Path(text)


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    try:
        return test(path)
    except OSError as error:  # a name too long, a folder we may not list...
        raise argparse.ArgumentTypeError(
            f"cannot use {shown(str(path))}: {error.strerror}"
        ) from None


def _require_writable_folder(folder: Path, text: str) -> None:
    """``folder``, or the nearest of its ancestors that exists, must be a folder we may
    write in (missing folders below it are created when the command writes)."""
    existing = folder
    while not _is(existing, Path.exists) and existing != existing.parent:
        existing = existing.parent
    if not _is(existing, Path.is_dir):
        raise argparse.ArgumentTypeError(
            f"cannot write {shown(text)}: {shown(str(existing))} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {shown(text)}: no permission to write in {shown(str(existing))}"
        )


FEATURE_KINDS = ("category", "multi", "number")


def feature_kind(text: str) -> tuple[str, str]:
    """``NAME=KIND``: a feature column's kind (``category``, ``multi`` or ``number``)."""
    name, _, kind = text.partition("=")
    if not name or kind not in FEATURE_KINDS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=KIND with KIND one of {', '.join(FEATURE_KINDS)}, got {shown(text)}"
        )
    return name, kind


def feature_choice(text: str) -> str | list[str]:
    """``auto``, ``none`` or comma-separated feature columns (``genres,user:age``)."""
    if text in ("auto", "none"):
        return text
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected auto, none or comma-separated column names, got {shown(text)}"
        )
    return names


def feature_value(text: str) -> tuple[str, str]:
    """``NAME=VALUE``: one side feature of a new user (``age=25``)."""
    name, equals, value = text.partition("=")
    if not name.strip() or not equals:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, e.g. age=25, got {shown(text)}")
    return name.strip(), value
