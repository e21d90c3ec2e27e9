"""The nn family: concatenated user and item embeddings through an MLP, with the dot
family's bias terms and output range (fastai's ``use_nn=True``), trained by sgd."""

from __future__ import annotations

from collabfilter.data import RatingScale
from collabfilter.models.family import Family, default_y_range, sgd_fit
from collabfilter.models.nn.config import RECIPES, NNConfig
from collabfilter.models.nn.module import EmbeddingNN, embedding_size
from collabfilter.sgd import TrainConfig, autograd_steps


def build(config: NNConfig, n_users: int, n_items: int, scale: RatingScale) -> EmbeddingNN:
    """The module ``config`` describes, sized for the data."""
    y_range = default_y_range(scale) if config.y_range == "data" else config.y_range
    return EmbeddingNN(
        n_users, n_items, user_size=config.user_size, item_size=config.item_size,
        layers=config.layers, dropout=config.dropout, embedding_dropout=config.embedding_dropout,
        batch_norm=config.batch_norm, y_range=y_range, init_std=config.init_std,
        biases=config.biases, activity_prior=config.activity_prior,
    )  # fmt: skip


FAMILY = Family(
    name="nn",
    model_config=NNConfig,
    fit_config=TrainConfig,
    modules=(EmbeddingNN,),
    recipes=RECIPES,
    build=build,
    fit=sgd_fit(autograd_steps),
    steps=autograd_steps,
)

__all__ = ["FAMILY", "EmbeddingNN", "NNConfig", "embedding_size"]
