"""The terms around the interaction: per-user and per-item biases with an activity
prior, and the output range.

``e_u + e_i + c`` with ``e = b + beta * a`` (:mod:`collabfilter.models.dot.formula`),
where ``a_u``, ``a_i`` are the standardised ``log(1 + training ratings)`` of the user and
the item and ``c`` is the logit of the training mean. The prior lets rarely rated items
and users shrink towards what is typical for their activity instead of towards the
global mean (rarely rated films are rated lower in MovieLens). The nn family adds the
same terms to its network's output, squashed into the same range.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from collabfilter.data import RatingScale
from collabfilter.errors import ModelFileError
from collabfilter.models.dot.formula import TORCH, logit_of
from collabfilter.models.rows import gather_rows


def check_range(y_range: tuple[float, float] | None) -> tuple[float, float] | None:
    """``y_range`` as floats, refusing one whose low end is not below its high end."""
    if y_range is None:
        return None
    low, high = (float(v) for v in y_range)
    if not low < high:
        raise ValueError(f"y_range must be (low, high) with low < high, got {y_range}")
    return low, high


def check_output_range(y_range: tuple[float, float] | None, scale: RatingScale) -> None:
    """Refuse an output range far off the rating scale (a file edited to predict 75
    stars on a 1-5 scale): it may reach past each end by at most half the scale."""
    if y_range is None:
        return
    slack = (scale.high - scale.low) / 2
    low, high = y_range
    if not (scale.low - slack <= low < high <= scale.high + slack):
        raise ModelFileError(
            f"y_range {y_range} does not fit the rating scale {scale} (at most half the "
            "scale beyond each end)"
        )


class BiasTerms:
    """Mixin for a :class:`~collabfilter.models.RatingModule` whose logit adds
    ``e_u + e_i + c`` (when ``biased``) and is squashed into ``y_range``.

    The host sets ``self.y_range`` (None: no range), ``self.biased`` and
    ``self.activity_prior``, and calls :meth:`init_bias_terms` in its ``__init__`` when
    biased.
    """

    BIAS_TABLES = {"user_bias": ("user", "bias"), "item_bias": ("item", "bias")}
    y_range: tuple[float, float] | None
    biased: bool
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
        self.offset.fill_(logit_of(mean_rating, *self.low_span))
        user_log, item_log = torch.log1p(user_counts.float()), torch.log1p(item_counts.float())
        # Standardise over ratings, not rows: that is the distribution training sees.
        user_mean, user_std = _weighted_moments(user_log, user_counts.float())
        item_mean, item_std = _weighted_moments(item_log, item_counts.float())
        self.activity_scale.copy_(torch.tensor([user_mean, user_std, item_mean, item_std]))
        self.user_activity.copy_((user_log - user_mean) / user_std)
        self.item_activity.copy_((item_log - item_mean) / item_std)

    @property
    def low_span(self) -> tuple[float, float]:
        """The output range as ``(low, span)``; ``(0, 0)`` without a range."""
        if self.y_range is None:
            return 0.0, 0.0
        low, high = self.y_range
        return low, high - low

    def check_state(self, scale: RatingScale) -> None:
        """The module's checks, and the output range against the rating scale."""
        super().check_state(scale)  # type: ignore[misc]
        check_output_range(self.y_range, scale)

    def prepare(self, user_counts: Tensor, item_counts: Tensor, mean_rating: float) -> None:
        """Record the bias terms' statistics (:meth:`set_data_statistics`) when biased."""
        if self.biased:
            self.set_data_statistics(user_counts, item_counts, mean_rating)

    def activity_of(self, counts: Tensor, *, kind: str = "user") -> Tensor:
        """Standardised activity of users (or items) with ``counts`` ratings (fold-in)."""
        position = 0 if kind == "user" else 2
        mean, std = self.activity_scale[position], self.activity_scale[position + 1]
        return (torch.log1p(counts.float()) - mean) / std

    def activity_weights(self) -> tuple[float, float]:
        """``(beta_u, beta_i)``: zero without the prior."""
        if not self.activity_prior:
            return 0.0, 0.0
        beta_user, beta_item = self.activity_weight.tolist()
        return float(beta_user), float(beta_item)

    def user_effect(self) -> Tensor:
        """Each user's total bias ``e_u`` (what the lessons call the bias)."""
        if not self.activity_prior:
            return self.user_bias
        effect: Tensor = TORCH.effect(self.user_bias, self.activity_weight[0], self.user_activity)
        return effect

    def item_effect(self) -> Tensor:
        """Each item's total bias ``e_i``."""
        if not self.activity_prior:
            return self.item_bias
        effect: Tensor = TORCH.effect(self.item_bias, self.activity_weight[1], self.item_activity)
        return effect

    def effects(self) -> tuple[Tensor, Tensor] | None:
        """``(e_u, e_i)`` of every user and item; None without biases."""
        if not self.biased:
            return None
        return self.user_effect().detach(), self.item_effect().detach()

    def bias_parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """The bias terms of one pair's logit: ``c``, ``e_u``, ``e_i`` (none without
        biases)."""
        if not self.biased:
            return {}
        return {
            "global": float(self.offset),
            "user bias": float(self.user_effect().detach()[user_idx]),
            "item bias": float(self.item_effect().detach()[item_idx]),
        }

    def effects_of(self, user_idx: Tensor, item_idx: Tensor) -> tuple[Tensor, Tensor]:
        """``(e_u, e_i)`` per pair, shape ``(batch,)`` each, with row-wise bias gradients."""
        user = gather_rows(self.user_bias, user_idx)
        item = gather_rows(self.item_bias, item_idx)
        if self.activity_prior:
            weight = self.activity_weight
            user = TORCH.effect(user, weight[0], self.user_activity[user_idx])
            item = TORCH.effect(item, weight[1], self.item_activity[item_idx])
        return user, item


def _weighted_moments(values: Tensor, weights: Tensor) -> tuple[float, float]:
    total = weights.sum().clamp(min=1.0)
    mean = (values * weights).sum() / total
    variance = ((values - mean) ** 2 * weights).sum() / total
    return float(mean), float(variance.sqrt().clamp(min=1e-6))
