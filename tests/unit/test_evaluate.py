import numpy as np
import pandas as pd
import pytest
import torch

from collabfilter import Ratings
from collabfilter.errors import DataError, NotFittedError
from collabfilter.evaluation.baselines import BiasBaseline, standard_baselines
from collabfilter.metrics import (
    ItemSets,
    error_by_bucket,
    error_metrics,
    evaluate_top_n,
    mae,
    popular_items,
    ranking_metrics,
    rmse,
)


def test_error_metrics_by_hand():
    metrics = error_metrics(np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 3.0]))
    assert metrics == pytest.approx({"rmse": np.sqrt(5 / 3), "mae": 1.0, "mse": 5 / 3})


def test_metrics_refuse_misaligned_nan_and_empty():
    with pytest.raises(DataError, match="align"):
        rmse(np.ones(3), np.ones(2))
    with pytest.raises(DataError, match="NaN"):
        mae(np.array([np.nan, 1.0]), np.ones(2))
    with pytest.raises(DataError, match="no predictions"):
        rmse(np.array([]), np.array([]))


def test_ranking_metrics_by_hand():
    # user 0: hits at ranks 1 and 3 of 3 relevant; user 1: no hit of 1 relevant;
    # user 2: nothing relevant (skipped)
    top = np.array([[0, 1, 2], [3, 4, 0], [1, 2, 3]])
    relevant = ItemSets.from_pairs([0, 0, 0, 1], [0, 2, 5, 5], n_users=3, n_items=6)
    popular = popular_items(np.array([9, 1, 1, 8, 1, 1]), share=0.34)  # items 0 and 3
    metrics = ranking_metrics(top, relevant, k=3, popular=popular)
    assert metrics["users"] == 2
    assert metrics["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert metrics["recall"] == pytest.approx((2 / 3 + 0) / 2)
    dcg = 1 + 1 / np.log2(4)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert metrics["ndcg"] == pytest.approx(dcg / ideal / 2)
    assert metrics["map"] == pytest.approx((1 + 2 / 3) / 3 / 2)
    assert metrics["hit_rate"] == pytest.approx(0.5)
    assert metrics["coverage"] == pytest.approx(5 / 6)  # items 0-4 recommended to users 0, 1
    assert metrics["popular_share"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    with pytest.raises(DataError):
        ranking_metrics(top, relevant, k=4)
    with pytest.raises(DataError, match="one row per user"):
        ranking_metrics(top[:2], relevant, k=3)


def test_item_sets_mask_and_membership():
    sets = ItemSets.from_pairs([2, 0, 2, 2], [1, 3, 0, 1], n_users=3, n_items=4)  # a repeat
    assert sets.lengths().tolist() == [1, 0, 2] and sets.indices.tolist() == [3, 0, 1]
    scores = torch.zeros(2, 4)
    sets.mask(scores, np.array([2, 0]))
    assert torch.isinf(scores).tolist() == [[True, True, False, False],
                                            [False, False, False, True]]  # fmt: skip
    assert sets.contains(np.array([0, 2]), np.array([[3, 1], [3, 1]])).tolist() == [
        [True, False], [False, True]]  # fmt: skip
    with pytest.raises(DataError, match="item_idx"):
        ItemSets.from_pairs([0], [4], n_users=1, n_items=4)


def test_blocked_evaluation_equals_one_block(rng):
    n_users, n_items = 300, 50
    seen = ItemSets.from_pairs(rng.integers(0, n_users, 2000), rng.integers(0, n_items, 2000),
                               n_users, n_items)  # fmt: skip
    relevant = ItemSets.from_pairs(rng.integers(0, n_users, 600), rng.integers(0, n_items, 600),
                                   n_users, n_items)  # fmt: skip
    table = torch.from_numpy(rng.random((n_users, n_items)).astype(np.float32))
    calls = []

    def scores_for(block):
        calls.append(len(block))
        return table[torch.from_numpy(block)].clone()

    popular = popular_items(np.arange(n_items))
    blocked = evaluate_top_n(scores_for, seen, relevant, ks=(5, 10), popular=popular,
                             block_size=64)  # fmt: skip
    assert max(calls) == 64 and sum(calls) == int((relevant.lengths() > 0).sum())
    whole = evaluate_top_n(scores_for, seen, relevant, ks=(5, 10), popular=popular,
                           block_size=n_users)  # fmt: skip
    for by_block, at_once in zip(blocked, whole, strict=True):
        assert by_block == pytest.approx(at_once)
    # the reference: dense masking and ranking of every user at once
    masked = table.clone()
    rows, items = seen.block(np.arange(n_users))
    masked[rows, items] = -torch.inf
    top = torch.topk(masked, 10, dim=1).indices.numpy()
    assert blocked[1]["ndcg"] == pytest.approx(ranking_metrics(top, relevant, 10)["ndcg"])
    seen_top = seen.contains(np.arange(n_users), top)
    assert not seen_top.any()
    with pytest.raises(DataError, match="expected"):
        evaluate_top_n(lambda block: torch.zeros(len(block), 3), seen, relevant)


def test_error_by_bucket_labels_and_counts():
    table = error_by_bucket(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]), np.array([0, 3, 500])
    )
    assert table.iloc[:, 0].tolist() == ["0", "1-5", "6-20", "21-100", "101+"]
    assert table.ratings.tolist() == [1, 1, 0, 0, 1]
    assert table.rmse.iloc[1] == pytest.approx(1.0) and np.isnan(table.rmse.iloc[2])


def test_bias_baseline_recovers_planted_biases(rng):
    users, items = np.meshgrid(np.arange(40), np.arange(30), indexing="ij")
    user_bias, item_bias = rng.normal(0, 0.5, 40), rng.normal(0, 0.5, 30)
    rating = 3.5 + user_bias[users] + item_bias[items] + rng.normal(0, 0.1, users.shape)
    ratings = Ratings.from_df(pd.DataFrame({"user": users.ravel(), "item": items.ravel(),
                                            "rating": rating.ravel()}))  # fmt: skip
    baseline = BiasBaseline(reg_user=0.1, reg_item=0.1).fit(ratings)
    assert np.corrcoef(baseline.item_bias_, item_bias)[0, 1] > 0.98
    assert rmse(baseline.predict_ratings(ratings), ratings.rating) < 0.12
    with pytest.raises(NotFittedError):
        BiasBaseline().predict_ratings(ratings)


def test_standard_baselines_and_unseen_fallback():
    train = Ratings.from_df(
        pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1], "rating": [1.0, 3.0, 5.0]})
    )
    table = {name: b.fit(train).predict_ratings(train) for name, b in standard_baselines().items()}
    assert table["global mean"].tolist() == pytest.approx([3.0, 3.0, 3.0])
    assert table["user mean"].tolist() == pytest.approx([2.0, 2.0, 5.0])
    assert table["item mean"].tolist() == pytest.approx([3.0, 3.0, 3.0])
    unseen = train.subset(np.array([0]))  # same vocabularies; a user with no ratings left
    assert np.isfinite(BiasBaseline().fit(unseen).predict_ratings(train)).all()
