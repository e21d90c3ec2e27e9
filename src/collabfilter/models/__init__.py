"""PyTorch models: indices in, predicted ratings out. They never see ids or files."""

from __future__ import annotations

from torch import nn

from collabfilter.config import BayesConfig, ModelConfig
from collabfilter.models.bayes import BayesianMF
from collabfilter.models.dot import DotProduct, DotProductBias
from collabfilter.models.nn import EmbeddingNN, embedding_size


def build_model(
    config: ModelConfig, n_users: int, n_items: int, y_range: tuple[float, float]
) -> nn.Module:
    """The model ``config`` describes, sized for the data.

    ``y_range`` is used when ``config.y_range`` is None (derived from the data's scale).
    """
    bounds = config.y_range or y_range
    if config.kind == "bayes":  # sized by its sampler; empty until the chain has run
        return BayesianMF(n_users, n_items, 1, BayesConfig(n_factors=config.n_factors))
    if config.kind == "dot":
        return DotProduct(
            n_users, n_items, config.n_factors, y_range=config.y_range, init_std=config.init_std
        )
    if config.kind == "dot_bias":
        return DotProductBias(
            n_users,
            n_items,
            config.n_factors,
            y_range=bounds,
            init_std=config.init_std,
            activity_prior=config.activity_prior,
        )
    return EmbeddingNN(
        n_users,
        n_items,
        user_size=config.user_size,
        item_size=config.item_size,
        layers=config.layers,
        dropout=config.dropout,
        embedding_dropout=config.embedding_dropout,
        batch_norm=config.batch_norm,
        y_range=bounds,
        init_std=config.init_std,
        biases=config.biases,
        activity_prior=config.activity_prior,
    )


__all__ = [
    "BayesianMF",
    "DotProduct",
    "DotProductBias",
    "EmbeddingNN",
    "build_model",
    "embedding_size",
]
