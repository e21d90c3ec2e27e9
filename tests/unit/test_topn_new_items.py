"""New items in the top-N models: placed from their features as the weighted average of
the most similar rated items, in every model kind, through the learner and model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collabfilter import generate_ratings, split_cold_items
from collabfilter.config import RunOptions
from collabfilter.data.csr import SparseRows
from collabfilter.errors import ConfigError, ModelFileError
from collabfilter.models.ranking import fit_ease, fit_ials, fit_item_knn
from collabfilter.models.ranking.placement import feature_placement
from collabfilter.train import collab_learner

QUIET = RunOptions(seed=0, progress=False)


def _features(rng: np.random.Generator, n_items: int, n_cols: int) -> SparseRows:
    """Rows of norm one over a few columns (some items without any)."""
    dense = (rng.random((n_items, n_cols)) < 0.3) * rng.random((n_items, n_cols))
    if rng.random() < 0.5:  # categorical levels: many items share a row, cosines tie
        dense = (dense > 0).astype(np.float64)
    dense[rng.random(n_items) < 0.1] = 0.0
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    dense = np.where(norms > 0, dense / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    rows, cols = np.nonzero(dense)
    return SparseRows.from_pairs(
        torch.from_numpy(rows), torch.from_numpy(cols), torch.from_numpy(dense[rows, cols]),
        n_items, n_cols,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_a_placement_averages_the_most_similar_rated_items(seed):
    rng = np.random.default_rng(seed)
    n_items, n_cols = int(rng.integers(1, 60)), int(rng.integers(1, 12))
    features = _features(rng, n_items, n_cols)
    rated = torch.from_numpy(rng.random(n_items) < rng.choice([0.0, 0.5, 0.9, 1.0]))
    k = int(rng.integers(1, 8))
    placement = feature_placement(features, rated, k)
    dense = features.to_dense()
    cosines = dense @ dense.T
    lengths = placement.lengths()
    for item in range(n_items):
        weights = placement.to_dense()[item]
        if rated[item] or features.lengths()[item] == 0:
            assert lengths[item] == 0
            continue
        candidates = cosines[item][rated]
        if not len(candidates) or candidates.max() <= 0:
            assert lengths[item] == 0
            continue
        assert torch.isclose(weights.sum(), torch.tensor(1.0), atol=1e-5)
        assert bool(rated[weights > 0].all())
        # the rated items at least as similar as the k-th, positive ones only
        sources = torch.nonzero(rated).flatten()
        edge = sorted(candidates.tolist(), reverse=True)[min(k, len(candidates)) - 1]
        chosen = [int(sources[r]) for r in range(len(sources))
                  if candidates[r] >= edge and candidates[r] > 0]  # fmt: skip
        assert sorted(torch.nonzero(weights).flatten().tolist()) == sorted(chosen)
        share = cosines[item][chosen] / cosines[item][chosen].sum()
        torch.testing.assert_close(weights[chosen], share, atol=1e-5, rtol=1e-5)


def _fits(users, items, n_users, n_items):
    return {
        "ease": fit_ease(users, items, n_users, n_items, l2=5.0),
        "ials": fit_ials(users, items, n_users, n_items, n_factors=6, sweeps=3, seed=0),
        "item_knn": fit_item_knn(users, items, n_users, n_items, n_neighbours=7),
    }


@pytest.mark.parametrize("seed", range(4))
def test_every_kind_scores_a_placed_item_as_the_average_of_its_neighbours(seed):
    """Known users, a folded-in user and the explanations: a placed item's score is
    the weighted average of its neighbours' scores, whichever model kind."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 40
    cold = rng.random(n_items) < 0.25
    pairs = np.argwhere((rng.random((n_users, n_items)) < 0.3) & ~cold[None, :])
    users, items = (torch.from_numpy(pairs[:, k].astype(np.int64)) for k in (0, 1))
    rated = torch.bincount(items, minlength=n_items) > 0
    placement = feature_placement(_features(rng, n_items, 6), rated, 5)
    weights = placement.to_dense()
    targets = torch.nonzero(placement.lengths() > 0).flatten()
    assert len(targets)
    history = torch.from_numpy(rng.choice(np.flatnonzero(~cold), 4, replace=False))
    for kind, model in _fits(users, items, n_users, n_items).items():
        before = model.score_items(torch.arange(n_users))
        new_before = model.score_new(history)
        model.place_items(placement)
        after = model.score_items(torch.arange(n_users))
        expected = before @ weights.T
        torch.testing.assert_close(after[:, targets], expected[:, targets], atol=1e-4, rtol=1e-4)
        rest = torch.ones(n_items, dtype=torch.bool)
        rest[targets] = False
        torch.testing.assert_close(after[:, rest], before[:, rest], atol=1e-5, rtol=1e-5)
        new_after = model.score_new(history)
        torch.testing.assert_close(new_after[rest], new_before[rest], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            new_after[targets], (new_before @ weights.T)[targets], atol=1e-4, rtol=1e-4
        )
        parts = model.explain_many(history, targets)
        torch.testing.assert_close(parts.sum(0), new_after[targets], atol=1e-4, rtol=1e-4)
        assert torch.equal(model.placed(), targets), kind
        if kind == "ials":  # a new user who rated a placed item: its term as any item's
            import copy

            unmarked = copy.deepcopy(model)  # the rated placed item counted as any item
            unmarked._buffers["placed_items"] = targets[1:]
            rated_placed = torch.cat([history, targets[:1]])
            torch.testing.assert_close(
                model.score_new(rated_placed), unmarked.score_new(rated_placed)
            )
        model.place_items(placement)  # again: the same model, not twice the columns
        torch.testing.assert_close(model.score_items(torch.arange(n_users)), after)
        assert torch.equal(model.placed(), targets), kind
        with pytest.raises(ValueError, match="without interactions from items with"):
            model.place_items(feature_placement(_features(rng, n_items, 6), ~rated, 3))


PLANTED = generate_ratings(300, 200, 8000, n_genres=8, n_user_groups=4, seed=5).ratings


def test_the_learner_places_new_items_lists_them_cold_and_files_keep_them(tmp_path):
    from test_model_file_forgery import forge

    import collabfilter as cf

    train, _ = split_cold_items(PLANTED, 0.1, seed=1)
    learner = collab_learner(train, model="topn", options=QUIET)
    learner.fit_recipe()
    assert learner.features_used.describe() == "item: genres"
    cold = np.flatnonzero(train.item_counts() == 0)
    placed = learner.model.placed().numpy()
    np.testing.assert_array_equal(placed, cold)  # every new film has genres
    assert len(learner.unlearned_items()) == 0
    from collabfilter.recommend import recommend

    lists = recommend(learner, train.users.ids[:40], k=30).to_frame(learner)
    assert lists.cold.any() and set(lists[lists.cold].item) <= set(train.items.ids[cold])
    path = learner.save(tmp_path / "topn.cf")
    loaded = cf.load_model(path)
    torch.testing.assert_close(
        loaded.score_users(np.arange(20)), learner.score_users(np.arange(20))
    )
    rated = int(np.flatnonzero(train.item_counts() > 0)[0])

    def rated_item(tensors):
        tensors["ranking.placed_items"][0] = rated
        tensors["ranking.placed_items"] = tensors["ranking.placed_items"].sort().values

    def out_of_range(tensors):
        tensors["ranking.placed_items"][-1] = train.n_items

    def repeated(tensors):
        tensors["ranking.placed_items"][1] = tensors["ranking.placed_items"][0]

    def negative(tensors):
        tensors["ranking.placed_items"][0] = -1

    for name, edit in (("rated", rated_item), ("out_of_range", out_of_range),
                       ("repeated", repeated), ("negative", negative)):  # fmt: skip
        with pytest.raises(ModelFileError, match="placed_items"):
            cf.load_model(forge(path, tmp_path / f"{name}.cf", None, edit))
    none = collab_learner(train, model="topn", options=QUIET, features="none")
    none.fit_recipe()
    assert len(none.model.placed()) == 0 and set(none.unlearned_items()) == set(cold)


def test_the_ranking_family_reads_item_features_only():
    with pytest.raises(ConfigError, match="reads item features only"):
        collab_learner(PLANTED, model="topn", options=QUIET, features=["user:group"])
    users_only = PLANTED.keep_features(user=["group"])
    learner = collab_learner(users_only, model="topn", options=QUIET)
    assert learner.features_used.describe() == "none (the ranking family reads item features only)"
