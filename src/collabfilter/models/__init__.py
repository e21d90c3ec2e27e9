"""Model families: indices in, predicted ratings (or top-N scores) out. They never see
ids or files.

Each family is a package (its module, formula, fit and configs) answering the contract
of :mod:`collabfilter.models.family`; :data:`FAMILIES` is the registry every other part
of collabfilter looks them up in. Adding a family is one package and one line here.
"""

from __future__ import annotations

from collabfilter.config import FitConfig, ModelConfig
from collabfilter.data import RatingScale
from collabfilter.errors import ConfigError
from collabfilter.models import bayes, dot, nn, ranking
from collabfilter.models.bayes import BayesConfig, BayesianMF, BayesMFConfig
from collabfilter.models.dot import DotConfig, DotProduct, DotProductBias
from collabfilter.models.family import (
    Family,
    FamilyModule,
    FoldContext,
    FoldedUser,
    RankingModule,
    RatingModule,
    default_y_range,
)
from collabfilter.models.nn import EmbeddingNN, NNConfig, embedding_size
from collabfilter.models.ranking import (
    EASE,
    TOPN_MODELS,
    ImplicitALS,
    InteractionWeights,
    ItemKNN,
    RankingConfig,
    TopNConfig,
    TopNModel,
    TopNReport,
    Unfitted,
    fit_ease,
    fit_ials,
    fit_item_knn,
)
from collabfilter.sgd import TrainConfig

FAMILIES: tuple[Family, ...] = (dot.FAMILY, nn.FAMILY, bayes.FAMILY, ranking.FAMILY)
"""Every model family, in the order recipes are listed."""

RECIPES: dict[str, tuple[ModelConfig, FitConfig]] = {
    name: recipe for family in FAMILIES for name, recipe in family.recipes.items()
}
"""Model and fit configs by recipe name (each family documents its own)."""

MODULES: dict[str, type[FamilyModule]] = {
    cls.__name__: cls for family in FAMILIES for cls in family.modules
}
"""The only classes a model file can name."""


def family_of(model: ModelConfig | FamilyModule | str) -> Family:
    """The family of a model config, a module, or a model kind.

    Raises:
        ConfigError: for something no registered family describes.
    """
    for family in FAMILIES:
        if isinstance(model, str):
            if model in family.kinds:
                return family
        elif isinstance(model, ModelConfig):
            if isinstance(model, family.model_config):
                return family
        elif model.family == family.name:
            return family
    kinds = [kind for family in FAMILIES for kind in family.kinds]
    raise ConfigError(f"no model family for {model!r}; known kinds: {kinds}")


def build_model(
    config: ModelConfig, n_users: int, n_items: int, scale: RatingScale
) -> FamilyModule:
    """The untrained module ``config`` describes, sized for the data."""
    return family_of(config).build(config, n_users, n_items, scale)


__all__ = [
    "EASE",
    "FAMILIES",
    "MODULES",
    "RECIPES",
    "TOPN_MODELS",
    "BayesConfig",
    "BayesMFConfig",
    "BayesianMF",
    "DotConfig",
    "DotProduct",
    "DotProductBias",
    "EmbeddingNN",
    "Family",
    "FamilyModule",
    "FoldContext",
    "FoldedUser",
    "ImplicitALS",
    "InteractionWeights",
    "ItemKNN",
    "NNConfig",
    "RankingConfig",
    "RankingModule",
    "RatingModule",
    "TopNConfig",
    "TopNModel",
    "TopNReport",
    "TrainConfig",
    "Unfitted",
    "build_model",
    "default_y_range",
    "embedding_size",
    "family_of",
    "fit_ease",
    "fit_ials",
    "fit_item_knn",
]
