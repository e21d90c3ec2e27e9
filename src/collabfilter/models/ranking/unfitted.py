"""The stand-in for a ranking model whose kind and shape are chosen when it is fitted."""

from __future__ import annotations

from typing import Any, NoReturn

from torch import Tensor

from collabfilter.data import RatingScale
from collabfilter.errors import NotFittedError
from collabfilter.models.family import FamilyModule, FoldContext, FoldedUser, RankingModule


def _unfitted() -> NoReturn:
    raise NotFittedError("this model is chosen and fitted by fit_recipe(); call it first")


class Unfitted(RankingModule):
    """Holds the place of a ``topn`` model until ``fit_recipe`` chooses and fits one;
    every call but fitting raises :class:`~collabfilter.errors.NotFittedError`."""

    family = "ranking"

    def spec(self) -> dict[str, Any]:
        _unfitted()

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> FamilyModule:
        _unfitted()

    def score_items(self, user_idx: Tensor) -> Tensor:
        _unfitted()

    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> FoldedUser:
        _unfitted()

    def score_folded(self, user: FoldedUser) -> Tensor:
        _unfitted()

    def item_vectors(self) -> Tensor:
        _unfitted()

    def reasons(
        self, rated_idx: Tensor, ratings: Tensor, item_idx: Tensor, scale: RatingScale
    ) -> Tensor:
        _unfitted()
