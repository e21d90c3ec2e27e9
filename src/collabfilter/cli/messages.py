"""How failures and warnings read on the command line: one line each, in its words.

The library's messages tell a Python caller which argument to pass (``encoding=``,
``user=...``, ``recommend_new_user``); at the command line the answer is a flag. The
known phrases are rewritten here, where every message passes on its way to stderr, so
the library keeps speaking to Python callers and the CLI to people typing commands.
"""

from __future__ import annotations

import re
import traceback
import unicodedata
from collections.abc import Callable

Rewrite = str | Callable[[re.Match[str]], str]

FLAG_WORDS: tuple[tuple[re.Pattern[str], Rewrite], ...] = (
    (
        re.compile(
            r"(found \['[^']*'\])\. Map fields to columns with user=\.\.\., .*?title=\.\.\.\)"
        ),
        r"\1: a file read as one column needs --sep (or name the columns with --user, "
        r"--item and --rating)",
    ),
    (
        re.compile(r"Map fields to columns with user=\.\.\., .*?title=\.\.\.\)"),
        "Name them with --user, --item and --rating (and --timestamp, --title)",
    ),
    (re.compile(r"pass encoding='([^']*)'"), r"pass --encoding \1"),
    (re.compile(r"\(sep=\.\.\.\)"), "(--sep)"),
    (re.compile(r"load them with timestamp=\.\.\."), "name their column with --timestamp"),
    (
        re.compile(r"recommend_new_user folds in a user from ratings"),
        "recommend --rated ITEM=RATING recommends for a new user",
    ),
    (
        re.compile(r"name the id columns with user=\.\.\., item=\.\.\."),
        "name the id columns with --user and --item",
    ),
    (
        re.compile(r"\(lr_max\) or raise weight decay"),
        "(--lr) or raise the weight decay (--wd)",
    ),
    (re.compile(r"resolved by duplicates='last'"), "resolved by keeping the last one"),
    (
        re.compile(
            r"train the topn recipe \(and save it beside the rating model\) for top-N lists"
        ),
        "train with --with-ranking (or --model topn) for top-N lists, or use --by rating",
    ),
    (
        re.compile(r"or pass its path: load_movielens\([^)]*\) / collabfilter \.\.\. --data PATH"),
        "or pass its path with --data PATH",
    ),
    (
        re.compile(r"\b(min_ratings|reload_poll|workers|port) must be"),
        lambda match: f"--{match[1].replace('_', '-')} must be",
    ),
    (
        re.compile(r"such as model='bayes', or features='none'"),
        "such as --model bayes, or --features none",
    ),
)
"""Library phrases and what the command line says instead."""

_BREAK = re.compile(r"\s*[\n\r]+\s*")


def in_flags(message: str) -> str:
    """``message`` with the library's Python advice replaced by the matching flags."""
    for pattern, rewrite in FLAG_WORDS:
        message = pattern.sub(rewrite, message)
    return message


def one_line(text: str) -> str:
    """``text`` on one printable line: line breaks become spaces; other control
    characters, line separators and undecodable bytes (lone surrogates) are escaped,
    so that a hostile id or path can neither split the line nor drive the terminal."""
    flat = _BREAK.sub(" ", text.strip())
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if char != "\t" and unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs")
        else char
        for char in flat
    )


def printable(text: str) -> str:
    """``text`` as it can be written to any UTF-8 stream: lone surrogates (bytes of a
    path that were not UTF-8) escaped, everything else kept."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def describe_bug(error: BaseException) -> str:
    """One line for an exception no command expects: a bug, said to be one, with where
    it was raised so that the line alone is a useful report."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "collabfilter" in f.filename] or frames
    where = ""
    if ours:
        frame = ours[-1]
        path = frame.filename.replace("\\", "/")
        short = path[path.rfind("collabfilter/") :] if "collabfilter/" in path else path
        where = f" at {short}:{frame.lineno}"
    detail = f": {error}" if str(error) else ""
    return (
        f"internal error, {type(error).__name__}{detail}{where} (a bug in collabfilter: "
        "please report it with the command that caused it)"
    )
