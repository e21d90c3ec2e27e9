"""DataFrames in, DataFrames out: the whole pipeline behind four calls.

For people coming from scikit-learn or Surprise: ``Recommender(...).fit(frame)``, then
``predict(frame)`` (a column aligned with the frame's rows), ``score(frame)``, and
``recommend(users)``. Ids are the raw ids of the frames; the recipe is the named
model's. The fastai-style flow (``collab_learner``, ``fit_one_cycle``) is the same
engine with every knob in reach.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.config import RunOptions
from collabfilter.data import Ratings
from collabfilter.errors import NotFittedError
from collabfilter.evaluate import error_metrics
from collabfilter.fitted import FittedModel, UnknownPolicy
from collabfilter.persist import load_model, save_model
from collabfilter.recommend import recommend
from collabfilter.train import collab_learner


class Recommender:
    """A model trained on a table of ratings, used through tables.

    Args:
        model: a recipe name (see :data:`~collabfilter.config.RECIPES`).
        user, item, rating: column names of the frames (``title`` optionally names a
            column of item titles, ``timestamp`` one of event times).
        options: run options (seed, threads, device, progress).
        model_changes: model config fields to override (``n_factors=32``...).
    """

    def __init__(
        self,
        model: str = "dot_bias",
        *,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        title: str | None = None,
        timestamp: str | None = None,
        options: RunOptions | None = None,
        **model_changes: Any,
    ) -> None:
        self.model = model
        self.user, self.item, self.rating = user, item, rating
        self.title, self.timestamp = title, timestamp
        self.options = options or RunOptions(progress=False)
        self.model_changes = model_changes
        self.fitted_: FittedModel | None = None

    def __repr__(self) -> str:
        state = "fitted" if self.fitted_ is not None else "not fitted"
        return f"Recommender(model={self.model!r}, {state})"

    def fit(self, ratings: pd.DataFrame | Ratings) -> Recommender:
        """Train the recipe on every rating of ``ratings``; returns self."""
        if isinstance(ratings, pd.DataFrame):
            ratings = Ratings.from_df(
                ratings, user=self.user, item=self.item, rating=self.rating,
                title=self.title, timestamp=self.timestamp,
            )  # fmt: skip
        learner = collab_learner(ratings, model=self.model, options=self.options,
                                 **self.model_changes)  # fmt: skip
        learner.fit_recipe()
        self.fitted_ = learner
        return self

    @property
    def fitted(self) -> FittedModel:
        """The trained model (raises before :meth:`fit`)."""
        if self.fitted_ is None:
            raise NotFittedError("call fit(ratings) (or Recommender.load) first")
        return self.fitted_

    def predict(self, pairs: pd.DataFrame, *, unknown: UnknownPolicy = "error") -> pd.Series:
        """Predicted ratings for the frame's (user, item) rows, aligned with its index,
        so that ``frame["prediction"] = rec.predict(frame)`` just works.

        ``unknown="baseline"`` gives unknown users or items the bias baseline instead
        of an error (Surprise's behaviour), ``"nan"`` gives NaN; both are counted.
        """
        values = self.fitted.predict_ratings(pairs, unknown=unknown, user=self.user, item=self.item)
        return pd.Series(values, index=pairs.index, name="prediction")

    def score(self, ratings: pd.DataFrame, *, unknown: UnknownPolicy = "error") -> dict[str, float]:
        """RMSE, MAE and MSE of the predictions for ``ratings`` against its ratings."""
        predicted = self.predict(ratings, unknown=unknown).to_numpy()
        truth = ratings[self.rating].to_numpy(dtype=np.float64)
        return error_metrics(predicted, truth)

    def recommend(self, users: Any, *, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The ``k`` best items for each raw user id: user, rank, item, title, score."""
        model = self.fitted
        return recommend(model, users, k=k, exclude_seen=exclude_seen).to_frame(model)

    def save(self, path: str | Path) -> Path:
        """Write the trained model to ``path`` (a model file, see :mod:`collabfilter.persist`)."""
        return save_model(path, self.fitted, ranking=self.fitted.ranker)

    @classmethod
    def load(
        cls, path: str | Path, *, user: str = "user", item: str = "item", rating: str = "rating"
    ) -> Recommender:
        """A recommender around the model saved at ``path``, reading frames with these
        column names."""
        recommender = cls(user=user, item=item, rating=rating)
        recommender.fitted_ = load_model(path)
        return recommender
