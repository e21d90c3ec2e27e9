"""Bayesian MF on ids without training ratings: cold items get the pooled item row and
each user's cold offset, so a cold item is predicted at least as well as the bias
baseline predicts it, and features improve on that."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_file_forgery import forge

from collabfilter import generate_ratings, load_model, split_cold_items, split_cold_users
from collabfilter.config import RunOptions
from collabfilter.errors import ModelFileError
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.models import BayesConfig
from collabfilter.models.bayes import BayesianMF
from collabfilter.models.family import FoldContext
from collabfilter.train import collab_learner

FAST = BayesConfig(sweeps=60, burn_in=10)

SHAPES = {
    "ml-100k": (943, 1682, 60_000),
    "wide catalogue": (400, 3000, 40_000),
    "many users": (2000, 600, 50_000),
}


def rmse(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def fitted(train, features: str):
    learner = collab_learner(train, None, model="bayes", config=FAST, features=features,
                             options=RunOptions(seed=0, progress=False))  # fmt: skip
    learner.fit_recipe()
    return learner


@pytest.fixture(scope="module", params=sorted(SHAPES))
def cold_split(request):
    planted = generate_ratings(*SHAPES[request.param], n_genres=12, n_user_groups=8, seed=4)
    return split_cold_items(planted.ratings, 0.1, seed=1)


def test_cold_items_match_the_baseline_without_features_and_beat_it_with(cold_split):
    train, valid = cold_split
    assert np.bincount(train.item_idx, minlength=train.n_items)[valid.item_idx].max() == 0
    baseline = rmse(BiasBaseline().fit(train).predict_ratings(valid), valid.rating)
    without = rmse(fitted(train, "none").predict_ratings(valid), valid.rating)
    with_features = rmse(fitted(train, "auto").predict_ratings(valid), valid.rating)
    # the prior draw of an unrated row, the old rule, was 0.02 to 0.1 worse than the baseline
    assert abs(without - baseline) < 0.01, (without, baseline)
    assert with_features < baseline - 0.02, (with_features, baseline)


def test_cold_users_are_predicted_from_the_pooled_user_row():
    planted = generate_ratings(943, 1682, 60_000, n_genres=12, n_user_groups=8, seed=6)
    train, valid = split_cold_users(planted.ratings, 0.1, seed=2)
    baseline = rmse(BiasBaseline().fit(train).predict_ratings(valid), valid.rating)
    for features in ("none", "auto"):
        ours = rmse(fitted(train, features).predict_ratings(valid), valid.rating)
        assert ours < baseline + 0.01, (features, ours, baseline)


@pytest.fixture(scope="module")
def cold_model():
    planted = generate_ratings(300, 400, 15_000, n_genres=8, n_user_groups=5, seed=7)
    train, valid = split_cold_items(planted.ratings, 0.1, seed=3)
    learner = fitted(train, "auto")
    return learner.model, train, valid


def test_a_cold_items_parts_add_up_to_its_score(cold_model):
    model, train, valid = cold_model
    cold_item, warm_item = int(valid.item_idx[0]), int(train.item_idx[0])
    scores = model.score_items(torch.tensor([3]))[0]
    for item in (cold_item, warm_item):
        parts = model.parts(3, item)
        assert sum(parts.values()) == pytest.approx(float(scores[item]), abs=1e-4)
    assert model.parts(3, warm_item)["cold offset"] == 0.0
    assert model.parts(3, cold_item)["cold offset"] != 0.0


def test_a_refolded_user_gets_about_their_trained_cold_offset(cold_model):
    """Folding a trained user in again from their own training ratings gives them about
    the cold offset training gave them (a posterior mean against a draw)."""
    model, train, _ = cold_model
    k, n = model.n_factors, model.n_samples
    context = FoldContext(torch.zeros(1, dtype=torch.long), None, train.scale)
    counts = np.bincount(train.user_idx, minlength=train.n_users)
    gaps = []
    for user in np.argsort(-counts)[:10]:
        rows = np.flatnonzero(train.user_idx == user)
        folded = model.fold_in(torch.from_numpy(train.item_idx[rows]).long(),
                               torch.from_numpy(train.rating[rows]), context)  # fmt: skip
        trained = model.user_rows[user].view(n, k + 3)[:, k + 2].mean()
        gaps.append(float(folded.row.view(n, k + 3)[:, k + 2].mean() - trained))
    assert np.abs(gaps).max() < 0.05, gaps


def test_a_new_user_without_ratings_is_the_pooled_user_a_trained_one_is():
    """Folded in from features alone, a user gets exactly the row training gave a user of
    the same features without ratings: the pooled user, moved by their features."""
    planted = generate_ratings(300, 400, 15_000, n_genres=8, n_user_groups=5, seed=8)
    train, valid = split_cold_users(planted.ratings, 0.1, seed=4)
    model = fitted(train, "auto").model
    encoded = train.user_features.encode(train.users).matrix.to_dense()
    for user in np.unique(valid.user_idx)[:5]:
        context = FoldContext(torch.zeros(1, dtype=torch.long), None, train.scale, encoded[user])
        folded = model.fold_in(torch.zeros(0, dtype=torch.long), torch.zeros(0), context)
        torch.testing.assert_close(folded.row, model.user_rows[user], atol=2e-5, rtol=1e-4)


def test_a_file_without_cold_offsets_keeps_its_layout():
    old = BayesianMF(5, 6, 2, n_factors=3, cold_offsets=False)
    assert old.user_rows.shape == (5, 2 * 5) and "pooled_items" not in old.state_dict()
    rebuilt = BayesianMF.from_spec({k: v for k, v in old.spec().items() if k != "cold_offsets"})
    assert rebuilt.width == 5 and not rebuilt.cold_offsets
    assert BayesianMF(5, 6, 2, n_factors=3).user_rows.shape == (5, 2 * 6)


def test_cold_rows_survive_the_model_file_and_forged_flags_are_refused(tmp_path):
    planted = generate_ratings(300, 400, 15_000, n_genres=8, n_user_groups=5, seed=9)
    train, _ = split_cold_items(planted.ratings, 0.1, seed=5)
    learner = fitted(train, "auto")
    path = learner.save(tmp_path / "cold.cf")
    loaded = load_model(path)
    for name in ("pooled_items", "pooled_users", "item_rows", "user_rows"):
        torch.testing.assert_close(getattr(loaded.model, name), getattr(learner.model, name))
    users = np.arange(5)
    torch.testing.assert_close(loaded.score_users(users), learner.score_users(users))
    width = learner.model.width
    cold, warm = np.flatnonzero(learner.cold_items())[0], np.flatnonzero(~learner.cold_items())[0]

    def flag(item: int, value: float):
        def edit(tensors):
            rows = tensors["rating.item_rows"].clone()
            rows[item, width - 1 :: width] = value
            tensors["rating.item_rows"] = rows

        return edit

    def precision(tensors):
        tensors["rating.user_prior_precision"] = -tensors["rating.user_prior_precision"]

    for edit, said in ((flag(warm, 1.0), "exactly the items"), (flag(cold, 0.0), "exactly"),
                       (flag(cold, 0.5), "0 or 1"), (precision, "positive")):  # fmt: skip
        forged = forge(path, tmp_path / "forged.cf", edit_tensors=edit)
        with pytest.raises(ModelFileError, match=said):
            load_model(forged)
