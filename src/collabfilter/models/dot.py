"""Dot-product models: the first two models of the fastai collaborative-filtering lesson.

Both take dense indices and return predicted ratings; they know nothing about ids,
titles or files (vocabularies live beside the model, in the learner and model files).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from collabfilter.models.bias import BiasTerms
from collabfilter.models.ops import row_dot, sigmoid_range


def _check_sizes(n_users: int, n_items: int, n_factors: int) -> None:
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_factors", n_factors)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _check_range(y_range: tuple[float, float] | None) -> None:
    if y_range is not None and not y_range[0] < y_range[1]:
        raise ValueError(f"y_range must be (low, high) with low < high, got {y_range}")


class DotProduct(nn.Module):
    """``r(u, i) = p_u . q_i``, optionally squashed into ``y_range``.

    Args:
        n_users: rows of the user table.
        n_items: rows of the item table.
        n_factors: length of each factor vector.
        y_range: if given, predictions pass through ``sigmoid_range``.
        init_std: standard deviation of the normal initial factors.
    """

    ROW_TABLES = {"user_factors": ("user", "factors"), "item_factors": ("item", "factors")}
    """Parameters indexed by user or item (trained row-wise; decayed per rating)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 50,
        *,
        y_range: tuple[float, float] | None = None,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, n_factors)
        _check_range(y_range)
        self.y_range = y_range
        self.init_std = init_std
        self.user_factors = nn.Parameter(torch.randn(n_users, n_factors) * init_std)
        self.item_factors = nn.Parameter(torch.randn(n_items, n_factors) * init_std)

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this module's shapes."""
        n_users, n_factors = self.user_factors.shape
        return {
            "n_users": int(n_users), "n_items": int(self.item_factors.shape[0]),
            "n_factors": int(n_factors),
            "y_range": None if self.y_range is None else list(self.y_range),
            "init_std": self.init_std,
        }  # fmt: skip

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predicted ratings, shape ``(batch,)``, for int64 index tensors of that shape."""
        x = row_dot(self.user_factors, self.item_factors, user_idx, item_idx)
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)

    def score_items(self, user_idx: Tensor) -> Tensor:
        """Predicted ratings of every item for each user, shape ``(users, items)``."""
        x = self.user_factors[user_idx] @ self.item_factors.T
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)

    def rank_items(self, user_idx: Tensor) -> Tensor:
        """Scores that order each user's items as :meth:`score_items` does (the sigmoid
        is monotone, so it is left out): one pass over a users x items block."""
        return self.user_factors[user_idx] @ self.item_factors.T


class DotProductBias(BiasTerms, nn.Module):
    """Factors plus biases, squashed into ``y_range`` (fastai's ``EmbeddingDotBias``)::

        x(u, i) = p_u . q_i + b_u + b_i + beta_u * a_u + beta_i * a_i + c
        r(u, i) = low + (high - low) * sigmoid(x(u, i))

    ``a_u`` and ``a_i`` are the standardised ``log(1 + number of training ratings)`` of
    the user and the item, and ``beta_u``, ``beta_i`` two learned scalars. They let the
    biases of rarely rated items and users shrink towards what is typical for their
    activity rather than towards the global mean: rarely rated films are rated lower
    in MovieLens. ``c`` is the logit of the training mean, so training starts there.
    With ``activity_prior=False`` the model is exactly fastai's ``EmbeddingDotBias``.

    Args:
        n_users: rows of the user tables.
        n_items: rows of the item tables.
        n_factors: length of each factor vector.
        y_range: the ``(low, high)`` predictions are squashed into.
        init_std: standard deviation of the normal initial factors (biases start at 0).
        activity_prior: learn ``beta_u``, ``beta_i`` (see above).
    """

    ROW_TABLES = {
        "user_factors": ("user", "factors"),
        "item_factors": ("item", "factors"),
        **BiasTerms.BIAS_TABLES,
    }
    """Parameters indexed by user or item (trained row-wise; decayed per rating)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 64,
        *,
        y_range: tuple[float, float] = (0.5, 5.5),
        init_std: float = 0.01,
        activity_prior: bool = True,
    ) -> None:
        super().__init__()
        _check_sizes(n_users, n_items, n_factors)
        _check_range(y_range)
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.activity_prior = activity_prior
        self.init_std = init_std
        self.user_factors = nn.Parameter(torch.randn(n_users, n_factors) * init_std)
        self.item_factors = nn.Parameter(torch.randn(n_items, n_factors) * init_std)
        self.init_bias_terms(n_users, n_items)

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this module's shapes."""
        return {
            "n_users": int(self.user_factors.shape[0]),
            "n_items": int(self.item_factors.shape[0]),
            "n_factors": self.n_factors, "y_range": list(self.y_range),
            "init_std": self.init_std, "activity_prior": self.activity_prior,
        }  # fmt: skip

    @property
    def n_factors(self) -> int:
        """Length of the factor vectors."""
        return int(self.user_factors.shape[1])

    def logit(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """``x(u, i)`` before the sigmoid, shape ``(batch,)``."""
        x = row_dot(self.user_factors, self.item_factors, user_idx, item_idx)
        return x + self.bias_terms(user_idx, item_idx)

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predicted ratings, shape ``(batch,)``, for int64 index tensors of that shape."""
        return sigmoid_range(self.logit(user_idx, item_idx), *self.y_range)

    def score_items(self, user_idx: Tensor) -> Tensor:
        """Predicted ratings of every item for each user, shape ``(users, items)``:
        one matrix product for the factors, broadcast sums for the bias terms."""
        x = self.user_factors[user_idx] @ self.item_factors.T
        x = x + self.user_effect()[user_idx].unsqueeze(1) + self.item_effect().unsqueeze(0)
        return sigmoid_range(x + self.offset, *self.y_range)

    def rank_items(self, user_idx: Tensor) -> Tensor:
        """Scores that order each user's items as :meth:`score_items` does: the logits
        without what is the same along a row (the user's bias, the offset) and without
        the monotone sigmoid, in one matrix product that adds the item effects."""
        return torch.addmm(self.item_effect(), self.user_factors[user_idx], self.item_factors.T)
