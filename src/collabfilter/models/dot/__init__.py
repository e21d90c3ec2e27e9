"""The dot family: user and item factors, with or without biases, into a sigmoid range
(fastai's ``DotProduct`` and ``EmbeddingDotBias``), trained by per-rating sgd."""

from __future__ import annotations

from collabfilter.data import RatingScale
from collabfilter.models.dot.config import RECIPES, DotConfig
from collabfilter.models.dot.module import DotProduct, DotProductBias
from collabfilter.models.dot.steps import dot_steps
from collabfilter.models.family import Family, default_y_range, sgd_fit
from collabfilter.sgd import TrainConfig


def build(config: DotConfig, n_users: int, n_items: int, scale: RatingScale) -> DotProductBias:
    """The module ``config`` describes, sized for the data."""
    y_range = default_y_range(scale) if config.y_range == "data" else config.y_range
    if not config.biases:
        return DotProduct(
            n_users, n_items, config.n_factors, y_range=y_range, init_std=config.init_std
        )
    return DotProductBias(
        n_users, n_items, config.n_factors, y_range=y_range, init_std=config.init_std,
        activity_prior=config.activity_prior,
    )  # fmt: skip


FAMILY = Family(
    name="dot",
    model_config=DotConfig,
    fit_config=TrainConfig,
    modules=(DotProduct, DotProductBias),
    recipes=RECIPES,
    build=build,
    fit=sgd_fit(dot_steps),
    steps=dot_steps,
)

__all__ = ["FAMILY", "DotConfig", "DotProduct", "DotProductBias"]
