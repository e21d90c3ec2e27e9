"""Results on the real ml-100k: interpretation, ranking and the canonical folds."""

import numpy as np
import pytest

from collabfilter import split_by_user, split_random
from collabfilter.config import RunOptions
from collabfilter.evaluation.reports import cross_validate_ml100k
from collabfilter.evaluation.topn import evaluate_ranking
from collabfilter.interpret import item_biases, similar_items
from collabfilter.train import collab_learner

pytestmark = pytest.mark.realdata
QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def learner(ml100k):
    split = split_random(ml100k, 0.1, seed=42)
    fitted = collab_learner(split.train, None, options=QUIET)
    fitted.fit_recipe()
    return fitted


def test_biases_match_the_lesson(learner):
    table = item_biases(learner, among=1000)
    lowest, highest = set(table.head(15).title), set(table.tail(15).title)
    lesson = {
        "Children of the Corn: The Gathering (1996)",
        "Lawnmower Man 2: Beyond Cyberspace (1996)",
        "Mortal Kombat: Annihilation (1997)",
    }
    assert lesson <= lowest
    assert {"Schindler's List (1993)", "Shawshank Redemption, The (1994)",
            "Star Wars (1977)"} <= highest  # fmt: skip
    assert table.ratings.min() >= table.ratings.nlargest(1000).min()


def test_star_wars_neighbours(learner):
    nearest = set(similar_items(learner, "star wars", k=10).title)
    assert {"Return of the Jedi (1983)", "Empire Strikes Back, The (1980)"} <= nearest


def test_ranking_beats_most_popular(ml100k):
    split = split_by_user(ml100k, frac=0.2, seed=42)
    fitted = collab_learner(split.train, None, options=QUIET)
    fitted.fit_recipe()
    table = evaluate_ranking(fitted, split).set_index(["scorer", "k"])
    blended = [s for s in table.index.get_level_values(0) if s.startswith("model +")][0]
    assert table.loc[(blended, 10), "ndcg"] > 1.05 * table.loc[("most popular", 10), "ndcg"]
    assert table.loc[(blended, 20), "recall"] > table.loc[("most popular", 20), "recall"]
    assert table.loc[("model", 10), "coverage"] > table.loc[("most popular", 10), "coverage"]


def test_five_fold_cross_validation(ml100k_dir):
    table = cross_validate_ml100k(path=ml100k_dir).set_index("fold")
    assert list(table.index) == ["u1", "u2", "u3", "u4", "u5", "mean", "std"]
    assert table.loc["mean", "rmse"] < 0.915 and table.loc["std", "rmse"] < 0.02
    assert np.all(table.loc[["u1", "u2", "u3", "u4", "u5"], "rmse"] < 0.925)
