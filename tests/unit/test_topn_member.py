"""The topn recipe as a member of the library: learner, model files beside a rating
model, recommendations, fold-in, explanations and evaluation by raw id."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.errors import CollabFilterError, ConfigError
from collabfilter.evaluation.topn import evaluate_ranking
from collabfilter.interpret import similar_items
from collabfilter.models import RECIPES, TopNConfig
from collabfilter.recommend import explain, recommend, recommend_new_user
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=2)
SMALL = TopNConfig(candidates=("ease", "item_knn"), ials_sweeps=2)


@pytest.fixture(scope="module")
def split():
    synthetic = cf.generate_ratings(300, 400, 15_000, n_factors=4, seed=9)
    return cf.split_by_user(synthetic.ratings, frac=0.2, seed=1)


@pytest.fixture(scope="module")
def ranker(split):
    learner = collab_learner(split.train, split.valid, model="topn", config=SMALL, options=QUIET)
    learner.fit_recipe()
    return learner


def test_topn_learner_chooses_fits_and_reports(ranker):
    report = ranker.report
    assert report is not None and report.kind in ("ease", "item_knn")
    assert "why: best NDCG@10 on the carved hold-out" in str(report)
    assert ranker.history[-1].train_loss is None and not ranker.predicts_ratings
    assert 0 < ranker.metrics["valid_ndcg@10"] <= 1 and 0 < ranker.metrics["valid_recall@20"] <= 1
    with pytest.raises(CollabFilterError, match="does not predict ratings"):
        ranker.predict(1, 1)
    with pytest.raises(ConfigError, match="fit_recipe"):
        ranker.fit_one_cycle(1, 0.1)
    lists = recommend(ranker, [1, 2], k=5)
    assert lists.score_name == "score" and list(lists.to_frame(ranker).columns)[-1] == "score"
    seen = set(ranker.interactions.items_of(0)[0].tolist())
    assert not seen & set(lists.of(0)[0].tolist())


def test_one_file_serves_ratings_and_lists(split, ranker, tmp_path):
    config = replace(RECIPES["dot_bias"][1], tune_decay=False, epochs=3)
    rating = collab_learner(split.train, config=config, options=QUIET)
    rating.fit_recipe()
    path = rating.save(tmp_path / "both.cf", ranking=ranker)
    model = cf.load_model(path)
    assert model.predicts_ratings and model.ranker is not None
    assert np.array_equal(model.predict_ratings(split.valid), rating.predict_ratings(split.valid))
    auto, by_rating = recommend(model, [1], k=5), recommend(model, [1], k=5, by="rating")
    assert np.array_equal(auto.item_idx, recommend(ranker, [1], k=5).item_idx)
    assert np.array_equal(by_rating.item_idx, recommend(rating, [1], k=5).item_idx)
    with pytest.raises(CollabFilterError, match="holds no ranking model"):
        recommend(rating, [1], by="ranking")
    with pytest.raises(CollabFilterError, match="ranking= takes a ranking model"):
        cf.save_model(tmp_path / "bad.cf", rating, ranking=rating)


def test_new_users_explanations_and_neighbours(ranker):
    picks = recommend_new_user(ranker, {1: 5.0, 2: 4.0, 3: 1.0}, k=4)
    assert len(picks) == 4 and not {1, 2, 3} & set(picks.item.tolist())
    user = ranker.users.ids[0]
    item = recommend(ranker, [user], k=1).to_frame(ranker).item.iloc[0]
    why = explain(ranker, user, item, n_similar=3)
    scores = ranker.score_users(np.array([0]))[0]
    assert why.prediction == pytest.approx(float(scores[ranker.items.index_of(item)]), abs=1e-4)
    assert len(why.rated) == 3 and why.rated.contribution.is_monotonic_decreasing
    near = similar_items(ranker, 5, k=4)
    assert len(near) == 4 and 5 not in near.item.tolist()


def test_ranking_evaluation_matches_by_raw_id(split, ranker):
    table = evaluate_ranking(ranker, split).set_index(["scorer", "k"])
    assert set(table.index.get_level_values(0)) == {"model", "most popular"}
    reread = cf.Split(split.train, cf.Ratings.from_df(split.valid.to_frame()), split.report)
    again = evaluate_ranking(ranker, reread).set_index(["scorer", "k"])
    pd.testing.assert_frame_equal(table, again)
    assert table.loc[("model", 10), "users"] == len(
        np.unique(split.valid.user_idx[split.valid.rating >= 4])
    )  # every user with a hit to find is scored
