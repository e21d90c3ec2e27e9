"""Items known from their features alone join the vocabulary on request: predicted,
listed (marked cold) and served by a model that reads item features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run
from hypothesis import given, settings
from hypothesis import strategies as st

import collabfilter as cf
from collabfilter.cli import EXIT_USAGE
from collabfilter.config import RunOptions
from collabfilter.data import Vocabulary
from collabfilter.errors import DataError
from collabfilter.models import RECIPES
from collabfilter.recommend import recommend
from collabfilter.train import collab_learner


def catalogue() -> tuple[cf.Ratings, pd.DataFrame]:
    planted = cf.generate_ratings(150, 200, 5000, n_genres=6, seed=11)
    ratings = planted.ratings
    table = ratings.item_features.frame
    new = table.iloc[:12].copy()
    new.index = pd.Index(np.arange(5000, 5012), name=table.index.name)
    return ratings, pd.concat([table, new])


def test_new_items_follow_the_rated_ones_and_keep_their_indices():
    ratings, table = catalogue()
    plain = ratings.with_features(item_features=table)
    assert plain.n_items == ratings.n_items  # rows for unknown ids are kept, not added
    grown = plain.with_new_items()
    assert grown.n_items == ratings.n_items + 12
    assert grown.items.ids[: ratings.n_items].tolist() == ratings.items.ids.tolist()
    assert grown.items.ids[ratings.n_items :].tolist() == list(range(5000, 5012))
    np.testing.assert_array_equal(grown.item_idx, ratings.item_idx)
    assert (grown.item_counts()[ratings.n_items :] == 0).all()
    assert grown.feature_coverage()["item"] == (0, 0)
    split = cf.split_random(grown, 0.1, seed=0)
    assert split.train.n_items == grown.n_items  # splits keep the whole vocabulary
    assert grown.with_new_items().n_items == grown.n_items  # nothing left to add


def test_new_items_need_item_features():
    ratings, _ = catalogue()
    with pytest.raises(DataError, match="item features"):
        ratings.keep_features().with_new_items()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.integers(), st.floats()), max_size=6))
def test_extending_an_integer_vocabulary_takes_only_ids_that_name_integers(values):
    vocabulary = Vocabulary(np.array([1, 2, 3]), kind="item")
    try:
        grown = vocabulary.extended(values)
    except DataError as error:
        assert "item" in str(error)
        return
    assert grown.ids[:3].tolist() == [1, 2, 3] and grown.ids.dtype == np.int64
    assert len(grown) == 3 + len(values)


def test_extending_refuses_repeats_and_keeps_text_as_text():
    text = Vocabulary(np.array(["a", "b"], dtype=object), kind="item", titles=["A", "B"])
    grown = text.extended([7, "c"])
    assert grown.ids.tolist() == ["a", "b", "7", "c"]
    assert grown.titles.tolist() == ["A", "B", None, None]
    for repeated in (["a"], ["c", "c"]):
        with pytest.raises(DataError, match="unique"):
            text.extended(repeated)
    with pytest.raises(DataError, match="name no integer"):
        Vocabulary(np.array([1, 2])).extended(["007"])


def test_a_bayes_model_predicts_and_lists_new_items():
    ratings, table = catalogue()
    grown = ratings.with_features(item_features=table).with_new_items()
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(grown, model=model_config, config=config.with_length(10),
                             options=RunOptions(progress=False, seed=0))  # fmt: skip
    learner.fit_recipe()
    predicted = learner.predict([grown.users.ids[0]] * 12, list(range(5000, 5012)))
    assert np.isfinite(predicted).all() and np.ptp(predicted) > 0  # features tell them apart
    frame = recommend(learner, [grown.users.ids[0]], k=grown.n_items).to_frame(learner)
    assert set(frame.loc[frame["cold"], "item"]) == set(range(5000, 5012))


def test_the_cli_adds_new_items_on_request(tmp_path, capsys):
    ratings, table = catalogue()
    frame = pd.DataFrame({
        "user": ratings.users.ids[ratings.user_idx], "item": ratings.items.ids[ratings.item_idx],
        "rating": ratings.rating,
    })  # fmt: skip
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    table.to_csv(tmp_path / "items.csv", index_label="item")
    data = str(tmp_path / "ratings.csv")
    features = ["--item-features", str(tmp_path / "items.csv"), "--model", "bayes", "--epochs", "6"]
    code, out, err = run(capsys, ["train", data, *features, "--new-items", "--out",
                                  str(tmp_path / "m.cf")])  # fmt: skip
    assert code == 0, err
    assert "12 new items" in out
    assert len(cf.load_model(tmp_path / "m.cf").items) == ratings.n_items + 12
    code, _, err = run(capsys, ["train", data, "--new-items", "--out", str(tmp_path / "n.cf")])
    assert code == EXIT_USAGE and "--item-features" in err
