"""The stand-in for a model whose family and shape are only chosen when it is fitted."""

from __future__ import annotations

from torch import Tensor, nn

from collabfilter.errors import NotFittedError


class Unfitted(nn.Module):
    """Holds the place of a ``topn`` model until ``fit_recipe`` chooses and fits one."""

    PREDICTS_RATINGS = False

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        raise NotFittedError("this model is chosen and fitted by fit_recipe(); call it first")

    def score_items(self, user_idx: Tensor) -> Tensor:
        raise NotFittedError("this model is chosen and fitted by fit_recipe(); call it first")
