"""Issue 11's traps: ids matched by raw id everywhere, honest defaults, no hidden state."""

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

import collabfilter as cf
from collabfilter.config import NOT_GIVEN, RunOptions, with_changes
from collabfilter.errors import DataWarning, RatingsFormatError, UnknownIdError
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.evaluation.reports import error_breakdown
from collabfilter.interpret import find_item, item_pca, search_items, similar_items
from collabfilter.models import RECIPES, TrainConfig
from collabfilter.recommend import explain, fold_in, recommend, recommend_new_user
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=3)
SHORT = replace(RECIPES["dot_bias"][1], epochs=3, tune_decay=False)


@pytest.fixture(scope="module")
def split():
    synthetic = cf.generate_ratings(200, 300, 9000, n_factors=3, seed=4)
    return cf.split_random(synthetic.ratings, 0.1, seed=2)


@pytest.fixture(scope="module")
def learner(split):
    fitted = collab_learner(split.train, config=SHORT, options=QUIET)
    fitted.fit_recipe()
    return fitted


def test_pairs_from_a_table_with_its_own_vocabulary_are_matched_by_raw_id(split, learner):
    expected = learner.predict_ratings(split.valid)
    reread = cf.Ratings.from_df(split.valid.to_frame())
    assert reread.users != learner.users  # its own, smaller vocabulary
    assert np.array_equal(learner.predict_ratings(reread), expected)
    frame = split.valid.to_frame().sample(frac=1.0, random_state=0)
    by_frame = learner.predict_ratings(frame)
    assert np.array_equal(by_frame, learner.predict(frame.user, frame.item))
    assert np.allclose(np.sort(by_frame), np.sort(expected))
    as_text = frame.astype({"user": str, "item": str})
    assert np.array_equal(learner.predict_ratings(as_text), by_frame)
    table = error_breakdown(learner, reread)["by user activity"]
    assert table.ratings.sum() == len(reread)
    baseline = BiasBaseline().fit(split.train)
    assert np.array_equal(baseline.predict_ratings(reread), baseline.predict_ratings(split.valid))


def test_unknown_ids_follow_the_policy_and_are_counted(learner):
    frame = pd.DataFrame({"user": [1, 1, 99999, 2], "item": [1, 77777, 1, 2]})
    with pytest.raises(UnknownIdError, match="unknown user id.*99999"):
        learner.predict_ratings(frame)
    with pytest.warns(DataWarning, match="2 of 4 pairs.*1 distinct.*1 distinct.*NaN"):
        flagged = learner.predict_ratings(frame, unknown="nan")
    assert np.isnan(flagged[1:3]).all() and np.isfinite(flagged[[0, 3]]).all()
    with pytest.warns(DataWarning, match="bias baseline"):
        fallback = learner.predict_ratings(frame, unknown="baseline")
    assert np.isfinite(fallback).all() and np.array_equal(fallback[[0, 3]], flagged[[0, 3]])
    assert (fallback >= learner.scale.low).all() and (fallback <= learner.scale.high).all()


def test_text_ids_keep_their_text(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n007,1,5\n7,1,3\n007,2,4\n7,2,2\n")
    ratings = cf.Ratings.from_csv(path)
    assert sorted(ratings.users.ids.tolist()) == ["007", "7"] and len(ratings) == 4
    assert ratings.items.ids.dtype.kind == "i"  # canonical integers stay numbers
    with pytest.warns(DataWarning, match="2 repeated rating"):  # asked for: 007 is 7
        numbers = cf.Ratings.from_csv(path, ids="int", duplicates="mean")
    assert numbers.users.ids.tolist() == [7] and len(numbers) == 2
    assert cf.Ratings.from_csv(path, ids="text").items.ids.tolist() == ["1", "2"]
    path.write_text("user,item,rating\n7,1,5\nx7,2,4\n")
    with pytest.raises(
        RatingsFormatError, match=r"not integers \(in canonical form, within int64\) at line 3"
    ):
        cf.Ratings.from_csv(path, ids="int")


def test_text_matches_integer_ids_only_in_canonical_form(learner):
    assert np.array_equal(learner.predict("1", "2"), learner.predict(1, 2))
    with pytest.raises(UnknownIdError):
        learner.predict("001", 2)
    text_ids = cf.Vocabulary(["007", "7"], kind="user")
    assert text_ids.index([7, "7", "007"]).tolist() == [1, 1, 0]


def test_more_items_than_remain_gives_fewer_and_never_seen_or_infinite(learner):
    user = learner.users.ids[0]
    seen = set(learner.interactions.items_of(0)[0].tolist())
    lists = recommend(learner, [user, learner.users.ids[1]], k=5000)
    items, scores = lists.of(0)
    assert len(items) == len(learner.items) - len(seen) and not seen & set(items.tolist())
    assert np.isfinite(lists.scores).all()
    frame = lists.to_frame(learner)
    assert frame.groupby("user")["rank"].max().tolist() == np.diff(lists.offsets).tolist()
    new = recommend_new_user(learner, {1: 5.0}, k=5000)
    assert len(new) == len(learner.items) - 1 and np.isfinite(new.predicted).all()


def test_none_given_explicitly_is_a_value():
    config = TrainConfig(early_stopping=3, item_weight_decay=0.2)
    assert with_changes(config, early_stopping=None).early_stopping is None
    assert with_changes(config, item_weight_decay=None).item_weight_decay is None
    assert with_changes(config, early_stopping=NOT_GIVEN).early_stopping == 3


def test_wd_is_one_decay_for_every_table(split):
    runs = []
    for how in ("wd", "config"):
        fitted = collab_learner(split.train, config=SHORT, options=QUIET)
        if how == "wd":
            fitted.fit_one_cycle(2, 0.05, wd=0.3)
        else:
            fitted.config = replace(SHORT, epochs=2, lr=0.05, weight_decay=0.3,
                                    item_weight_decay=0.3, bias_weight_decay=0.3)  # fmt: skip
            fitted.fit_recipe()
        runs.append(fitted.model.state_dict())
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name
    recipe = collab_learner(split.train, config=SHORT, options=QUIET)
    recipe.fit_one_cycle(2, 0.05)  # without wd: the recipe's own per-table decays
    assert not torch.equal(recipe.model.item_bias, runs[0]["item_bias"])


def test_training_leaves_torchs_global_state_alone(split):
    torch.manual_seed(1234)
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    fitted = collab_learner(split.train, model="nn", config=replace(RECIPES["nn"][1], epochs=1),
                            options=QUIET)  # fmt: skip
    fitted.fit_recipe()
    fitted.lr_find(num_steps=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    again = collab_learner(split.train, model="nn", config=replace(RECIPES["nn"][1], epochs=1),
                           options=QUIET)  # fmt: skip
    again.fit_recipe()  # same seed, same result, whatever the caller's generator did
    assert torch.equal(again.model.item_embedding, fitted.model.item_embedding)


def test_result_functions_move_what_they_need_to_the_cpu(learner):
    """On a model that lives elsewhere (the meta device stands in for a GPU), every
    result function must fail only where it copies data to the CPU ("no data" on meta),
    never by mixing devices."""
    elsewhere = cf.FittedModel(
        copy.deepcopy(learner.model).to("meta"), learner.users, learner.items,
        learner.interactions, learner.model_config, learner.config,
    )  # fmt: skip
    calls = [
        lambda: fold_in(elsewhere, {1: 5.0, 2: 3.0}),
        lambda: explain(elsewhere, 1, 2),
        lambda: similar_items(elsewhere, 2),
        lambda: item_pca(elsewhere),
        lambda: recommend(elsewhere, [1]),
        lambda: elsewhere.predict(1, 2),
    ]
    for call in calls:
        with pytest.raises(NotImplementedError, match="meta tensor"):
            call()


def test_forgiving_titles_in_a_csv_release_catalogue(learner):
    titles = {1: "Star Wars: Episode IV - A New Hope (1977)",
              2: "Star Wars: Episode V - The Empire Strikes Back (1980)",
              3: "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
              4: "Wars of the Roses, The (1989)"}  # fmt: skip
    ratings = learner.train_ratings.with_titles(titles)
    model = collab_learner(ratings, config=SHORT, options=QUIET)
    counts = model.interactions.item_counts()[model.items.index([1, 2])]
    most = 1 if counts[0] >= counts[1] else 2
    with pytest.raises(UnknownIdError, match="matches 2 items, most rated first"):
        find_item(model, "star wars")
    assert model.items.ids[find_item(model, "star wars", most_rated=True)] == most
    assert model.items.ids[find_item(model, "empire strikes")] == 2
    assert model.items.ids[find_item(model, "the good the bad and the ugly")] == 3
    assert model.items.ids[find_item(model, "Star Wars: Episode IV - A New Hope")] == 1
    assert search_items(model, "wars").item.tolist()[:3] == sorted(
        [1, 2, 4], key=lambda i: -model.interactions.item_counts()[model.items.index_of(i)]
    )
    with pytest.raises(UnknownIdError, match="closest titles.*Star Wars"):
        find_item(model, "Star Warz: Episode IV - A New Hope (1977)")


def test_the_dataframe_path(split, tmp_path):
    frame = split.train.to_frame()
    recommender = cf.Recommender("dot_bias").fit(frame)
    test = split.valid.to_frame()
    test["prediction"] = recommender.predict(test)
    assert test.prediction.notna().all()
    figures = recommender.score(test)
    assert set(figures) == {"rmse", "mae", "mse"} and figures["rmse"] < 1.0
    picks = recommender.recommend([1, 2], k=4)
    assert list(picks.columns) == ["user", "rank", "item", "title", "predicted"]
    assert len(picks) == 8
    recommender.save(tmp_path / "model")
    loaded = cf.Recommender.load(tmp_path / "model")
    assert np.array_equal(loaded.predict(test), test.prediction.to_numpy())
