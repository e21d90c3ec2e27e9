"""Interpretation and recommendation on planted data with titles."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from collabfilter import generate_ratings, split_by_user, split_random
from collabfilter.config import RunOptions
from collabfilter.errors import AmbiguousTitleError, CollabFilterError, DataError, UnknownIdError
from collabfilter.evaluation.reports import error_breakdown, show_results
from collabfilter.evaluation.topn import evaluate_ranking
from collabfilter.interpret import (
    find_item,
    item_biases,
    item_labels,
    item_pca,
    item_titles,
    pca_extremes,
    rare_items,
    rarely_rated,
    similar_items,
    user_biases,
)
from collabfilter.models import RECIPES
from collabfilter.recommend import explain, fold_in, recommend, recommend_new_user
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=5)
SPECIAL = {1: "Godfather, The (1972)", 2: "Star Wars (1977)", 3: "Twin (1990)", 4: "Twin (1990)"}


@pytest.fixture(scope="module")
def data():
    synthetic = generate_ratings(250, 400, 20_000, n_factors=4, noise_std=0.5, seed=21)
    titles = {k: SPECIAL.get(k, f"Movie {k} (1990)") for k in range(1, 401)}
    return synthetic, synthetic.ratings.with_titles(titles)


@pytest.fixture(scope="module")
def learner(data):
    _, ratings = data
    train, _ = split_random(ratings, 0.1, seed=3)
    fitted = collab_learner(train, None, options=QUIET)
    fitted.fit_recipe()
    return fitted


@pytest.mark.parametrize(
    ("query", "item"),
    [(2, 2), ("Star Wars (1977)", 2), ("star wars", 2), ("The Godfather", 1), ("godfather", 1)],
)
def test_forgiving_title_lookup(learner, query, item):
    assert learner.items.ids[find_item(learner, query)] == item


def test_lookup_errors_list_candidates(learner):
    counts = learner.interactions.item_counts()[learner.items.index([3, 4])]
    first, second = (3, 4) if counts[0] >= counts[1] else (4, 3)
    with pytest.raises(AmbiguousTitleError, match=f"{first}: Twin.*{second}: Twin"):
        find_item(learner, "twin")
    with pytest.raises(UnknownIdError, match="closest titles.*Star Wars"):
        find_item(learner, "Star Warz (1977)")


def test_biases_sorted_among_most_rated_and_correlated_with_truth(data, learner):
    synthetic, _ = data
    table = item_biases(learner, among=100)
    assert len(table) == 100 and table.bias.is_monotonic_increasing
    assert table.ratings.min() >= np.sort(learner.train_ratings.item_counts())[-100]
    truth = synthetic.truth.item_bias[learner.items.index(table.item)]
    assert np.corrcoef(table.bias, truth)[0, 1] > 0.6
    assert user_biases(learner).bias.is_monotonic_increasing


def test_pca_and_extremes(learner):
    pca = item_pca(learner, 3, among=200)
    assert pca.coordinates.shape == (200, 3) and pca.explained.sum() <= 1.0
    assert np.all(np.diff(pca.explained) <= 1e-12)
    assert np.isclose(pca.coordinates.mean(axis=0), 0, atol=1e-4).all()
    assert list(pca.labels[:3]) == list(item_labels(learner, pca.item_idx[:3]))
    ends = pca_extremes(pca, component=1, n=5)
    assert ends.shape == (5, 2) and not set(ends["low end"]) & set(ends["high end"])


def test_similar_items(learner):
    table = similar_items(learner, "Star Wars", k=5)
    assert len(table) == 5 and 2 not in table.item.tolist()
    assert table.similarity.is_monotonic_decreasing and table.similarity.max() <= 1.0 + 1e-6
    filtered = similar_items(learner, 2, k=5, min_ratings=60, metric="dot")
    assert (filtered.ratings >= 60).all()


def test_similar_items_leave_out_rarely_rated_items_by_a_bound_from_the_data(learner):
    counts = learner.interactions.item_counts()
    bound = rarely_rated(counts)
    assert bound > 1
    default = similar_items(learner, "Star Wars", k=40)
    assert default.attrs["min_ratings"] == bound and (default.ratings >= bound).all()
    everything = similar_items(learner, "Star Wars", k=40, min_ratings=1)
    assert everything.attrs["min_ratings"] == 1
    assert (everything.ratings < bound).any()  # rare items do crowd in without the bound
    with pytest.raises(ValueError, match="min_ratings must be >= 1"):
        similar_items(learner, "Star Wars", min_ratings=0)


def test_rare_items_are_the_items_under_the_bound(learner):
    """One rule for top-N lists and neighbour lists, whatever the bound asked for."""
    counts = learner.item_counts()
    for bound in (1, 2, 30, int(counts.max()) + 1):
        rare = rare_items(learner, bound)
        assert sorted(rare.tolist()) == np.flatnonzero(counts < bound).tolist()
    assert rare_items(learner, None) is None
    with pytest.raises(ValueError, match="min_ratings must be >= 1"):
        rare_items(learner, 0)


def test_the_rarely_rated_bound_follows_the_share_of_ratings(rng):
    counts = rng.zipf(1.6, 2_000).clip(1, 5_000)
    bound = rarely_rated(counts, 0.05)
    left_out = counts[counts < bound].sum() / counts.sum()
    assert left_out <= 0.05 < left_out + counts[counts == bound].sum() / counts.sum()
    alike = np.full(100, 7)
    assert (alike >= rarely_rated(alike)).all()  # every item rated alike: none left out
    assert rarely_rated(np.array([1, 1, 1, 100, 100])) == 100  # three single ratings: 1.5%
    assert rarely_rated(counts, 0.0) == counts.min()  # nothing left out


def test_item_titles_are_titles_or_none(data, learner):
    titled = item_titles(learner, learner.items.index([1, 2]))
    assert titled.tolist() == ["Godfather, The (1972)", "Star Wars (1977)"]
    synthetic, _ = data
    plain = collab_learner(synthetic.ratings, config=replace(RECIPES["dot_bias"][1], epochs=1),
                           options=QUIET)  # fmt: skip
    assert item_titles(plain, [0, 1]).tolist() == [None, None]
    assert item_labels(plain, [0, 1]).tolist() == ["1", "2"]  # labels to print, not titles


def test_recommend_excludes_seen_and_rare_items_for_all_users(learner):
    users = learner.users.ids
    result = recommend(learner, users, k=7, min_ratings=30)
    assert len(result) == len(users) and np.all(np.diff(result.offsets) == 7)
    lists = result.item_idx.reshape(len(users), 7)
    train = learner.train_ratings
    seen = set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    user_idx = learner.users.index(users)
    assert not any((u, i) in seen for u, row in zip(user_idx, lists, strict=True) for i in row)
    assert (train.item_counts()[result.item_idx] >= 30).all()
    assert np.all(np.diff(result.scores.reshape(len(users), 7), axis=1) <= 1e-6)
    expected = learner.predict(np.repeat(users[:3], 7), learner.items.id_of(lists[:3].ravel()))
    assert np.allclose(result.scores[:21], expected, atol=1e-5)
    frame = result.to_frame(learner)
    assert list(frame.columns) == ["user", "rank", "item", "title", "predicted"]


def test_fold_in_of_a_known_user_lands_near_the_trained_user(learner):
    train = learner.train_ratings
    user = int(np.argmax(train.user_counts()))
    mine = train.user_idx == user
    rated = dict(
        zip(
            train.items.id_of(train.item_idx[mine]).tolist(),
            train.rating[mine].tolist(),
            strict=True,
        )
    )
    folded = fold_in(learner, rated)
    trained = learner.score_users(np.array([user]))[0]
    new = learner.score_folded(folded)
    assert torch.corrcoef(torch.stack([trained, new]))[0, 1] > 0.95
    assert float((trained - new).abs().mean()) < 0.15


def test_new_user_recommendations_and_errors(learner):
    picks = recommend_new_user(learner, {"Star Wars": 5, 10: 1}, k=5)
    assert len(picks) == 5 and not {2, 10} & set(picks.item.tolist())
    with pytest.raises(DataError, match="scale"):
        fold_in(learner, {2: 9})
    with pytest.raises(DataError, match="at least one"):
        fold_in(learner, {})


def test_explain_adds_up(learner):
    user, item = learner.users.ids[0], 2
    why = explain(learner, user, item, n_similar=3)
    assert why.prediction == pytest.approx(float(learner.predict(user, item)[0]), abs=1e-5)
    assert set(why.terms) == {"global", "user bias", "item bias", "factors"}
    assert len(why.rated) == 3 and why.rated.similarity.is_monotonic_decreasing
    assert why.because is not None and why.because.item == why.rated.item.iloc[0]
    assert why.because.rating >= 3  # a reason is an item the user liked


def test_results_tables(data, learner):
    _, ratings = data
    train, valid = split_random(ratings, 0.1, seed=3)
    rows = show_results(learner, valid, 6)
    assert list(rows.columns) == ["user", "item", "title", "rating", "predicted"] and len(rows) == 6
    breakdown = error_breakdown(learner, valid)
    assert breakdown["by item popularity"].ratings.sum() == len(valid)


def test_ranking_evaluation_and_the_nn_model(data):
    _, ratings = data
    split = split_by_user(ratings, frac=0.2, seed=1)
    config = replace(RECIPES["dot_bias"][1], epochs=5)
    fitted = collab_learner(split.train, None, config=config, options=QUIET)
    fitted.fit_recipe()
    table = evaluate_ranking(fitted, split, ks=(5, 10))
    assert set(table.scorer) == {"model", "model + 1.5 log popularity", "most popular"}
    assert table.ndcg.between(0, 1).all() and table.recall.between(0, 1).all()
    by_scorer = table[table.k == 10].set_index("scorer")
    # the 1% most rated are 4 of 400 items: at most 4 of 10 slots, fewer once seen
    assert 0 < by_scorer.popular_share["most popular"] <= 0.4
    assert table.coverage.between(0, 1).all()
    neural = collab_learner(split.train, None, model="nn", config=config, options=QUIET)
    neural.fit_recipe()
    assert neural.score_users(np.array([0, 1])).shape == (2, ratings.n_items)
    user = int(np.argmax(split.train.user_counts()))
    mine = split.train.user_idx == user
    rated = dict(zip(split.train.items.id_of(split.train.item_idx[mine]).tolist(),
                     split.train.rating[mine].tolist(), strict=True))  # fmt: skip
    new = neural.score_folded(fold_in(neural, rated))
    trained = neural.score_users(np.array([user]))[0]
    assert torch.corrcoef(torch.stack([trained, new]))[0, 1] > 0.9


def test_top_items_by_bias(learner):
    from collabfilter.interpret import top_items_by_bias

    top = top_items_by_bias(learner, 5, min_ratings=40)
    assert len(top) == 5 and top.bias.is_monotonic_decreasing and (top.ratings >= 40).all()


def test_recommend_picks_the_items_of_highest_predicted_rating(learner):
    """Lists are ranked by cheaper scores (logits without the user's terms and the
    sigmoid): they must hold the items the predicted ratings put first."""
    users = learner.users.ids[:60]
    user_idx = learner.users.index(users)
    result = recommend(learner, users, k=10)
    with torch.no_grad():  # the model's own ratings, before they are clipped to the scale
        predicted = learner.model.score_items(torch.from_numpy(user_idx.astype(np.int64)))
    rows, seen, _ = learner.interactions.rows(user_idx)
    predicted[torch.from_numpy(rows), torch.from_numpy(seen.astype(np.int64))] = -torch.inf
    best = torch.topk(predicted, 10, dim=1)
    assert np.allclose(result.scores, best.values.clamp(max=5).numpy().ravel(), atol=1e-5)
    lists = result.item_idx.reshape(len(users), 10)
    assert (lists == best.indices.numpy()).mean() > 0.99  # float32 ties may swap


@pytest.mark.parametrize("table", ["item_factors", "user_factors", "item_bias"])
def test_recommend_refuses_scores_that_are_not_finite(data, table):
    _, ratings = data
    damaged = collab_learner(ratings, None, options=QUIET)
    damaged.fit(1)
    with torch.no_grad():
        getattr(damaged.model, table)[3] = float("nan")
    with pytest.raises(CollabFilterError, match="not finite"):
        recommend(damaged, damaged.users.ids, k=5)
