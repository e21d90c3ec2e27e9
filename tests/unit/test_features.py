"""Side features: encoding rules, hostile tables, what ratings and splits carry, which
features a learner uses, and what they are worth to the Bayesian family."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collabfilter import Ratings, generate_ratings, split_random
from collabfilter.config import RunOptions
from collabfilter.data.encoding import Vocabulary
from collabfilter.data.features import FeatureEncoder, SideFeatures
from collabfilter.errors import ConfigError, DataError
from collabfilter.models import RECIPES
from collabfilter.train import collab_learner

QUIET = RunOptions(seed=0, progress=False)
USERS = pd.DataFrame(
    {
        "age": [24, 53, 23, np.nan, 35],
        "gender": ["M", "F", "M", "F", None],
        "likes": ["Action|Comedy", "Drama", None, "Action| Drama |", ""],
    },
    index=[1, 2, 3, 9, 4],
)


def rows_of(features: SideFeatures, ids) -> np.ndarray:
    return features.encode(Vocabulary(ids, kind=features.kind)).matrix.to_dense().numpy()


def test_each_field_of_a_row_weighs_alike_and_rows_have_norm_one():
    features = SideFeatures(USERS, kind="user")
    assert features.kinds == {"age": "number", "gender": "category", "likes": "multi"}
    encoded = features.encode(Vocabulary([1, 2, 3, 4, 5], kind="user"))
    dense = encoded.matrix.to_dense().numpy()
    assert encoded.missing == 1 and not dense[4].any()  # user 5 has no row: counted
    np.testing.assert_allclose((dense[:4] ** 2).sum(1), 1.0, rtol=1e-6)
    names = list(encoded.names)
    first = dict(zip(names, dense[0], strict=True))
    # three fields present: each 1/sqrt(3); two likes share theirs
    assert first["gender=M"] == pytest.approx(1 / math.sqrt(3))
    assert first["likes=Action"] == pytest.approx(1 / math.sqrt(6))
    assert first["likes=Comedy"] == pytest.approx(1 / math.sqrt(6))
    assert "likes=" not in names and "gender=None" not in names and "likes=nan" not in names
    assert {"likes=Action", "likes=Comedy", "likes=Drama"} <= set(names)


def test_number_fields_are_cut_at_their_own_quantiles():
    ages = pd.DataFrame({"age": np.arange(1000) % 70 + 10}, index=np.arange(1000))
    field = SideFeatures(ages).encoder.fields[0]
    assert field.kind == "number" and 2 <= len(field.levels) <= 8
    counts = rows_of(SideFeatures(ages), np.arange(1000)).sum(0)
    assert counts.min() > 0.5 * counts.max()  # quantile bins: comparable sizes
    shifted = SideFeatures(ages * 1000).encoder.fields[0]
    assert shifted.cuts[0] == pytest.approx(field.cuts[0] * 1000)


def test_values_the_encoder_never_saw_are_counted_and_contribute_nothing():
    encoder = SideFeatures(USERS).encoder
    new = pd.DataFrame({"age": [30], "gender": ["X"], "likes": ["Action|Western"]})
    matrix, unseen = encoder.encode(new)
    assert unseen == 2
    dense = matrix.to_dense()[0].numpy()
    names = dict(zip(encoder.names, dense, strict=True))
    assert names["likes=Action"] > 0 and names["gender=F"] == names["gender=M"] == 0


def test_encoders_round_trip_through_their_dictionaries():
    encoder = SideFeatures(USERS).encoder
    again = FeatureEncoder.from_dict(encoder.to_dict())
    assert again.names == encoder.names
    np.testing.assert_array_equal(
        again.encode(USERS)[0].to_dense(), encoder.encode(USERS)[0].to_dense()
    )


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (pd.DataFrame(index=[1, 2]), "at least one column"),
        (pd.DataFrame({"a": ["x", "y"]}, index=[1, 1]), "repeat 1 id"),
        (pd.DataFrame({"a": ["x", "y"]}, index=[1.0, np.nan]), "without an id"),
        (pd.DataFrame({"a": [np.nan, np.inf]}, index=[1, 2]), "no finite number"),
    ],
)
def test_bad_tables_are_refused_naming_the_problem(frame, problem):
    with pytest.raises(DataError, match=problem):
        SideFeatures(frame)


CELLS = st.one_of(
    st.none(), st.just(np.nan), st.just(""), st.just("|"), st.just("a|a|b"), st.text(max_size=8),
    st.integers(-(2**62), 2**62), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(CELLS, CELLS), min_size=1, max_size=12),
    st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True),
)
def test_hostile_tables_give_a_clear_error_or_rows_of_norm_one_or_zero(cells, ids):
    n = min(len(cells), len(ids))
    frame = pd.DataFrame(cells[:n], columns=["first", "second"], index=ids[:n])
    try:
        features = SideFeatures(frame)
    except DataError as error:
        assert "feature" in str(error)
        return
    encoded = features.encode(Vocabulary(list(range(31)), kind="item"))
    dense = encoded.matrix.to_dense().numpy()
    assert dense.shape == (31, len(encoded.names)) and np.isfinite(dense).all()
    norms = (dense**2).sum(1)
    assert np.all(np.isclose(norms, 1.0, atol=1e-5) | (norms == 0))
    assert encoded.missing == 31 - n


def test_ratings_and_their_splits_carry_features_and_report_coverage():
    ratings = generate_ratings(120, 90, 2000, seed=2).ratings
    items = pd.DataFrame({"genres": ["a|b", "c"] * 45 + ["z"]}, index=np.arange(1, 92))
    users = pd.DataFrame({"group": ["x"] * 100}, index=np.arange(1, 101))
    carried = ratings.with_features(users, items)
    assert carried.feature_coverage() == {"user": (20, 0), "item": (0, 1)}
    train, valid = split_random(carried, 0.2, seed=0)
    assert train.item_features is carried.item_features
    assert valid.user_features is carried.user_features
    assert carried.with_titles({1: "One"}).item_features is carried.item_features
    kept = carried.keep_features(item=["genres"])
    assert kept.user_features is None and kept.item_features.columns == ("genres",)
    with pytest.raises(DataError, match="no column"):
        carried.keep_features(user=["age"])
    assert ratings.user_features is None  # the original is unchanged


def test_a_features_table_whose_ids_match_none_of_the_ratings_is_refused():
    ratings = generate_ratings(50, 40, 500, seed=2).ratings
    other_ids = pd.DataFrame({"group": ["x"] * 50}, index=np.arange(1001, 1051))
    with pytest.raises(DataError, match="no id of the user features"):
        ratings.with_features(user_features=other_ids)


def test_from_df_takes_feature_tables():
    frame = generate_ratings(50, 40, 500, seed=2).ratings.to_frame()
    items = pd.DataFrame({"genres": ["a|b"] * 40}, index=np.arange(1, 41))
    ratings = Ratings.from_df(frame, item_features=items)
    assert ratings.item_features is not None and ratings.user_features is None


def test_features_are_used_where_the_family_reads_them_and_refused_where_not():
    planted = generate_ratings(200, 150, 6000, n_genres=6, n_user_groups=4, seed=1).ratings
    dot = collab_learner(planted, options=QUIET)
    assert dot.features_used.describe() == "none (the dot family does not read side features)"
    assert dot.train_ratings.item_features is None
    with pytest.raises(ConfigError, match="does not read side features"):
        collab_learner(planted, options=QUIET, features=["genres"])
    bayes = collab_learner(planted, model="bayes", options=QUIET)
    assert bayes.features_used.describe() == "user: group; item: genres"
    only = collab_learner(planted, model="bayes", options=QUIET, features=["item:genres"])
    assert only.features_used.user == () and only.features_used.item == ("genres",)
    for bad, problem in ((["colour"], "no side has"), ("some", "'auto', 'none'"),
                         (["user:genres"], "no feature column")):  # fmt: skip
        with pytest.raises(ConfigError, match=problem):
            collab_learner(planted, model="bayes", options=QUIET, features=bad)
    none = collab_learner(planted, model="bayes", options=QUIET, features="none")
    assert none.features_used.describe() == "none (features='none')"


def bayes_rmse(split, features, **changes):
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(split.train, model=model_config, options=QUIET, features=features,
                             config=config.with_length(changes.get("sweeps", 60)))  # fmt: skip
    learner.fit_recipe()
    predicted = learner.predict_ratings(split.valid)
    return float(np.sqrt(np.mean((predicted - split.valid.rating) ** 2))), learner


@pytest.mark.parametrize(
    "shape", [(400, 300, 12_000), (150, 1200, 9_000), (900, 200, 14_000)], ids=str
)
def test_planted_features_improve_the_bayesian_model_in_several_shapes(shape):
    """Features that explain part of the factors lower the error for ids with few
    ratings, whatever the shape (more users than items, or fewer)."""
    planted = generate_ratings(*shape, n_genres=10, n_user_groups=6, seed=4).ratings
    split = split_random(planted, 0.1, seed=0)
    without, _ = bayes_rmse(split, "none")
    with_features, learner = bayes_rmse(split, "auto")
    assert with_features < without - 0.01
    assert learner.features_used.describe() == "user: group; item: genres"


def test_a_folded_in_user_gets_their_own_feature_part_or_the_average_users():
    """A new user's prior mean adds ``F_u beta`` of their features when given, else of
    the average rating's user's row: never the mean of users whose feature part is
    zero."""
    import torch

    from collabfilter.models.family import FoldContext

    planted = generate_ratings(200, 120, 5000, n_user_groups=4, seed=5).ratings
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(planted, model=model_config, config=config.with_length(10),
                             options=QUIET)  # fmt: skip
    learner.fit_recipe()
    module = learner.model
    assert module.user_feature_rows.shape[0] == len(learner.features["user"].names)
    rows = planted.user_features.encode(planted.users).matrix.to_dense().numpy()
    counts = np.bincount(planted.user_idx, minlength=planted.n_users)
    average = torch.from_numpy((counts @ rows / counts.sum()).astype(np.float32))
    torch.testing.assert_close(module.user_feature_mean, average)  # the average rating's user
    items, ratings = torch.tensor([0, 3]), torch.tensor([5.0, 1.0])
    context = learner.fold_context()
    plain = module.fold_in(items, ratings, context)
    as_average = module.fold_in(items, ratings, replace(context, user_features=average))
    torch.testing.assert_close(plain.row, as_average.row)
    group = learner.encode_user_features({"group": "u1"})
    own = module.fold_in(items, ratings, replace(context, user_features=group))
    assert not torch.allclose(own.row, plain.row)
    assert isinstance(context, FoldContext)


def test_features_without_implicit_feedback_still_inform_the_prior():
    planted = generate_ratings(300, 250, 8000, n_genres=8, n_user_groups=5, seed=6).ratings
    split = split_random(planted, 0.1, seed=0)
    model_config, config = RECIPES["bayes"]
    rmse = {}
    for features in ("none", "auto"):
        learner = collab_learner(split.train, model=replace(model_config, implicit=False),
                                 options=QUIET, features=features,
                                 config=config.with_length(60))  # fmt: skip
        learner.fit_recipe()
        predicted = learner.predict_ratings(split.valid)
        rmse[features] = float(np.sqrt(np.mean((predicted - split.valid.rating) ** 2)))
    assert rmse["auto"] < rmse["none"] - 0.01


def test_a_number_with_few_values_gets_a_level_per_value():
    codes = pd.DataFrame({"age": [1, 18, 25, 18, 56, 1]}, index=np.arange(6))
    field = SideFeatures(codes).encoder.fields[0]
    assert field.levels == ("<9.5", "[9.5, 21.5)", "[21.5, 40.5)", ">=40.5")


def test_feature_files_read_ids_as_text_and_blank_cells_as_missing(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("user,age,zip\n007,24,00501\n7,,85711\n")
    features = SideFeatures.read(path, id_column="user", kind="user", kinds={"zip": "category"})
    assert features.frame.index.tolist() == ["007", "7"]
    assert features.kinds == {"age": "number", "zip": "category"}
    assert features.frame.loc["007", "zip"] == "00501" and np.isnan(features.frame.loc["7", "age"])
    with pytest.raises(DataError, match="no id column 'id'"):
        SideFeatures.read(path, id_column="id")


def test_model_files_keep_the_feature_encoders(tmp_path):
    import collabfilter as cf

    planted = generate_ratings(200, 150, 5000, n_genres=5, n_user_groups=3, seed=8).ratings
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(planted, model=model_config, config=config.with_length(8),
                             options=QUIET)  # fmt: skip
    learner.fit_recipe()
    loaded = cf.load_model(learner.save(tmp_path / "m.cf"))
    assert set(loaded.features) == {"user", "item"}
    for side, encoder in learner.features.items():
        assert loaded.features[side].names == encoder.names
    np.testing.assert_array_equal(loaded.predict_ratings(planted), learner.predict_ratings(planted))
    dot = collab_learner(planted, options=QUIET)  # features unused: none recorded
    assert dot.features == {}


def test_new_users_described_by_features_get_lists_for_people_like_them():
    """Users held out whole (cold users): placed from their group alone, their held-out
    ratings are predicted better than from the average user's features."""
    from collabfilter import split_cold_users

    planted = generate_ratings(600, 300, 15_000, n_user_groups=5, feature_share=0.8,
                               seed=9).ratings  # fmt: skip
    train, valid = split_cold_users(planted, 0.1, seed=2)
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(train, model=model_config, config=config.with_length(60),
                             options=QUIET)  # fmt: skip
    learner.fit_recipe()
    frame = valid.to_frame()
    groups = planted.user_features.frame["group"]
    errors: dict[str, list[float]] = {"own": [], "average": []}
    for user, rows in frame.groupby("user"):
        items = learner.items.index(rows.item.to_numpy())
        for label, row in (("own", learner.encode_user_features({"group": groups[user]})),
                           ("average", None)):  # fmt: skip
            folded = learner.fold_in_indices(np.zeros(0, np.int64), np.zeros(0), row)
            predicted = learner.predict_folded(folded, items).numpy()
            errors[label].extend((predicted - rows.rating.to_numpy()) ** 2)
    own, average = (float(np.sqrt(np.mean(errors[k]))) for k in ("own", "average"))
    assert own < average - 0.01, (own, average)


def test_user_features_at_prediction_are_checked_and_counted():
    import warnings

    from collabfilter import recommend
    from collabfilter.errors import DataWarning

    planted = generate_ratings(200, 120, 5000, n_user_groups=4, seed=5).ratings
    model_config, config = RECIPES["bayes"]
    bayes = collab_learner(planted, model=model_config, config=config.with_length(6),
                           options=QUIET)  # fmt: skip
    bayes.fit_recipe()
    listed = recommend.recommend_new_user(bayes, {}, features={"group": "u2"}, k=5)
    assert len(listed) == 5 and listed["because you rated"].isna().all()
    with pytest.raises(DataError, match="unknown: \\['colour'\\]"):
        bayes.encode_user_features({"colour": "red"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = bayes.encode_user_features({"group": "u99"})
    assert [w.category for w in caught] == [DataWarning] and not row.any()
    with pytest.raises(DataError, match="at least one"):
        recommend.recommend_new_user(bayes, {})
    dot = collab_learner(planted, options=QUIET)
    with pytest.raises(ConfigError, match="trained without user features"):
        recommend.recommend_new_user(dot, {1: 5.0}, features={"group": "u1"})
