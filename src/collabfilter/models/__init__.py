"""PyTorch models: indices in, predicted ratings (or top-N scores) out. They never see
ids or files."""

from __future__ import annotations

from typing import Any

from torch import nn

from collabfilter.config import BayesConfig, ModelConfig
from collabfilter.models.bayes import BayesianMF
from collabfilter.models.dot import DotProduct, DotProductBias
from collabfilter.models.ease import EASE, fit_ease
from collabfilter.models.ials import ImplicitALS, fit_ials
from collabfilter.models.interactions import InteractionWeights, TopNModel
from collabfilter.models.knn import ItemKNN, fit_item_knn
from collabfilter.models.nn import EmbeddingNN, embedding_size
from collabfilter.models.unfitted import Unfitted

TOPN_MODELS: dict[str, type[TopNModel]] = {"ease": EASE, "ials": ImplicitALS, "item_knn": ItemKNN}
"""Top-N module classes by ``kind`` (the ``"kind"`` of their ``settings()``)."""


def build_topn(settings: dict[str, Any], sizes: dict[str, int]) -> TopNModel:
    """An empty top-N module from its ``settings()`` and ``sizes()``, ready for
    ``load_state_dict(weights, strict=True)`` (how a model file is read back).

    Raises:
        ValueError: for an unknown ``kind``.
    """
    kind = settings.get("kind")
    if kind not in TOPN_MODELS:
        raise ValueError(f"unknown top-N model kind {kind!r}; known: {sorted(TOPN_MODELS)}")
    return TOPN_MODELS[kind].from_settings(settings, sizes)


def build_model(
    config: ModelConfig, n_users: int, n_items: int, y_range: tuple[float, float]
) -> nn.Module:
    """The model ``config`` describes, sized for the data.

    ``y_range`` is used when ``config.y_range`` is None (derived from the data's scale).
    """
    bounds = config.y_range or y_range
    if config.kind == "topn":  # which model, and its sizes, are chosen when fitting
        return Unfitted()
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
    "EASE",
    "TOPN_MODELS",
    "BayesianMF",
    "DotProduct",
    "DotProductBias",
    "EmbeddingNN",
    "ImplicitALS",
    "InteractionWeights",
    "ItemKNN",
    "TopNModel",
    "Unfitted",
    "build_model",
    "build_topn",
    "embedding_size",
    "fit_ease",
    "fit_ials",
    "fit_item_knn",
]
