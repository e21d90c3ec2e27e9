"""Baselines every model must beat: global, user and item means, and a bias-only model.

They predict with NumPy only, from a training :class:`Ratings`; users or items absent
from training fall back to the global mean (for the means) or to a zero bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collabfilter.data import Ratings
from collabfilter.errors import NotFittedError


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

    def predict_ratings(self, ratings: Ratings) -> np.ndarray:
        """Predictions for every (user, item) pair of ``ratings`` (same vocabularies)."""
        if not hasattr(self, "global_mean_"):
            raise NotFittedError("call fit(train) before predicting")
        return (
            self.global_mean_
            + self.user_bias_[ratings.user_idx]
            + self.item_bias_[ratings.item_idx]
        ).astype(np.float32)


def standard_baselines() -> dict[str, BiasBaseline]:
    """The baselines of the results table, by name."""
    return {
        "global mean": BiasBaseline(use_users=False, use_items=False),
        "user mean": BiasBaseline(reg_user=0.0, use_items=False),
        "item mean": BiasBaseline(reg_item=0.0, use_users=False),
        "bias only (damped)": BiasBaseline(),
    }
