"""The nn family: concatenated user and item embeddings through an MLP, with the dot
family's bias terms and output range (fastai's ``use_nn=True``), trained by sgd."""

from __future__ import annotations

from collabfilter.data import RatingScale
from collabfilter.models.family import sgd_family, y_range_for
from collabfilter.models.nn.config import RECIPES, NNConfig
from collabfilter.models.nn.module import EmbeddingNN, embedding_size
from collabfilter.sgd import autograd_steps


def build(config: NNConfig, n_users: int, n_items: int, scale: RatingScale) -> EmbeddingNN:
    """The module ``config`` describes, sized for the data."""
    return EmbeddingNN(
        n_users, n_items, user_size=config.user_size, item_size=config.item_size,
        layers=config.layers, dropout=config.dropout, embedding_dropout=config.embedding_dropout,
        batch_norm=config.batch_norm, y_range=y_range_for(config.y_range, scale),
        init_std=config.init_std, biases=config.biases, activity_prior=config.activity_prior,
    )  # fmt: skip


FAMILY = sgd_family(
    "nn", NNConfig, (EmbeddingNN,), RECIPES, build, autograd_steps, uses_features=True
)

__all__ = ["FAMILY", "EmbeddingNN", "NNConfig", "embedding_size"]
