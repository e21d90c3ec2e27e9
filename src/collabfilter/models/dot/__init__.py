"""The dot family: user and item factors, with or without biases, into a sigmoid range
(fastai's ``DotProduct`` and ``EmbeddingDotBias``), trained by per-rating sgd."""

from __future__ import annotations

from collabfilter.data import RatingScale
from collabfilter.models.dot.config import RECIPES, DotConfig
from collabfilter.models.dot.module import DotProduct, DotProductBias
from collabfilter.models.dot.steps import dot_steps
from collabfilter.models.family import sgd_family, y_range_for


def build(config: DotConfig, n_users: int, n_items: int, scale: RatingScale) -> DotProductBias:
    """The module ``config`` describes, sized for the data."""
    y_range = y_range_for(config.y_range, scale)
    if not config.biases:
        return DotProduct(
            n_users, n_items, config.n_factors, y_range=y_range, init_std=config.init_std
        )
    return DotProductBias(
        n_users, n_items, config.n_factors, y_range=y_range, init_std=config.init_std,
        activity_prior=config.activity_prior,
    )  # fmt: skip


FAMILY = sgd_family("dot", DotConfig, (DotProduct, DotProductBias), RECIPES, build, dot_steps)

__all__ = ["FAMILY", "DotConfig", "DotProduct", "DotProductBias"]
