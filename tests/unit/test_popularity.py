"""New items in lists: their popularity term comes from what their features say of items
like them, in the library, its model files and the service's lists."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from test_model_file_forgery import forge

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.data.popularity import (
    log_popularity,
    observed_log_popularity,
    popularity_problem,
)
from collabfilter.errors import ModelFileError
from collabfilter.models import RECIPES
from collabfilter.recommend import recommend
from collabfilter.train import collab_learner

N_USERS, N_ITEMS = 120, 90
GENRES = ("Hit", "Niche", "Cult")
AUDIENCE = {"Hit": 60, "Niche": 6, "Cult": 20}  # raters per item of each genre


def catalogue(seed: int = 0) -> tuple[cf.Ratings, np.ndarray]:
    """Ratings whose items' popularity follows their genre, and the genres."""
    rng = np.random.default_rng(seed)
    genre = np.array([GENRES[i % 3] for i in range(N_ITEMS)])
    rows = []
    for item in range(N_ITEMS):
        raters = rng.choice(N_USERS, AUDIENCE[genre[item]], replace=False)
        rows += [(u, item, float(rng.integers(1, 6))) for u in raters]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    features = pd.DataFrame({"genres": genre}, index=pd.Index(range(N_ITEMS), name="item"))
    return cf.Ratings.from_df(frame, item_features=features), genre


def cold_split(seed: int = 0) -> tuple[cf.Split, np.ndarray]:
    ratings, genre = catalogue(seed)
    return cf.split_cold_items(ratings, 0.2, seed=seed), genre


def test_rated_items_keep_their_count_and_new_ones_get_their_genres_guess():
    for seed in range(4):
        (train, valid), genre = cold_split(seed)
        popularity = log_popularity(train)
        counts = train.item_counts()
        rated = counts > 0
        np.testing.assert_allclose(popularity[rated], np.log1p(counts[rated]), rtol=1e-6)
        new = np.unique(valid.item_idx)
        assert not rated[new].any()
        guess = pd.Series(popularity[new], index=genre[train.items.ids[new].astype(int)])
        means = guess.groupby(level=0).mean()
        assert means["Hit"] > means["Cult"] > means["Niche"], means
        assert abs(means["Hit"] - np.log1p(AUDIENCE["Hit"])) < 0.3, means
        assert (popularity[new] >= 0).all() and (popularity[new] <= popularity.max()).all()


def test_without_features_or_without_new_items_nothing_is_estimated():
    (train, _), _ = cold_split(1)
    assert log_popularity(train.keep_features()) is None
    assert log_popularity(catalogue(1)[0]) is None  # every item rated
    counts = train.item_counts()
    observed = observed_log_popularity(counts)
    assert popularity_problem(observed, counts) is None and (observed[counts == 0] == 0).all()
    assert popularity_problem(observed + 0.1, counts) is not None


def test_a_new_item_without_a_feature_row_gets_no_guess():
    (train, valid), genre = cold_split(2)
    new = np.unique(valid.item_idx)
    table = train.item_features.frame.drop(index=train.items.ids[new[:3]])
    popularity = log_popularity(train.with_features(item_features=table))
    assert (popularity[new[:3]] == 0).all() and (popularity[new[3:]] > 0).all()


@pytest.fixture(scope="module")
def trained():
    (train, valid), genre = cold_split(3)
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(train, model=model_config, config=replace(config, sweeps=30),
                             options=RunOptions(progress=False, seed=0))  # fmt: skip
    learner.fit_recipe()
    return learner, train, valid, genre


def test_lists_blend_new_items_by_the_popularity_their_features_predict(trained):
    learner, train, valid, genre = trained
    new = np.unique(valid.item_idx)
    assert learner.item_log_popularity is not None
    torch.testing.assert_close(learner.log_popularity(), torch.from_numpy(log_popularity(train)))
    lift = learner.blend_users(np.array([0]), 1.5)[0] - learner.blend_users(np.array([0]), 0.0)[0]
    torch.testing.assert_close(lift, 1.5 * learner.log_popularity())
    assert float(lift[new].min()) > 1.0  # not log(1 + 0)
    listed = recommend(learner, [train.users.ids[0]], k=N_ITEMS, popularity_weight=1.5)
    frame = listed.to_frame(learner)
    new_ids = set(train.items.ids[new].tolist())
    assert set(frame.loc[frame["cold"], "item"]) == new_ids & set(frame["item"])
    assert frame["cold"].sum() > 0


def test_the_popularity_survives_the_model_file_and_forgeries_are_refused(trained, tmp_path):
    learner, *_ = trained
    path = learner.save(tmp_path / "model.cf")
    loaded = cf.load_model(path)
    np.testing.assert_array_equal(loaded.item_log_popularity, learner.item_log_popularity)
    counts = learner.item_counts()
    rated, new = int(np.flatnonzero(counts > 0)[0]), int(np.flatnonzero(counts == 0)[0])
    name = "data.item_log_popularity"
    edits = {
        "not finite": lambda t: t[name].__setitem__(new, float("nan")),
        "negative": lambda t: t[name].__setitem__(new, -1.0),
        "beyond the most rated": lambda t: t[name].__setitem__(new, 50.0),
        "a rated item's count changed": lambda t: t[name].__setitem__(rated, 0.0),
        "float64": lambda t: t.__setitem__(name, t[name].double()),
        "one short": lambda t: t.__setitem__(name, t[name][:-1]),
    }
    for edit in edits.values():
        forged = forge(path, tmp_path / "forged.cf", edit_tensors=edit)
        with pytest.raises(ModelFileError, match="item_log_popularity"):
            cf.load_model(forged)
    without = forge(path, tmp_path / "without.cf", edit_tensors=lambda t: t.pop(name))
    assert cf.load_model(without).item_log_popularity is None
