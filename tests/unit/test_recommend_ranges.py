"""Top-N lists scored a range of items at a time are the lists of whole rows."""

import numpy as np
import pytest
import torch

from collabfilter import generate_ratings
from collabfilter.config import RunOptions
from collabfilter.models import BayesConfig, TopNConfig
from collabfilter.recommend import block_top, rare_items
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def ratings():
    return generate_ratings(120, 230, 6000, seed=5).ratings


def fitted(kind: str, ratings):
    if kind == "bayes":
        config = BayesConfig(sweeps=12, burn_in=4)
        learner = collab_learner(ratings, model="bayes", n_factors=4, config=config,
                                 options=QUIET)  # fmt: skip
    elif kind == "topn":
        config = TopNConfig(candidates=("ials",), ials_factors=(8,), ials_l2=(0.03,),
                            ials_unobserved_scales=(3.0,), low_rating_weights=(1.0,))  # fmt: skip
        learner = collab_learner(ratings, model="topn", config=config, options=QUIET)
    else:
        learner = collab_learner(ratings, model=kind, options=QUIET)
    learner.fit_recipe()
    return learner


@pytest.mark.parametrize("kind", ["dot_bias", "dot", "bayes", "topn"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 229])
def test_lists_by_item_ranges_are_the_lists_of_whole_rows(ratings, kind, chunk):
    """Every family that scores ranges, every kind of range (one item, ragged, almost
    all), with seen items and rarely rated items left out: the same items in the same
    order with the same scores (to rounding)."""
    learner = fitted(kind, ratings)
    assert learner.model.ranks_item_ranges
    block = np.arange(ratings.n_users)
    rows, items, _ = learner.interactions.rows(block)
    seen = (torch.from_numpy(rows), torch.from_numpy(items.astype(np.int64)))
    blocked = rare_items(learner, 30)
    assert blocked is not None and 0 < len(blocked) < ratings.n_items
    for k in (1, 10, 500):  # 500: more than the allowed items, lists come back short
        whole = block_top(learner, block, k, seen, blocked, 0.0, ratings.n_items)
        ranged = block_top(learner, block, k, seen, blocked, 0.0, chunk)
        (indices, values, kept), (r_indices, r_values, r_kept) = whole, ranged
        assert torch.equal(kept, r_kept) and torch.equal(indices[kept], r_indices[r_kept])
        # a range's product may round differently in the last bits
        assert torch.allclose(values[kept], r_values[r_kept], rtol=1e-5, atol=1e-6)


def test_lists_rank_whole_rows_when_ranges_cannot_serve(ratings, monkeypatch):
    """block_top keeps its own rule: with a popularity weight (a blend of whole rows), or
    for a family that cannot score a range, any chunk asked for scores whole rows once."""
    learner = fitted("dot_bias", ratings)
    block = np.arange(ratings.n_users)
    asked: list[slice | None] = []
    rank_users = learner.rank_users

    def spy(user_idx, items=None):
        asked.append(items)
        return rank_users(user_idx, items)

    monkeypatch.setattr(learner, "rank_users", spy)
    blended = block_top(learner, block, 10, None, None, 0.5, 7)
    whole = block_top(learner, block, 10, None, None, 0.5, ratings.n_items)
    assert all(torch.equal(a, b) for a, b in zip(blended, whole, strict=True))
    assert asked == []  # the blend scored whole rows, never ranges
    monkeypatch.setattr(type(learner.model), "ranks_item_ranges", False)
    block_top(learner, block, 10, None, None, 0.0, 7)
    assert asked == [None]  # one call for whole rows, not one per range
