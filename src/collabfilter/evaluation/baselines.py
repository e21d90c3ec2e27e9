"""Baselines every model must beat: global, user and item means, and a bias-only model.

They predict with NumPy only, from a training :class:`Ratings`. Pairs to predict are
matched by raw id (a ``Ratings`` with its own vocabulary, or a DataFrame); users or
items absent from training fall back to the global mean (for the means) or to a zero
bias, and ids outside the vocabulary follow the ``unknown`` policy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from collabfilter.data import Ratings
from collabfilter.errors import DataWarning, NotFittedError
from collabfilter.fitted import resolve_table


@dataclass
class BiasBaseline:
    """``r(u, i) = mu + b_u + b_i``, with damped (regularised) biases.

    Fitted by alternating closed-form updates (Surprise's ``BaselineOnly`` with ALS):
    ``b_i = sum(r - mu - b_u) / (reg_item + n_i)`` and the same for users.
    ``use_users`` / ``use_items`` switch a side off: with one side off and no
    damping this is the plain item (or user) mean.

    Attributes:
        reg_user: damping of user biases.
        reg_item: damping of item biases.
        iterations: alternating sweeps.
        use_users: learn user biases.
        use_items: learn item biases.
    """

    reg_user: float = 15.0
    reg_item: float = 10.0
    iterations: int = 10
    use_users: bool = True
    use_items: bool = True

    def fit(self, train: Ratings) -> BiasBaseline:
        """Learn ``mu``, ``user_bias_`` and ``item_bias_`` from ``train``; returns self."""
        ratings = train.rating.astype(np.float64)
        self.users_, self.items_ = train.users, train.items
        self.global_mean_ = float(ratings.mean())
        self.user_bias_ = np.zeros(train.n_users)
        self.item_bias_ = np.zeros(train.n_items)
        users, items = train.user_idx, train.item_idx
        n_users = np.bincount(users, minlength=train.n_users)
        n_items = np.bincount(items, minlength=train.n_items)
        for _ in range(self.iterations if self.use_users and self.use_items else 1):
            if self.use_items:
                residual = ratings - self.global_mean_ - self.user_bias_[users]
                sums = np.bincount(items, weights=residual, minlength=train.n_items)
                self.item_bias_ = sums / np.maximum(self.reg_item + n_items, 1e-9)  # unseen: 0
            if self.use_users:
                residual = ratings - self.global_mean_ - self.item_bias_[items]
                sums = np.bincount(users, weights=residual, minlength=train.n_users)
                self.user_bias_ = sums / np.maximum(self.reg_user + n_users, 1e-9)
        return self

    def predict_ratings(
        self,
        ratings: Ratings | pd.DataFrame,
        *,
        unknown: Literal["error", "baseline"] = "error",
        user: str = "user",
        item: str = "item",
    ) -> np.ndarray:
        """Predictions for every (user, item) pair of ``ratings``, matched by raw id.

        Args:
            ratings: a ``Ratings`` or a DataFrame with ``user`` and ``item`` columns.
            unknown: ids the training data never named raise ``"error"``, or get a zero
                bias on their side with ``"baseline"`` (counted in a warning).
        """
        if not hasattr(self, "global_mean_"):
            raise NotFittedError("call fit(train) before predicting")
        pairs = resolve_table(self.users_, self.items_, ratings, user=user, item=item)
        if not pairs.known.all():
            if unknown == "error":
                raise_unknown = pairs.user_known.all()
                vocabulary = self.items_ if raise_unknown else self.users_
                side = pairs.item_known if raise_unknown else pairs.user_known
                frame = ratings.to_frame() if isinstance(ratings, Ratings) else ratings
                column = item if raise_unknown else user
                vocabulary.index(frame[column].to_numpy()[~side])  # raises, naming them
            warnings.warn(
                f"{int((~pairs.known).sum())} pairs have an unknown user or item; "
                "they get a zero bias on that side",
                DataWarning,
                stacklevel=2,
            )
        user_bias = np.where(pairs.user_known, self.user_bias_[pairs.user_idx], 0.0)
        item_bias = np.where(pairs.item_known, self.item_bias_[pairs.item_idx], 0.0)
        return np.asarray(self.global_mean_ + user_bias + item_bias, dtype=np.float32)


def standard_baselines() -> dict[str, BiasBaseline]:
    """The baselines of the results table, by name."""
    return {
        "global mean": BiasBaseline(use_users=False, use_items=False),
        "user mean": BiasBaseline(reg_user=0.0, use_items=False),
        "item mean": BiasBaseline(reg_item=0.0, use_users=False),
        "bias only (damped)": BiasBaseline(),
    }
