"""DataFrames in, DataFrames out: the whole pipeline behind one scikit-learn estimator.

For people coming from scikit-learn or Surprise: ``Recommender(...).fit(frame)``, then
``predict(frame)`` (a column aligned with the frame's rows), ``score(frame)``, and
``recommend(users)``. Ids are the raw ids of the frames; the recipe is the named
model's. It follows scikit-learn's conventions: hyper-parameters are explicit keyword
arguments stored as given and validated at ``fit``, ``get_params``/``set_params`` work,
``sklearn.base.clone`` makes an unfitted copy, learned state ends in ``_``. The
fastai-style flow (``collab_learner``, ``fit_one_cycle``) is the same engine with every
knob in reach.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.config import RunOptions, with_changes
from collabfilter.data import Ratings
from collabfilter.errors import ConfigError, NotFittedError, UnknownIdError
from collabfilter.fitted import FittedModel, UnknownPolicy
from collabfilter.metrics import error_metrics
from collabfilter.models import RECIPES
from collabfilter.persist import load_model, save_model
from collabfilter.recommend import recommend
from collabfilter.train import collab_learner


class Recommender:
    """A model trained on a table of ratings, used through tables.

    Args:
        model: a recipe name (see :data:`~collabfilter.models.RECIPES`).
        n_factors: factors per user and item (None: the recipe's).
        epochs: epochs of an sgd recipe, sweeps of ``bayes`` (None: the recipe's).
        model_params: other fields of the recipe's model config (``{"layers": (64,)}``).
        user, item, rating: column names of the frames (``title`` optionally names a
            column of item titles, ``timestamp`` one of event times).
        title: column of item titles, read when the training frame has it (so
            :meth:`recommend` shows titles); None never reads one.
        timestamp: column of event times, or None.
        unknown: what :meth:`predict` gives pairs with an unknown user or item
            (``"error"``, ``"nan"`` or ``"baseline"``; see ``UnknownPolicy``).
        seed: seeds initialisation, shuffling and every random choice.
        options: other run options (threads, device, progress); its seed is ``seed``.
    """

    def __init__(
        self,
        model: str = "dot_bias",
        *,
        n_factors: int | None = None,
        epochs: int | None = None,
        model_params: dict[str, Any] | None = None,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        title: str | None = "title",
        timestamp: str | None = None,
        unknown: UnknownPolicy = "error",
        seed: int = 42,
        options: RunOptions | None = None,
    ) -> None:
        self.model = model
        self.n_factors = n_factors
        self.epochs = epochs
        self.model_params = model_params
        self.user = user
        self.item = item
        self.rating = rating
        self.title = title
        self.timestamp = timestamp
        self.unknown = unknown
        self.seed = seed
        self.options = options

    # ------------------------------------------------------------ scikit-learn's protocol
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters as given (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Recommender:
        """Change parameters (scikit-learn's ``set_params``); returns self.

        Raises:
            ConfigError: for a name that is not a parameter.
        """
        known = self._param_names()
        for name, value in params.items():
            if name not in known:
                raise ConfigError(f"Recommender has no parameter {name!r}; known: {known}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self) -> Any:
        """What scikit-learn's tools ask of an estimator (read by scikit-learn only, so
        it is imported here): DataFrames in, no target apart from the frame."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True, categorical=True, string=True),
            no_validation=True,
        )

    def __repr__(self) -> str:
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
        }
        shown = [
            f"{name}={value!r}" for name, value in self.get_params().items()
            if name == "model" or value != defaults.get(name)
        ]  # fmt: skip
        return f"Recommender({', '.join(shown)})"

    # ------------------------------------------------------------ fitting
    def fit(self, ratings: pd.DataFrame | Ratings) -> Recommender:
        """Train the recipe on every rating of ``ratings``; returns self.

        Raises:
            ConfigError: for an unknown recipe or parameter values it refuses.
        """
        if self.model not in RECIPES:
            raise ConfigError(f"unknown model {self.model!r}; known: {sorted(RECIPES)}")
        if isinstance(ratings, pd.DataFrame):
            # titles are optional: a frame without the column is read without them
            title = self.title if self.title in ratings.columns else None
            ratings = Ratings.from_df(
                ratings, user=self.user, item=self.item, rating=self.rating,
                title=title, timestamp=self.timestamp,
            )  # fmt: skip
        model_config, fit_config = RECIPES[self.model]
        changes = dict(self.model_params or {})
        if self.n_factors is not None:
            changes["n_factors"] = self.n_factors
        if self.epochs is not None:
            fit_config = fit_config.with_length(self.epochs)
        options = self.options or RunOptions(progress=False)
        options = with_changes(options, seed=self.seed)
        learner = collab_learner(
            ratings, model=with_changes(model_config, **changes), config=fit_config,
            options=options,
        )  # fmt: skip
        learner.fit_recipe()
        self.fitted_: FittedModel = learner
        return self

    @property
    def fitted(self) -> FittedModel:
        """The trained model (raises before :meth:`fit`)."""
        fitted: FittedModel | None = getattr(self, "fitted_", None)
        if fitted is None:
            raise NotFittedError("call fit(ratings) (or Recommender.load) first")
        return fitted

    def predict(self, pairs: pd.DataFrame, *, unknown: UnknownPolicy | None = None) -> pd.Series:
        """Predicted ratings for the frame's (user, item) rows, aligned with its index,
        so that ``frame["prediction"] = rec.predict(frame)`` just works.

        ``unknown`` (default: the estimator's) says what pairs with an unknown user or
        item get: an error naming them, NaN, or the bias baseline (Surprise's behaviour);
        the last two are counted in a warning.

        Raises:
            UnknownIdError: under ``unknown="error"``, for ids the training frame did
                not hold (any random split has some); the message names the policies
                that predict them anyway.
        """
        policy = self.unknown if unknown is None else unknown
        try:
            values = self.fitted.predict_ratings(
                pairs, unknown=policy, user=self.user, item=self.item
            )
        except UnknownIdError as error:
            raise UnknownIdError(
                f"{error}; to predict them anyway pass unknown='baseline' (the mean plus "
                "the known side's damped bias, as Surprise does) or unknown='nan', to "
                "Recommender(...) or to predict/score"
            ) from None
        return pd.Series(values, index=pairs.index, name="prediction")

    def score(
        self, ratings: pd.DataFrame, *, unknown: UnknownPolicy | None = None
    ) -> dict[str, float]:
        """RMSE, MAE and MSE of the predictions for ``ratings`` against its ratings."""
        predicted = self.predict(ratings, unknown=unknown).to_numpy()
        truth = ratings[self.rating].to_numpy(dtype=np.float64)
        return error_metrics(predicted, truth)

    def recommend(self, users: Any, *, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The ``k`` best items for each raw user id: user, rank, item, title, score.

        ``title`` holds the item's title where the training data gave one (see the
        ``title`` parameter) and None elsewhere: never an id passed off as a title.
        """
        model = self.fitted
        return recommend(model, users, k=k, exclude_seen=exclude_seen).to_frame(model)

    def save(self, path: str | Path) -> Path:
        """Write the trained model to ``path`` (a model file: :mod:`collabfilter.persist`)."""
        return save_model(path, self.fitted, ranking=self.fitted.ranker)

    @classmethod
    def load(
        cls, path: str | Path, *, user: str | None = None, item: str | None = None,
        rating: str | None = None,
    ) -> Recommender:  # fmt: skip
        """A recommender around the model saved at ``path``: its model kind as ``model``
        (a refit, or a clone's fit, trains that kind's recipe, not the saved model's
        settings), and frames read by the column names it was trained on unless others
        are given."""
        fitted = load_model(path)
        kind = fitted.model_config.kind if fitted.model_config is not None else "dot_bias"
        columns = fitted.columns
        recommender = cls(
            kind, user=user or columns.get("user", "user"),
            item=item or columns.get("item", "item"),
            rating=rating or columns.get("rating", "rating"),
        )  # fmt: skip
        recommender.fitted_ = fitted
        return recommender
