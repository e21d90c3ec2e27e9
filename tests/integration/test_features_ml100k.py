"""ml-100k's side information: what the loader attaches, and what it is worth to the
Bayesian model on the canonical u1 fold (benchmarks/bench_accuracy.py measures every
fold beside myFM; these bounds are looser so that they hold on any machine)."""

import numpy as np
import pytest

from collabfilter import load_movielens_fold, split_cold_items
from collabfilter.config import RunOptions
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.train import collab_learner

pytestmark = pytest.mark.realdata


def test_ml100k_carries_its_users_and_films_features(ml100k):
    users, items = ml100k.user_features, ml100k.item_features
    assert users.kinds == {"age": "number", "gender": "category", "occupation": "category",
                           "zip": "category"}  # fmt: skip
    assert items.kinds == {"genres": "multi", "year": "number"}
    assert ml100k.feature_coverage() == {"user": (0, 0), "item": (0, 0)}
    # u.user's first and last lines: 1|24|M|technician|85711, 943|22|M|student|77841
    assert users.frame.loc[1].tolist() == [24, "M", "technician", "8"]
    assert users.frame.loc[943].tolist() == [22, "M", "student", "7"]
    genres = items.frame["genres"]
    star_wars = ml100k.items.index_of(50)
    assert set(genres.loc[50].split("|")) == {"Action", "Adventure", "Romance", "Sci-Fi", "War"}
    assert items.frame.loc[50, "year"] == 1977 and star_wars == 49
    encoded = users.encode(ml100k.users)
    assert encoded.missing == 0 and encoded.unseen == 0
    assert "occupation=programmer" in encoded.names and "gender=F" in encoded.names
    np.testing.assert_allclose((encoded.matrix.to_dense().numpy() ** 2).sum(1), 1.0, rtol=1e-5)


def test_features_lower_the_bayesian_error_on_u1(ml100k_dir):
    split = load_movielens_fold("u1", path=ml100k_dir)
    assert split.train.item_features is not None  # the folds carry them too
    rmse = {}
    for features in ("none", "auto"):
        learner = collab_learner(split.train, None, model="bayes", features=features,
                                 options=RunOptions(seed=0, progress=False))  # fmt: skip
        learner.fit_recipe()
        predicted = learner.predict_ratings(split.valid)
        rmse[features] = float(np.sqrt(np.mean((predicted - split.valid.rating) ** 2)))
    assert rmse["auto"] < 0.887 and rmse["auto"] < rmse["none"] - 0.002, rmse


def test_features_lower_the_neural_error_on_u1(ml100k_dir):
    """LightFM's rule in the nn model: 0.9258 without, 0.9227 with features on u1
    (every fold u1-u5 gains 0.002-0.003; benchmarks/bench_accuracy.py)."""
    split = load_movielens_fold("u1", path=ml100k_dir)
    rmse = {}
    for features in ("none", "auto"):
        learner = collab_learner(split.train, None, model="nn", features=features,
                                 options=RunOptions(seed=0, progress=False))  # fmt: skip
        learner.fit_recipe()
        rmse[features] = _rmse(learner.predict_ratings(split.valid), split.valid.rating)
        if features == "auto":
            used = learner.features_used.describe()
            assert used == "user: age, gender, occupation, zip; item: genres, year"
    assert rmse["auto"] < 0.9245 and rmse["auto"] < rmse["none"] - 0.001, rmse


def test_new_films_are_predicted_from_their_genres_and_year(ml100k):
    """10% of the films without a training rating (benchmarks/bench_accuracy.py
    --cold-only): without features bayes predicts them as the bias baseline does, with
    features about 0.02 below (0.0196, 0.0211, 0.0247 on split seeds 0-2)."""
    train, valid = split_cold_items(ml100k, 0.1, seed=0)
    baseline = BiasBaseline(reg_item=0.0, use_items=False).fit(train)
    rmse = {"baseline": _rmse(baseline.predict_ratings(valid), valid.rating)}
    for features in ("none", "auto"):
        learner = collab_learner(train, None, model="bayes", features=features,
                                 options=RunOptions(seed=0, progress=False))  # fmt: skip
        learner.fit_recipe()
        rmse[features] = _rmse(learner.predict_ratings(valid), valid.rating)
    assert rmse["none"] < rmse["baseline"] + 0.005, rmse
    assert rmse["auto"] < rmse["none"] - 0.015 and rmse["auto"] < 1.03, rmse


def _rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def test_new_films_in_top_n_lists_beat_their_genres_popularity(ml100k):
    """10% of the films without a training rating: ``topn`` places each as the average
    of the rated films with the most similar genres and year; ranked among the new films
    for each user, NDCG@10 0.262 against 0.116 for their genres' popularity on split
    seed 0 (benchmarks/bench_accuracy.py --cold-only: three seeds)."""
    import torch

    from collabfilter.data.popularity import log_popularity
    from collabfilter.evaluation.topn import evaluate_scores

    split = split_cold_items(ml100k, 0.1, seed=0)
    cold = torch.zeros(split.train.n_items, dtype=torch.bool)
    cold[torch.from_numpy(split.valid.item_idx)] = True

    def among_new(scores_for):
        def scores(users):
            return scores_for(torch.from_numpy(users)).masked_fill(~cold, -torch.inf)

        return float(evaluate_scores(scores, split, ks=(10,))["ndcg"].iloc[0])

    genres = torch.from_numpy(log_popularity(split.train.keep_features(item=["genres"])))
    by_genre = among_new(lambda users: genres.repeat(len(users), 1))
    learner = collab_learner(split.train, None, model="topn",
                             options=RunOptions(seed=0, progress=False))  # fmt: skip
    learner.fit_recipe()
    assert len(learner.unlearned_items()) == 0
    placed = among_new(learner.model.score_items)
    assert placed > by_genre + 0.08 and placed > 0.2, (placed, by_genre)
