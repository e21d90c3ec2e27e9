"""Encoded ratings cached on disk: a second run starts from the arrays, not the file."""

import json

import numpy as np
import pytest

from collabfilter import Ratings
from collabfilter.data import load_encoded, save_encoded
from collabfilter.errors import DataError


def test_round_trip_keeps_codes_vocabularies_and_scale(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "user,item,rating,title,timestamp\n007,1,4.5,Heat,5\n7,2,3,Up,6\na,1,1,Heat,7\n"
    )
    ratings = Ratings.from_csv(path, title="title", timestamp="timestamp")
    folder = save_encoded(ratings, tmp_path / "cache")
    again = load_encoded(folder)
    for name in ("user_idx", "item_idx", "rating", "timestamp"):
        assert np.array_equal(getattr(again, name), getattr(ratings, name))
    assert again.users == ratings.users and again.items == ratings.items
    assert again.scale == ratings.scale and again.users.ids.tolist() == ["007", "7", "a"]
    assert isinstance(again.rating, np.memmap) or isinstance(again.rating.base, np.memmap)
    assert not isinstance(load_encoded(folder, mmap=False).rating.base, np.memmap)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "r.csv"]  # no temp left


def test_damaged_folders_are_refused(tmp_path):
    ratings = Ratings.from_df(__import__("pandas").DataFrame(
        {"user": [1, 2], "item": [1, 1], "rating": [1.0, 2.0]}))  # fmt: skip
    folder = save_encoded(ratings, tmp_path / "cache")
    np.save(folder / "rating.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(DataError, match="do not hold 2 ratings"):
        load_encoded(folder)
    (folder / "ratings.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not a collabfilter-encoded-ratings"):
        load_encoded(folder)
    with pytest.raises(FileNotFoundError):
        load_encoded(tmp_path / "absent")
