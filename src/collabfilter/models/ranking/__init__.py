"""The ranking family: top-N models trained on who rated what (EASE, implicit ALS,
item-kNN), one of them chosen with its settings on a part carved out of the training
ratings."""

from __future__ import annotations

import dataclasses
import time

import torch

from collabfilter.config import FitConfig
from collabfilter.data import Ratings, RatingScale
from collabfilter.metrics import evaluate_top_n, relevant_items, seen_items
from collabfilter.models.family import Family, FamilyModule, FitJob, FitOutcome
from collabfilter.models.ranking.base import InteractionWeights, RatedItems, TopNModel
from collabfilter.models.ranking.choose import TopNReport, fit_model, fit_topn
from collabfilter.models.ranking.config import RECIPES, RankingConfig, TopNConfig
from collabfilter.models.ranking.ease import EASE, fit_ease
from collabfilter.models.ranking.ials import ImplicitALS, fit_ials
from collabfilter.models.ranking.knn import ItemKNN, fit_item_knn
from collabfilter.models.ranking.placement import feature_placement
from collabfilter.models.ranking.unfitted import Unfitted
from collabfilter.progress import EpochRecord

TOPN_MODELS: dict[str, type[TopNModel]] = {"ease": EASE, "ials": ImplicitALS, "item_knn": ItemKNN}
"""Top-N module classes by ``kind`` (the ``"kind"`` of their ``settings()``)."""


def build(config: RankingConfig, n_users: int, n_items: int, scale: RatingScale) -> Unfitted:
    """A stand-in: which model, and its sizes, are chosen when fitting."""
    return Unfitted()


def fit(module: FamilyModule, job: FitJob, config: FitConfig) -> FitOutcome:
    """Choose a ranking model on ratings carved out of the training part and fit it;
    the report says what was chosen and why."""
    if not isinstance(config, TopNConfig):
        raise TypeError(
            f"the ranking family is fitted by a TopNConfig, not {type(config).__name__}"
        )
    start = time.perf_counter()
    config = dataclasses.replace(config, seed=job.options.seed)  # the run's seed rules
    chosen, report = fit_topn(job.train, config)
    place_new_items(chosen, job.train)
    record = EpochRecord(job.first_epoch, None, None, None, time.perf_counter() - start)
    if job.on_epoch is not None:
        job.on_epoch(record)
    metrics = validation_metrics(chosen, job, config.relevance)
    return FitOutcome(chosen, [record], config=config, report=report, metrics=metrics)


def place_new_items(model: TopNModel, train: Ratings) -> None:
    """Place the items of ``train`` with features and no rating from their features
    (:mod:`~collabfilter.models.ranking.placement`); nothing without item features."""
    rated = torch.from_numpy(train.item_counts() > 0)
    if train.item_features is None or bool(rated.all()):
        return
    features = train.feature_rows("item")
    assert features is not None
    model.place_items(feature_placement(features, rated))


def validation_metrics(model: TopNModel, job: FitJob, relevance: float | None) -> dict[str, float]:
    """NDCG@10 and recall@20 on the validation ratings (hits: rated >= relevance, or
    every validation rating for None)."""
    valid = job.valid
    if valid is None or len(valid) == 0:
        return {}
    rows = evaluate_top_n(
        lambda block: model.score_items(torch.from_numpy(block)),
        seen_items(job.train),
        relevant_items(valid, relevance),
    )
    at = {int(row["k"]): row for row in rows}
    return {"valid_ndcg@10": at[10]["ndcg"], "valid_recall@20": at[20]["recall"]}


FAMILY = Family(
    name="ranking",
    model_config=RankingConfig,
    fit_config=TopNConfig,
    modules=(EASE, ImplicitALS, ItemKNN),
    recipes=RECIPES,
    build=build,
    fit=fit,
    uses_features=True,
    feature_sides=("item",),
)

__all__ = [
    "EASE",
    "FAMILY",
    "TOPN_MODELS",
    "ImplicitALS",
    "InteractionWeights",
    "ItemKNN",
    "RankingConfig",
    "RatedItems",
    "TopNConfig",
    "TopNModel",
    "TopNReport",
    "Unfitted",
    "fit_ease",
    "fit_ials",
    "fit_item_knn",
    "fit_model",
    "fit_topn",
]
