"""Dot-product models: the first two models of the fastai collaborative-filtering lesson.

Both take dense indices and return predicted ratings by the formula of
:mod:`collabfilter.models.dot.formula`; they know nothing about ids, titles or files
(vocabularies live beside the model, in the learner and model files).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from collabfilter.models.dot.fold_in import DotUser, gauss_newton, new_user_decays
from collabfilter.models.dot.formula import TORCH
from collabfilter.models.dot.terms import BiasTerms, check_range
from collabfilter.models.family import FoldContext, FoldedUser, RatingModule
from collabfilter.models.rows import row_dot
from collabfilter.sgd import RowTrained
from collabfilter.sgd.decay import Tables


class DotProductBias(BiasTerms, RatingModule, RowTrained):
    """Factors plus biases, squashed into ``y_range`` (fastai's ``EmbeddingDotBias``)::

        x(u, i) = p_u . q_i + e_u + e_i + c,   e = b + beta * a
        r(u, i) = low + (high - low) * sigmoid(x(u, i))

    ``a_u`` and ``a_i`` are the standardised ``log(1 + number of training ratings)`` of
    the user and the item, and ``beta_u``, ``beta_i`` two learned scalars. They let the
    biases of rarely rated items and users shrink towards what is typical for their
    activity rather than towards the global mean. ``c`` is the logit of the training
    mean, so training starts there. With ``activity_prior=False`` the model is exactly
    fastai's ``EmbeddingDotBias``; with ``biases=False`` it is :class:`DotProduct`.

    Args:
        n_users: rows of the user tables.
        n_items: rows of the item tables.
        n_factors: length of each factor vector.
        y_range: the ``(low, high)`` predictions are squashed into (None: unsquashed).
        init_std: standard deviation of the normal initial factors (biases start at 0).
        activity_prior: learn ``beta_u``, ``beta_i`` (see above).
        biases: learn ``e`` and ``c`` (False: ``x = p_u . q_i``).
    """

    family = "dot"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 64,
        *,
        y_range: tuple[float, float] | None = (0.5, 5.5),
        init_std: float = 0.01,
        activity_prior: bool = True,
        biases: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items), ("n_factors", n_factors)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        self.y_range = check_range(y_range)
        self.biased = biases
        self.activity_prior = activity_prior and biases
        self.init_std = float(init_std)
        self.user_factors = nn.Parameter(torch.randn(n_users, n_factors) * init_std)
        self.item_factors = nn.Parameter(torch.randn(n_items, n_factors) * init_std)
        if biases:
            self.init_bias_terms(n_users, n_items)

    # ------------------------------------------------------------------ model files
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "n_users": int(self.user_factors.shape[0]),
            "n_items": int(self.item_factors.shape[0]),
            "n_factors": self.n_factors,
            "y_range": None if self.y_range is None else list(self.y_range),
            "init_std": self.init_std,
        }
        if self.biased:
            spec["activity_prior"] = self.activity_prior
        elif type(self) is DotProductBias:  # DotProduct says it by its class
            spec["biases"] = False
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> DotProductBias:
        args = dict(spec)
        y_range = args.pop("y_range", None)
        return cls(**args, y_range=None if y_range is None else tuple(y_range))

    # ------------------------------------------------------------------ the formula
    @property
    def n_factors(self) -> int:
        """Length of the factor vectors."""
        return int(self.user_factors.shape[1])

    def row_tables(self) -> Tables:
        tables = {"user_factors": ("user", "factors"), "item_factors": ("item", "factors")}
        return {**tables, **self.BIAS_TABLES} if self.biased else tables

    def logit(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """``x(u, i)`` before the output range, shape ``(batch,)``."""
        x = row_dot(self.user_factors, self.item_factors, user_idx, item_idx)
        if not self.biased:
            return x
        user, item = self.effects_of(user_idx, item_idx)
        logit: Tensor = TORCH.logit(x, user, item, self.offset)
        return logit

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        rating: Tensor = TORCH.rating(self.logit(user_idx, item_idx), *self.low_span)
        return rating

    # ------------------------------------------------------------------ scoring
    def _block_logits(self, user_idx: Tensor) -> Tensor:
        x = self.user_factors[user_idx] @ self.item_factors.T
        if not self.biased:
            return x
        logits: Tensor = TORCH.logit(
            x, self.user_effect()[user_idx].unsqueeze(1), self.item_effect().unsqueeze(0),
            self.offset,
        )  # fmt: skip
        return logits

    def score_items(self, user_idx: Tensor) -> Tensor:
        """Predicted ratings of every item for each user, shape ``(users, items)``:
        one matrix product for the factors, broadcast sums for the bias terms."""
        rating: Tensor = TORCH.rating(self._block_logits(user_idx), *self.low_span)
        return rating

    ranks_item_ranges = True

    def rank_items(self, user_idx: Tensor, items: slice | None = None) -> Tensor:
        """The logits without what is the same along a row (the user's effect, the
        offset) and without the monotone output range: one matrix product that adds
        the item effects."""
        part = slice(None) if items is None else items
        dots = self.user_factors[user_idx] @ self.item_factors[part].T
        if not self.biased:
            return dots
        ranking: Tensor = TORCH.logit(dots, 0.0, self.item_effect()[part].unsqueeze(0), 0.0)
        return ranking

    # ------------------------------------------------------------------ new users
    @torch.no_grad()
    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> DotUser:
        """The user's factors and bias that minimise the training objective restricted
        to them, with the items fixed (:mod:`~collabfilter.models.dot.fold_in`); on the
        CPU in float64, whatever device the model is on.

        Raises:
            CollabFilterError: when the model's sgd training config is unknown.
        """
        n = int(item_idx.numel())
        factor_decay, bias_decay = new_user_decays(context, n)
        index = item_idx.cpu().long()
        design = self.item_factors.detach().cpu()[index].double()
        fixed = torch.zeros(n, dtype=torch.float64)
        activity = 0.0
        decay = [n * factor_decay] * self.n_factors
        if self.biased:
            count = torch.tensor([n], device=self.activity_scale.device)
            activity = float(self.activity_of(count, kind="user")[0].cpu())
            beta_user, _ = self.activity_weights()
            item_effect = self.item_effect().detach().cpu()[index].double()
            user_prior = TORCH.effect(0.0, beta_user, activity)
            fixed = TORCH.logit(0.0, user_prior, item_effect, float(self.offset))
            design = torch.cat([design, torch.ones(n, 1, dtype=torch.float64)], dim=1)
            decay.append(n * bias_decay)
        theta = gauss_newton(
            design, fixed, ratings.cpu().double(), torch.tensor(decay, dtype=torch.float64),
            *self.low_span,
        )  # fmt: skip
        if not self.biased:
            return DotUser(theta.float(), 0.0, activity)
        return DotUser(theta[:-1].float(), float(theta[-1]), activity)

    def _folded_logits(self, user: FoldedUser) -> Tensor:
        if not isinstance(user, DotUser):
            raise TypeError(f"a dot model scores its own folded users, not {type(user).__name__}")
        x = self.item_factors.detach() @ user.factors.to(self.item_factors.device)
        if not self.biased:
            return x
        beta_user, _ = self.activity_weights()
        user_effect = TORCH.effect(user.bias, beta_user, user.activity)
        logits: Tensor = TORCH.logit(x, user_effect, self.item_effect().detach(), self.offset)
        return logits

    def score_folded(self, user: FoldedUser) -> Tensor:
        rating: Tensor = TORCH.rating(self._folded_logits(user), *self.low_span)
        return rating

    # ------------------------------------------------------------------ interpretation
    def item_vectors(self) -> Tensor:
        return self.item_factors.detach()

    def parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """The logit's terms: ``c``, ``e_u``, ``e_i`` and ``p_u . q_i``."""
        factors = float(self.user_factors[user_idx].detach() @ self.item_factors[item_idx].detach())
        return {**self.bias_parts(user_idx, item_idx), "factors": factors}


class DotProduct(DotProductBias):
    """``r(u, i) = p_u . q_i``, optionally squashed into ``y_range`` (the lesson's first
    model; :class:`DotProductBias` without biases).

    Args:
        n_users: rows of the user table.
        n_items: rows of the item table.
        n_factors: length of each factor vector.
        y_range: if given, predictions pass through the sigmoid range.
        init_std: standard deviation of the normal initial factors.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 50,
        *,
        y_range: tuple[float, float] | None = None,
        init_std: float = 0.1,
    ) -> None:
        super().__init__(
            n_users, n_items, n_factors, y_range=y_range, init_std=init_std, biases=False
        )
