"""Integer ids match exactly over the whole int64 range, in every form they arrive in;
anything that names no id (beyond int64, non-canonical text, invalid Unicode) is
refused clearly, never mapped to another row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.data.encoding import parse_integer_id
from collabfilter.errors import DataError, UnknownIdError
from collabfilter.models import RECIPES
from collabfilter.train import collab_learner

MAX = 2**63 - 1
INT64_IDS = st.integers(min_value=-MAX, max_value=MAX)
# ids that float64 cannot tell apart: neighbours above 2^53, and the ends of int64
CROWDED = [2**53 + k for k in range(-3, 6)] + [MAX - k for k in range(5)]
CROWDED += [-MAX + k for k in range(5)] + [76561198000000000 + k for k in range(20)]


def forms(value: int) -> list[object]:
    """Every way an integer id reaches the library: int, numpy ints, canonical text."""
    out: list[object] = [value, np.int64(value), str(value)]
    if value >= 0:
        out.append(np.uint64(value))
    return out


@given(st.lists(INT64_IDS, min_size=1, max_size=40, unique=True), st.data())
@settings(max_examples=150, deadline=None)
def test_every_form_of_an_int64_id_finds_its_own_row(ids, data):
    vocabulary = cf.Vocabulary(ids + [v for v in CROWDED if v not in ids], kind="user")
    for value in data.draw(st.lists(st.sampled_from(vocabulary.ids.tolist()), max_size=10)):
        expected = vocabulary.index_of(value)
        for form in forms(int(value)):
            assert vocabulary.find(np.array([form], dtype=object))[0] == expected
            assert vocabulary.index([form])[0] == expected
        assert vocabulary.find(np.array([value], dtype=np.int64))[0] == expected


@given(
    st.one_of(
        st.integers(min_value=MAX + 1, max_value=2**70),
        st.integers(max_value=-MAX - 1, min_value=-(2**70)),
        st.integers(min_value=0, max_value=MAX).map(lambda v: "0" + str(v)),
        st.integers(min_value=-MAX, max_value=MAX).map(lambda v: f" {v}"),
        st.integers(min_value=-MAX, max_value=MAX).map(lambda v: f"{v}.0"),
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda f: not (f == f and f.is_integer() and abs(f) <= 2**53)
        ),
        st.text(max_size=12).filter(lambda t: parse_integer_id(t) is None),
        st.just(True),
    )
)
@settings(max_examples=300, deadline=None)
def test_what_names_no_int64_id_is_never_another_row(value):
    vocabulary = cf.Vocabulary(CROWDED + [0, 1, 7], kind="item")
    assert vocabulary.find(np.array([value], dtype=object))[0] == -1
    with pytest.raises(UnknownIdError):
        vocabulary.index([value])


def test_ids_that_cannot_be_ids_are_refused_when_building():
    for bad in ([2**63, 1], [-(2**63), 1]):
        with pytest.raises(DataError, match="int64"):
            cf.Vocabulary(bad)
    with pytest.raises(DataError, match="int64"):
        cf.Vocabulary(np.array([2**63, 1], dtype=np.uint64))
    with pytest.raises(DataError, match="valid Unicode"):
        cf.Vocabulary(["a", "b\ud800"])
    with pytest.raises(DataError, match="2\\^53"):
        cf.Vocabulary(np.array([2.0**60, 1.0]))


@pytest.fixture(scope="module")
def steam_model():
    """Steam-style 17-digit user ids, neighbours 1 apart (float64 cannot tell them)."""
    base = 76561198000000000
    rows = [(base + u, i, float(1 + (u * 7 + i * 3) % 5)) for u in range(60) for i in range(40)
            if (u + i) % 3]  # fmt: skip
    ratings = cf.Ratings.from_df(pd.DataFrame(rows, columns=["user", "item", "rating"]))
    config = replace(RECIPES["dot_bias"][1], epochs=3, tune_decay=False)
    learner = collab_learner(ratings, config=config, options=RunOptions(progress=False))
    learner.fit_recipe()
    return learner, base


def test_predictions_for_neighbouring_large_ids_are_each_their_own(steam_model, tmp_path):
    model, base = steam_model
    users = [base + u for u in range(60)]
    expected = np.array([model.predict(u, [5])[0] for u in users])
    assert len(np.unique(np.round(expected, 6))) > 50  # the users differ
    for form in (users, [str(u) for u in users], np.array(users, dtype=np.uint64)):
        assert np.array_equal(model.predict(form, [5] * 60), expected)
    frame = pd.DataFrame({"user": np.array(users, dtype=object), "item": 5})
    assert np.array_equal(model.predict_ratings(frame), expected)
    loaded = cf.load_model(model.save(tmp_path / "steam.cf"))
    assert np.array_equal(loaded.predict(users, [5] * 60), expected)
    with pytest.raises(UnknownIdError):
        model.predict([2**63], [5])
    with pytest.warns(Warning, match="unknown user"):
        flagged = model.predict([base + 15, 2**63, "0" + str(base)], [5, 5, 5], unknown="nan")
    assert flagged[0] == expected[15] and np.isnan(flagged[1:]).all()


def test_large_ids_read_from_a_csv_stay_exact(tmp_path):
    base = 76561198000000000
    lines = ["user,item,rating"] + [f"{base + u},{i},{1 + (u + i) % 5}" for u in range(5)
                                    for i in range(4)]  # fmt: skip
    path = tmp_path / "steam.csv"
    path.write_text("\n".join(lines) + "\n")
    ratings = cf.Ratings.from_csv(path)
    assert sorted(ratings.users.ids.tolist()) == [base + u for u in range(5)]
    decimals = tmp_path / "decimals.csv"
    decimals.write_text("user,item,rating\n" + "\n".join(
        f"{base + u}.0,{i},3" for u in range(3) for i in range(3)))  # fmt: skip
    kept = cf.Ratings.from_csv(decimals)  # not canonical integers: text ids, exactly
    assert sorted(kept.users.ids.tolist()) == [f"{base + u}.0" for u in range(3)]
