"""Ratings already encoded, kept on disk so that a second run starts in seconds.

Reading 100M ratings from CSV or parquet and encoding their ids takes tens of seconds
each time. Once encoded, a ``Ratings`` is a few flat arrays (int32 codes, float32
ratings, int64 timestamps) and two vocabularies; :func:`save_encoded` writes them as
``.npy`` files beside a JSON description into a folder, and :func:`load_encoded` maps
them back (memory-mapped copy-on-write by default: pages are read as they are used,
and the file never changes). The folder is written under a temporary name and renamed,
so an interrupted save leaves nothing half-written; every array's length is checked on
loading.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from collabfilter.data.encoding import Vocabulary
from collabfilter.data.io import LoadReport
from collabfilter.data.ratings import Ratings, RatingScale
from collabfilter.errors import DataError

FORMAT = "collabfilter-encoded-ratings/1"
_COLUMNS = ("user_idx", "item_idx", "rating", "timestamp")


def save_encoded(ratings: Ratings, folder: str | Path) -> Path:
    """Write ``ratings`` into ``folder`` (replaced if present); returns the folder."""
    final = Path(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        for name in _COLUMNS:
            column = getattr(ratings, name)
            if column is not None:
                np.save(temporary / f"{name}.npy", np.ascontiguousarray(column))
        scale = ratings.scale
        description = {
            "format": FORMAT, "ratings": len(ratings), "source": ratings.report.source,
            "scale": {"low": scale.low, "high": scale.high, "step": scale.step},
            "users": ratings.users.to_dict(), "items": ratings.items.to_dict(),
        }  # fmt: skip
        (temporary / "ratings.json").write_text(json.dumps(description))
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def load_encoded(folder: str | Path, *, mmap: bool = True) -> Ratings:
    """The ``Ratings`` :func:`save_encoded` wrote into ``folder``.

    Raises:
        FileNotFoundError: if the folder or its description is missing.
        DataError: if the folder is not an encoded-ratings folder or its arrays disagree.
    """
    folder = Path(folder)
    description_path = folder / "ratings.json"
    if not description_path.is_file():
        raise FileNotFoundError(f"no encoded ratings in {folder} (ratings.json missing)")
    description = json.loads(description_path.read_text())
    if description.get("format") != FORMAT:
        raise DataError(f"{folder}: not a {FORMAT} folder (format {description.get('format')!r})")
    arrays = {
        name: np.load(folder / f"{name}.npy", mmap_mode="c" if mmap else None)
        for name in _COLUMNS
        if (folder / f"{name}.npy").exists()
    }
    lengths = {name: len(array) for name, array in arrays.items()}
    if set(lengths.values()) != {description["ratings"]} or len(arrays) < 3:
        raise DataError(f"{folder}: arrays {lengths} do not hold {description['ratings']} ratings")
    scale = description["scale"]
    return Ratings(
        arrays["user_idx"], arrays["item_idx"], arrays["rating"],
        users=Vocabulary.from_dict(description["users"]),
        items=Vocabulary.from_dict(description["items"]),
        timestamp=arrays.get("timestamp"),
        scale=RatingScale(scale["low"], scale["high"], scale["step"]),
        report=LoadReport(source=f"{description['source']} (encoded, {folder})",
                          rows_read=description["ratings"]),
    )  # fmt: skip
