"""Results beyond one number: predictions beside truth, errors by activity, and the
canonical ml-100k cross-validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from collabfilter.config import RunOptions
from collabfilter.data import Ratings, load_movielens_fold
from collabfilter.fitted import FittedModel
from collabfilter.metrics import error_by_bucket, error_metrics
from collabfilter.train import collab_learner


def show_results(
    learner: FittedModel, ratings: Ratings, n: int = 10, *, seed: int = 42
) -> pd.DataFrame:
    """``n`` random rows of ``ratings``: user, item title, rating, predicted rating
    (matched to the model by raw id)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ratings), size=min(n, len(ratings)), replace=False))
    sample = ratings.subset(rows)
    frame = sample.to_frame()[["user", "item"]]
    frame["title"] = sample.items.labels(sample.item_idx)
    frame["rating"] = sample.rating
    frame["predicted"] = learner.predict_ratings(sample)
    return frame.reset_index(drop=True)


def error_breakdown(learner: FittedModel, valid: Ratings) -> dict[str, pd.DataFrame]:
    """Validation RMSE/MAE by the user's and by the item's number of training ratings.

    ``valid`` is matched to the model by raw id; the ``0`` bucket holds cold users or
    items (in the vocabulary but never seen in training).
    """
    pairs = learner.resolve_ratings(valid)
    predictions = learner.predict_ratings(valid)
    data = learner.interactions
    return {
        "by user activity": error_by_bucket(
            predictions, valid.rating, data.user_counts()[pairs.user_idx],
            edges=(0, 1, 21, 51, 101), label="user's train ratings",
        ),
        "by item popularity": error_by_bucket(
            predictions, valid.rating, data.item_counts()[pairs.item_idx],
            label="item's train ratings",
        ),
    }  # fmt: skip


def cross_validate_ml100k(
    *,
    model: str = "dot_bias",
    folds: Sequence[str] = ("u1", "u2", "u3", "u4", "u5"),
    path: str | Path | None = None,
    options: RunOptions | None = None,
) -> pd.DataFrame:
    """Train the default recipe on each canonical fold and score its test file.

    Returns one row per fold (rmse, mae, mse) and two summary rows, ``mean`` and
    ``std`` (sample standard deviation over folds).
    """
    options = options or RunOptions(progress=False)
    rows = []
    for fold in folds:
        split = load_movielens_fold(fold, path=path)
        learner = collab_learner(split.train, None, model=model, options=options)
        learner.fit_recipe()
        rows.append({"fold": fold, **error_metrics(learner.predict_ratings(split.valid),
                                                   split.valid.rating)})  # fmt: skip
    table = pd.DataFrame(rows)
    numbers = table.drop(columns="fold")
    summary = pd.DataFrame(
        [{"fold": "mean", **numbers.mean().to_dict()}, {"fold": "std", **numbers.std().to_dict()}]
    )
    return pd.concat([table, summary], ignore_index=True)
