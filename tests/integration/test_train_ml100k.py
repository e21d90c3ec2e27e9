"""Real figures on ml-100k: the default recipes reach their accuracy with a margin, and
the fastai lessons' calls never end silently worse than the bias baseline.

The benchmark (benchmarks/bench_accuracy.py) measures the exact figures and times;
these bounds are looser so that they hold on any machine, yet would catch a
regression of the engine or the recipes.
"""

import warnings

import numpy as np
import pytest

from collabfilter import load_movielens_fold, split_random
from collabfilter.config import RunOptions
from collabfilter.errors import CollabFilterWarning
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.interpret import similar_items
from collabfilter.train import collab_learner

pytestmark = pytest.mark.realdata
QUIET = RunOptions(progress=False)


def rmse(predictions, ratings):
    return float(np.sqrt(np.mean((predictions - ratings.rating) ** 2)))


def held_out_rmse(train, valid, model="dot_bias"):
    learner = collab_learner(train, None, model=model, options=QUIET)  # no peeking
    learner.fit_recipe()
    return rmse(learner.predict_ratings(valid), valid)


@pytest.fixture(scope="module")
def lesson_split(ml100k):
    """The lessons' 90/10 random split (fastai's own collab_learner reaches 0.919)."""
    return split_random(ml100k, 0.1, seed=42, keep_known=False)


@pytest.fixture(scope="module")
def bias_baseline(lesson_split):
    train, valid = lesson_split
    return rmse(BiasBaseline().fit(train).predict_ratings(valid), valid)


def test_dot_bias_recipe_on_the_90_10_split(lesson_split):
    assert held_out_rmse(*lesson_split) < 0.902


def test_dot_bias_recipe_on_u1(ml100k_dir):
    train, valid = load_movielens_fold("u1", path=ml100k_dir)
    assert held_out_rmse(train, valid) < 0.92


@pytest.mark.parametrize(
    "model_changes",
    [{}, {"model": "dot", "n_factors": 50, "y_range": (0, 5.5)}],
    ids=["DotProductBias", "DotProduct"],
)
def test_the_lessons_call_beats_the_bias_baseline(lesson_split, bias_baseline, model_changes):
    """``learn.fit_one_cycle(5, 5e-3, wd=0.1)`` as the lessons write it: an Adam step
    size, which per-rating sgd would take as a rate far too small to learn in five
    epochs; the learner takes it as fastai does and beats the baseline by a margin."""
    train, valid = lesson_split
    learner = collab_learner(train, valid, options=QUIET, **model_changes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollabFilterWarning)  # never worse, never warned
        learner.fit_one_cycle(5, 5e-3, wd=0.1)
    assert learner.config.optimizer == "adamw"
    assert rmse(learner.predict_ratings(valid), valid) < bias_baseline - 0.02


def test_the_finders_suggestion_beats_the_bias_baseline(lesson_split, bias_baseline):
    """lr_find, then fit_one_cycle(5, its suggestion, wd=0.1), as the lesson does: the
    suggestion lies where the loss still falls, and the fit beats the baseline."""
    train, valid = lesson_split
    learner = collab_learner(train, valid, options=QUIET)
    result = learner.lr_find()
    assert result.problem is None
    assert result.lrs[0] < result.suggestion <= result.lowest
    lowest = int(np.argmin(result.smoothed))
    at = int(np.flatnonzero(result.lrs == result.suggestion)[0])
    assert result.losses[at:lowest].mean() < result.losses[lowest : lowest + 10].mean()
    learner.fit_one_cycle(5, result.suggestion, wd=0.1)
    assert learner.config.optimizer == "sgd"  # a per-rating rate, kept as such
    assert rmse(learner.predict_ratings(valid), valid) < bias_baseline


def test_star_wars_neighbours_are_films_many_people_rated(lesson_split):
    train, _ = lesson_split
    learner = collab_learner(train, None, options=QUIET)
    learner.fit_recipe()
    table = similar_items(learner, "Star Wars (1977)", k=10)
    assert len(table) == 10
    assert table.ratings.min() >= 15  # not a film a handful of people rated
    assert {"Return of the Jedi (1983)", "Empire Strikes Back, The (1980)"} <= set(table.title)


def test_nn_recipe_on_the_90_10_split(lesson_split):
    assert held_out_rmse(*lesson_split, model="nn") < 0.922
