"""Recommender follows scikit-learn's estimator conventions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

import collabfilter as cf
from collabfilter.errors import ConfigError, DataWarning, NotFittedError, UnknownIdError


@pytest.fixture(scope="module")
def frame():
    synthetic = cf.generate_ratings(150, 200, 6000, n_factors=3, seed=4)
    return synthetic.ratings.to_frame()[["user", "item", "rating"]]


def test_parameters_are_explicit_and_round_trip():
    estimator = cf.Recommender("bayes", n_factors=6, epochs=20, seed=3)
    params = estimator.get_params()
    assert params["model"] == "bayes" and params["n_factors"] == 6 and params["epochs"] == 20
    assert set(params) == {
        "model", "n_factors", "epochs", "model_params", "user", "item", "rating", "title",
        "timestamp", "unknown", "seed", "options",
    }  # fmt: skip
    assert estimator.set_params(n_factors=8) is estimator and estimator.n_factors == 8
    with pytest.raises(ConfigError, match="no parameter 'n_factor'"):
        estimator.set_params(n_factor=8)
    assert "n_factors=8" in repr(estimator) and "user=" not in repr(estimator)


def test_clone_makes_an_unfitted_copy_with_the_same_parameters(frame):
    estimator = cf.Recommender("dot_bias", epochs=2, model_params={"n_factors": 16})
    estimator.fit(frame)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params() and copy is not estimator
    with pytest.raises(NotFittedError):
        copy.predict(frame)
    copy.fit(frame)
    assert np.allclose(copy.predict(frame), estimator.predict(frame))  # same seed, same model


def test_a_grid_search_runs_on_it(frame):
    """The estimator plugs into scikit-learn's model selection (score: lower RMSE wins)."""

    def neg_rmse(estimator, data, _=None):
        return -estimator.score(data)["rmse"]

    search = GridSearchCV(
        cf.Recommender("dot_bias", epochs=2, unknown="baseline"),
        {"n_factors": [4, 16]}, scoring=neg_rmse, cv=KFold(2, shuffle=True, random_state=0),
    )  # fmt: skip
    search.fit(frame)
    assert search.best_params_["n_factors"] in (4, 16)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_fit_validates_what_it_was_given(frame):
    with pytest.raises(ConfigError, match="unknown model 'svd'"):
        cf.Recommender("svd").fit(frame)
    with pytest.raises(ConfigError, match="n_factors must be >= 1"):
        cf.Recommender(n_factors=0).fit(frame)
    with pytest.raises(ConfigError, match="closed form"):
        cf.Recommender("topn", epochs=3).fit(frame)
    renamed = frame.rename(columns={"user": "who"})
    fitted = cf.Recommender(user="who", epochs=1).fit(renamed)
    assert isinstance(fitted.predict(renamed), pd.Series)


def test_unknown_ids_in_predict_name_the_policies_that_predict_them(frame):
    estimator = cf.Recommender("dot_bias", epochs=1).fit(frame)
    pairs = pd.DataFrame({"user": [1, 99_999], "item": [1, 1]})
    with pytest.raises(UnknownIdError, match="99999") as raised:
        estimator.predict(pairs)
    assert "unknown='baseline'" in str(raised.value) and "unknown='nan'" in str(raised.value)
    with pytest.raises(UnknownIdError, match="unknown='baseline'"):
        estimator.score(pairs.assign(rating=3.0))
    with pytest.warns(DataWarning, match="1 of 2 pairs"):
        predicted = estimator.predict(pairs, unknown="baseline")
    assert np.isfinite(predicted).all()


def test_recommend_shows_titles_only_where_the_data_has_them(frame):
    untitled = cf.Recommender("dot_bias", epochs=1).fit(frame).recommend([1, 2], k=3)
    assert list(untitled.columns) == ["user", "rank", "item", "title", "predicted"]
    assert untitled.title.isna().all()  # never an id passed off as a title
    some = {item: f"Film {item}" for item in frame.item.unique()[::2]}
    titled = frame.assign(title=frame.item.map(some))  # half the items have a title
    table = cf.Recommender("dot_bias", epochs=1).fit(titled).recommend([1, 2], k=10)
    assert (table.title == table.item.map(some)).where(table.title.notna(), True).all()
    assert table.title.isna().tolist() == (~table.item.isin(some)).tolist()
    named = titled.rename(columns={"title": "name"})
    table = cf.Recommender("dot_bias", epochs=1, title="name").fit(named).recommend([1], k=10)
    assert table.title.notna().any()
    ignored = cf.Recommender("dot_bias", epochs=1, title=None).fit(titled).recommend([1], k=3)
    assert ignored.title.isna().all()
