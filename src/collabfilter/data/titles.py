"""Finding items by what people type: forgiving title search over any catalogue.

MovieLens titles come in two styles: ml-100k's "Star Wars (1977)" and "Godfather, The
(1972)", and the CSV releases' "Star Wars: Episode IV - A New Hope (1977)". A person
types "star wars" or "the godfather". The index tries, in order: the exact title, the
title ignoring case, the title ignoring case, year, punctuation and a moved article,
the same without any leading article, then titles containing every word typed, then
titles containing the typed text. The first step with any match decides; several
matches at that step are ambiguous, and are listed most rated first.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

_ARTICLES = ("the", "a", "an", "les", "la", "le", "il", "das", "der", "die", "el")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
_MOVED_ARTICLE = re.compile(r"^(.*?),\s*(" + "|".join(_ARTICLES) + r")(\s*\(.*\))?$")


def normalise(title: str) -> str:
    """Lower case, no year, a trailing article moved back to the front, punctuation
    folded to single spaces: "Godfather, The (1972)" -> "the godfather"."""
    text = _YEAR.sub("", str(title)).strip().lower()
    match = _MOVED_ARTICLE.match(text)
    if match:
        text = f"{match.group(2)} {match.group(1)}{match.group(3) or ''}"
    return re.sub(r"[^\w]+", " ", text).strip()


def bare(title: str) -> str:
    """:func:`normalise` without a leading article ("the godfather" -> "godfather")."""
    words = normalise(title).split(" ")
    return " ".join(words[1:] if len(words) > 1 and words[0] in _ARTICLES else words)


@dataclass(frozen=True)
class TitleMatch:
    """The outcome of a lookup: matching item indices, most rated first, and how they
    matched (``"exact"``, ``"words"``, ``"substring"``, ``"close"`` or ``"none"``)."""

    item_idx: np.ndarray
    how: str

    @property
    def unique(self) -> bool:
        return len(self.item_idx) == 1 and self.how != "close"


class TitleIndex:
    """Normalised forms of a catalogue's titles, built once, searched per query.

    Args:
        titles: title per item index (None where unknown).
        counts: training ratings per item index (orders ambiguous matches).
    """

    def __init__(self, titles: np.ndarray, counts: np.ndarray) -> None:
        self.titles = pd.Series(titles, dtype=object)
        present = self.titles.notna()
        text = self.titles.where(present, "").astype(str)
        self.present = present.to_numpy()
        self.lower = text.str.lower().to_numpy(dtype=object)
        self.normal = pd.Series(text.map(normalise), dtype=object)
        self.bare = text.map(bare).to_numpy(dtype=object)
        self.counts = np.asarray(counts)

    def match(self, query: str) -> TitleMatch:
        """Items whose title matches ``query`` at the first step that finds any."""
        text = str(query).strip()
        words = normalise(text).split()
        steps = (
            ("exact", lambda: self.titles.to_numpy(dtype=object) == text),
            ("exact", lambda: self.lower == text.lower()),
            ("exact", lambda: self.normal.to_numpy(dtype=object) == normalise(text)),
            ("exact", lambda: self.bare == bare(text)),
            ("words", lambda: self._has_words(words)),
            ("substring", lambda: self.normal.str.contains(" ".join(words), regex=False)),
        )
        for how, found in steps:
            if not words and how != "exact":
                break
            hits = np.flatnonzero(np.asarray(found(), dtype=bool) & self.present)
            if len(hits):
                return TitleMatch(self._most_rated_first(hits), how)
        return TitleMatch(self.close(text), "close" if text else "none")

    def _has_words(self, words: list[str]) -> np.ndarray:
        mask = np.ones(len(self.normal), dtype=bool)
        padded = " " + self.normal + " "
        for word in words:
            mask &= padded.str.contains(f" {word} ", regex=False).to_numpy(dtype=bool)
        return mask

    def close(self, text: str, n: int = 5) -> np.ndarray:
        """Indices of the titles closest to ``text`` by spelling (for hints)."""
        titled = np.flatnonzero(self.present)
        names = self.titles.to_numpy(dtype=object)[titled].tolist()
        close = difflib.get_close_matches(text, names, n=n, cutoff=0.5)
        position = {name: i for i, name in zip(titled, names, strict=True)}
        return np.array([position[c] for c in close], dtype=np.int64)

    def _most_rated_first(self, hits: np.ndarray) -> np.ndarray:
        return hits[np.argsort(-self.counts[hits], kind="stable")].astype(np.int64)
