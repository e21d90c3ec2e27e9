"""Ids without training ratings in families that learn nothing of them (all but bayes):
their rows are only initial weights, so their pairs get the bias baseline and lists
never hold their items, whichever door asks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.models import RECIPES, TopNConfig
from collabfilter.recommend import explain, recommend, recommend_new_user
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=1)


def trained(recipe: str, train: cf.Ratings):
    model_config, config = RECIPES[recipe]
    if isinstance(config, TopNConfig):
        config = replace(config, candidates=("item_knn",), knn_neighbours=(10,))
    elif recipe != "bayes":
        config = replace(config, epochs=3, tune_decay=False)
    else:
        config = config.with_length(10)
    learner = collab_learner(train, model=model_config, config=config, options=QUIET)
    learner.fit_recipe()
    return learner


@pytest.fixture(scope="module")
def cold():
    ratings = cf.generate_ratings(300, 400, 12_000, n_factors=3, seed=9).ratings
    items = cf.split_cold_items(ratings, 0.15, seed=2)
    users = cf.split_cold_users(items.train, 0.1, seed=3)
    return users.train, np.unique(items.valid.item_idx), np.unique(users.valid.user_idx)


@pytest.mark.parametrize("recipe", ["dot_bias", "nn", "dot"])
def test_pairs_of_unlearned_ids_get_the_bias_baseline(cold, recipe):
    train, new_items, new_users = cold
    model = trained(recipe, train)
    np.testing.assert_array_equal(model.unlearned_items(), new_items)
    users = np.concatenate([np.repeat(new_users[:5], 3), np.repeat(train.user_idx[:5], 3)])
    items = np.concatenate([np.tile(train.item_idx[:3], 5), np.tile(new_items[:3], 5)])
    predicted = model.predict(train.users.ids[users], train.items.ids[items])
    counts = model.training_counts()
    expected = model.baseline_of(users, items, counts[0][users] > 0, counts[1][items] > 0)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    grid = model.score_users(users[:4])
    np.testing.assert_allclose(grid[np.arange(4), items[:4]].numpy(), expected[:4], rtol=1e-5)


@pytest.mark.parametrize("recipe", ["dot_bias", "nn", "topn"])
def test_lists_never_hold_unlearned_items_by_any_path(cold, recipe):
    train, new_items, new_users = cold
    model = trained(recipe, train)
    new = set(train.items.ids[new_items].tolist())
    everyone = train.users.ids[np.arange(0, train.n_users, 7)]
    for weight in (0.0, 1.5):
        if weight and not model.predicts_ratings:
            continue
        listed = recommend(model, everyone, k=400, popularity_weight=weight)
        assert not new & set(model.items.id_of(listed.item_idx).tolist())
        assert len(listed.item_idx) > 0
    rated = {train.items.ids[i]: 4.0 for i in train.item_idx[:5]}
    by = "rating" if model.predicts_ratings else "auto"
    if model.predicts_ratings:
        folded = recommend_new_user(model, rated, k=400, by=by)
        assert not new & set(folded["item"].tolist())
    ranked = model.rank_users(np.array([0, 1]), slice(10, 200))
    inside = new_items[(new_items >= 10) & (new_items < 200)]
    assert bool(torch.isinf(ranked[:, inside - 10]).all())


def test_an_unlearned_user_is_listed_by_the_bias_baseline(cold):
    train, _, new_users = cold
    model = trained("dot_bias", train)
    user = train.users.ids[new_users[0]]
    listed = recommend(model, [user], k=5).to_frame(model)
    _, _, item_bias = model._damped_biases()
    learned = np.setdiff1d(np.arange(train.n_items), model.unlearned_items())
    best = learned[np.argsort(-item_bias[learned], kind="stable")[:5]]
    assert listed["item"].tolist() == model.items.id_of(best).tolist()


def test_bayes_scores_its_unrated_ids_itself(cold):
    train, new_items, _ = cold
    model = trained("bayes", train)
    assert len(model.unlearned_items()) == 0
    users = train.user_idx[:3]
    direct = model.model(torch.from_numpy(users).long(), torch.from_numpy(new_items[:3]).long())
    np.testing.assert_allclose(
        model.predict(train.users.ids[users], train.items.ids[new_items[:3]]),
        model.on_scale(direct).numpy(), rtol=1e-6,
    )  # fmt: skip


def test_folded_users_explanations_and_ranges_follow_the_same_rule(cold):
    train, new_items, new_users = cold
    model = trained("dot_bias", train)
    rated = train.item_idx[:5]
    folded = model.fold_in_indices(rated, np.full(5, 4.0))
    mean = model._damped_biases()[0]
    shown = model.predict_folded(folded, new_items[:3]).numpy()
    np.testing.assert_allclose(shown, np.clip(mean, 1, 5), rtol=1e-5)  # the global mean
    user, item = train.users.ids[0], train.items.ids[new_items[0]]
    why = explain(model, user, item)
    assert why.prediction == pytest.approx(sum(why.terms.values()), abs=1e-4)
    assert why.terms["item bias"] == 0.0
    block = np.concatenate([new_users[:2], train.user_idx[:2]])
    whole = model.rank_users(block)
    for start in (0, 150, 300):
        part = model.rank_users(block, slice(start, start + 150))
        torch.testing.assert_close(part[:2], whole[:2, start : start + 150])
