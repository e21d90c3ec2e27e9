"""Edges of the family contract that a change could break without a word."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.data import RatingScale
from collabfilter.errors import ConfigError, DataError, ModelFileError
from collabfilter.models import RECIPES, DotProductBias, TopNConfig
from collabfilter.persist import layout
from collabfilter.recommend import fold_in, recommend
from collabfilter.train import Learner, collab_learner

QUIET = RunOptions(progress=False, seed=5)


@pytest.fixture(scope="module")
def ratings():
    return cf.generate_ratings(120, 200, 4000, n_factors=3, seed=9).ratings


def short(recipe):
    return replace(RECIPES[recipe][1], epochs=2, tune_decay=False)


def test_popularity_blends_rank_by_unclipped_scores(ratings):
    """Clipped ratings tie at the top of the scale: a blend must not rank by them."""
    learner = collab_learner(ratings, config=short("dot_bias"), options=QUIET)
    learner.fit_recipe()
    users = np.arange(20)
    blended = learner.blend_users(users, 1.5)
    with torch.no_grad():
        raw = learner.model.score_items(torch.from_numpy(users))
    counts = torch.log1p(torch.from_numpy(learner.item_counts().astype(np.float32)))
    assert torch.allclose(blended, raw + 1.5 * counts)
    lists = recommend(learner, learner.users.ids[:20], k=5, popularity_weight=1.5)
    assert len(lists.item_idx) == 100


def test_an_nn_fold_in_leaves_the_shared_network_without_gradients(ratings):
    learner = collab_learner(ratings, model="nn", config=short("nn"), options=QUIET)
    learner.fit_recipe()
    for parameter in learner.model.parameters():
        parameter.grad = None
    fold_in(learner, {1: 5.0, 2: 1.0, 3: 4.0})
    assert all(p.grad is None and p.requires_grad for p in learner.model.parameters())


def test_the_ranking_family_takes_the_runs_seed(ratings):
    config = TopNConfig(
        candidates=("ials",), ials_factors=(8,), ials_l2=(0.1,), ials_unobserved_scales=(1.0,),
        low_rating_weights=(1.0,), ials_sweeps=2,
    )  # fmt: skip
    scores = []
    for seed in (1, 1, 2):
        learner = collab_learner(ratings, model="topn", config=config,
                                 options=replace(QUIET, seed=seed))  # fmt: skip
        learner.fit_recipe()
        assert learner.config.seed == seed
        scores.append(learner.score_users(np.arange(5)))
    assert torch.equal(scores[0], scores[1]) and not torch.equal(scores[0], scores[2])


def test_a_step_form_the_family_does_not_have_is_refused(ratings):
    learner = collab_learner(ratings, model="nn", config=short("nn"),
                             options=replace(QUIET, step="compiled"))  # fmt: skip
    with pytest.raises(ConfigError, match="dot family"):
        learner.fit_recipe()


def test_a_loaded_recommender_says_what_it_is(ratings, tmp_path):
    frame = ratings.to_frame()[["user", "item", "rating"]].rename(columns={"user": "who"})
    fitted = cf.Recommender("bayes", epochs=5, user="who").fit(frame)
    again = cf.Recommender.load(fitted.save(tmp_path / "b.cf"))
    assert again.get_params()["model"] == "bayes" and again.user == "who"
    assert np.allclose(again.predict(frame.head(20)), fitted.predict(frame.head(20)))


def test_a_dot_model_without_biases_round_trips_by_either_class(ratings, tmp_path):
    model = DotProductBias(ratings.n_users, ratings.n_items, 4, biases=False)
    learner = Learner(model, ratings, config=short("dot_bias"), options=QUIET)
    learner.fit_recipe()
    loaded = cf.load_model(learner.save(tmp_path / "plain.cf"))
    assert type(loaded.model) is DotProductBias and not loaded.model.biased
    assert np.array_equal(loaded.predict([1, 2], [3, 4]), learner.predict([1, 2], [3, 4]))


def test_a_rating_scale_needs_a_finite_step():
    for step in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(DataError, match="step"):
            RatingScale(1, 5, step)


def test_a_forged_list_of_millions_of_layers_is_refused_at_once(ratings, tmp_path):
    learner = collab_learner(ratings, model="nn", config=short("nn"), options=QUIET)
    learner.fit_recipe()
    path = learner.save(tmp_path / "nn.cf")
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
    args = document["parts"]["rating"]["module"]["args"]
    args["layers"], args["dropout"] = [4] * 1_000_000, [0.0] * 1_000_000
    text = json.dumps(document)
    forged = tmp_path / "forged.cf"
    save_file(load_file(str(path)), str(forged),
              metadata={"collabfilter": text, "sha256": layout.text_digest(text)})  # fmt: skip
    with pytest.raises(ModelFileError, match="1,000,000 entries"):
        cf.load_model(forged)
