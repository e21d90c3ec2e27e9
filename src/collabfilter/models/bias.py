"""Bias terms shared by the models: per-user and per-item offsets with an activity prior.

``b_u + b_i + beta_u * a_u + beta_i * a_i + c``, where ``a_u``, ``a_i`` are the
standardised ``log(1 + training ratings)`` of the user and the item and ``c`` is the
logit of the training mean. The prior lets rarely rated items and users shrink towards
what is typical for their activity instead of towards the global mean (rarely rated
films are rated lower in MovieLens): on validation data carved from the training
files it lowers RMSE by about 0.001 (``benchmarks/tune_recipe.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from collabfilter.models.ops import gather_rows


class BiasTerms:
    """Mixin for an ``nn.Module`` predicting ``sigmoid_range(... + bias_terms)``.

    The host sets ``self.y_range`` and ``self.activity_prior`` and calls
    :meth:`init_bias_terms` in its ``__init__``.
    """

    BIAS_TABLES = {"user_bias": ("user", "bias"), "item_bias": ("item", "bias")}
    y_range: tuple[float, float]
    activity_prior: bool
    user_bias: nn.Parameter
    item_bias: nn.Parameter
    activity_weight: nn.Parameter
    offset: Tensor
    user_activity: Tensor
    item_activity: Tensor
    activity_scale: Tensor

    def init_bias_terms(self, n_users: int, n_items: int) -> None:
        """Create the bias parameters (zero) and the statistics buffers."""
        module: nn.Module = self  # type: ignore[assignment]
        module.user_bias = nn.Parameter(torch.zeros(n_users))
        module.item_bias = nn.Parameter(torch.zeros(n_items))
        module.activity_weight = nn.Parameter(torch.zeros(2))  # (beta_u, beta_i)
        module.register_buffer("offset", torch.zeros(()))
        module.register_buffer("user_activity", torch.zeros(n_users))
        module.register_buffer("item_activity", torch.zeros(n_items))
        module.register_buffer("activity_scale", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def set_data_statistics(
        self, user_counts: Tensor, item_counts: Tensor, mean_rating: float
    ) -> None:
        """Record what the prior uses from the training data (call before training).

        Args:
            user_counts: training ratings per user index.
            item_counts: training ratings per item index.
            mean_rating: mean training rating; the starting prediction.
        """
        low, high = self.y_range
        share = min(max((mean_rating - low) / (high - low), 1e-3), 1 - 1e-3)
        self.offset.fill_(math.log(share / (1 - share)))
        user_log, item_log = torch.log1p(user_counts.float()), torch.log1p(item_counts.float())
        # Standardise over ratings, not rows: that is the distribution training sees.
        user_mean, user_std = _weighted_moments(user_log, user_counts.float())
        item_mean, item_std = _weighted_moments(item_log, item_counts.float())
        self.activity_scale.copy_(torch.tensor([user_mean, user_std, item_mean, item_std]))
        self.user_activity.copy_((user_log - user_mean) / user_std)
        self.item_activity.copy_((item_log - item_mean) / item_std)

    def activity_of(self, counts: Tensor, *, kind: str = "user") -> Tensor:
        """Standardised activity of users (or items) with ``counts`` ratings (fold-in)."""
        position = 0 if kind == "user" else 2
        mean, std = self.activity_scale[position], self.activity_scale[position + 1]
        return (torch.log1p(counts.float()) - mean) / std

    def user_effect(self) -> Tensor:
        """Each user's total bias ``b_u + beta_u * a_u`` (what the lessons call the bias)."""
        effect: Tensor = self.user_bias
        if self.activity_prior:
            effect = effect + self.activity_weight[0] * self.user_activity
        return effect

    def item_effect(self) -> Tensor:
        """Each item's total bias ``b_i + beta_i * a_i``."""
        effect: Tensor = self.item_bias
        if self.activity_prior:
            effect = effect + self.activity_weight[1] * self.item_activity
        return effect

    def bias_terms(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """``b_u + b_i (+ activity prior) + c`` per pair, shape ``(batch,)``."""
        x = gather_rows(self.user_bias, user_idx) + gather_rows(self.item_bias, item_idx)
        if self.activity_prior:
            x = x + self.activity_weight[0] * self.user_activity[user_idx]
            x = x + self.activity_weight[1] * self.item_activity[item_idx]
        return x + self.offset


def _weighted_moments(values: Tensor, weights: Tensor) -> tuple[float, float]:
    total = weights.sum().clamp(min=1.0)
    mean = (values * weights).sum() / total
    variance = ((values - mean) ** 2 * weights).sum() / total
    return float(mean), float(variance.sqrt().clamp(min=1e-6))
