"""What a model family provides, declared once.

A family is a package under :mod:`collabfilter.models` (its module, its formula, the way
it is fitted, its configs) and one line of :data:`collabfilter.models.FAMILIES`.
Everything above the models (the learner, model files, predictions, lists, explanations,
interpretation, the CLI and the service) reaches a model only through the calls
declared here: nothing asks a module's type or probes it for optional methods.

Two kinds of module exist: a :class:`RatingModule` predicts ratings (its scores are
ratings on the data's scale), a :class:`RankingModule` only orders items for a user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from collabfilter.config import FitConfig, ModelConfig, RunOptions
from collabfilter.data import Ratings, RatingScale
from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import CollabFilterError, ModelFileError
from collabfilter.progress import EpochRecord
from collabfilter.sgd import RowTrained, StepsFactory, TrainConfig, fit_sgd
from collabfilter.sgd.loop import Validate


@dataclass(frozen=True)
class FoldedUser:
    """A user placed from their ratings with the items fixed (fold-in); each family
    subclasses it with what it needs to score them."""


@dataclass(frozen=True)
class FoldContext:
    """What a fitted model kept of its training that placing a new user may need.

    Attributes:
        user_counts: training ratings per user (int64): a folded-in user is regularised
            as a trained user with as many ratings.
        fit_config: how the model was trained (None when unknown).
        scale: the ratings' scale.
        user_features: the new user's encoded side features (a row as the model's
            training encoded them), or None; only families that read features are
            given one.
    """

    user_counts: Tensor
    fit_config: FitConfig | None
    scale: RatingScale
    user_features: Tensor | None = None


def liked(ratings: Tensor, scale: RatingScale) -> Tensor:
    """Which of a user's ratings say they liked the item: at least their own mean and
    the middle of the scale (the items a reason may name)."""
    if ratings.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    threshold = max(float(ratings.double().mean()), (scale.low + scale.high) / 2)
    return ratings.double() >= threshold - 1e-9


class FamilyModule(nn.Module, ABC):
    """Base of every family's module: indices in, scores out (never ids or files)."""

    family: ClassVar[str]
    """The name of the family the module belongs to (its registry entry)."""
    predicts_ratings: ClassVar[bool]
    """Whether scores are ratings on the data's scale (else they only order items)."""
    reason_kind: ClassVar[str] = "similarity"
    """What :meth:`reasons` measures: ``"similarity"`` or ``"contribution"``."""
    scores_unrated: ClassVar[bool] = False
    """Whether the module scores every id without training ratings from what it learned
    of the others (bayes: pooled rows and features). Elsewhere such a row is only its
    initial weights, unless :meth:`placed_unrated` says otherwise: the library predicts
    its pairs by the bias baseline and never lists it
    (:meth:`~collabfilter.fitted.FittedModel.unlearned_items`)."""

    def placed_unrated(self, side: str) -> Tensor | None:
        """Which ids of ``side`` (``"user"`` or ``"item"``) without training ratings the
        module still places from what it learned, as a boolean mask over its rows (a
        ranking model: new items placed from their features); None: none of them (all
        of them when :attr:`scores_unrated`)."""
        return None

    # ------------------------------------------------------------------ model files
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this module's shapes."""

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: dict[str, Any]) -> FamilyModule:
        """The empty module :meth:`spec` describes, ready for ``load_state_dict``.

        Raises:
            KeyError, TypeError, ValueError: for a spec that does not describe one.
        """

    def check_state(self, scale: RatingScale) -> None:
        """Check loaded weights for sense beyond their shapes (a model file's checksums
        prove integrity, not sense): every floating tensor finite. Families add their
        own rules (ranges against the scale, index ranges).

        Raises:
            ModelFileError: naming the tensor and what is wrong with it.
        """
        for name, value in self.state_dict().items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ModelFileError(f"tensor {name!r} holds values that are not finite")

    def check_training(self, item_counts: np.ndarray) -> None:
        """Check loaded weights against the training ratings the file holds (``item_counts``
        per item); nothing by default.

        Raises:
            ModelFileError: naming what does not match.
        """

    # ------------------------------------------------------------------ training
    def prepare(self, user_counts: Tensor, item_counts: Tensor, mean_rating: float) -> None:
        """Record what the module takes from the training ratings before it is fitted
        (counts per row, the mean rating); nothing by default."""

    # ------------------------------------------------------------------ scoring
    @abstractmethod
    def score_items(self, user_idx: Tensor) -> Tensor:
        """Scores of every item for known users, ``(len(user_idx), items)``: predicted
        ratings for a rating module, higher-is-better scores for a ranking module."""

    ranks_item_ranges: ClassVar[bool] = False
    """Whether :meth:`rank_items` computes only the items asked for (a family whose
    scores are products of user and item vectors): top-N lists for many users then
    score a range of items at a time, whose scores stay in cache."""

    def rank_items(self, user_idx: Tensor, items: slice | None = None) -> Tensor:
        """Scores that order each user's items as :meth:`score_items` does, at less cost
        where a family can leave out what is monotone or constant along a row;
        ``(users, items)``, or the columns of a range of items."""
        scores = self.score_items(user_idx)
        return scores if items is None else scores[:, items]

    @abstractmethod
    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> FoldedUser:
        """Place a user who rated ``item_idx`` (int64, ``(n,)``) with ``ratings``
        (float64, same shape) without retraining."""

    @abstractmethod
    def score_folded(self, user: FoldedUser) -> Tensor:
        """:meth:`score_items` for a folded-in user, ``(items,)``."""

    # ------------------------------------------------------------------ interpretation
    @abstractmethod
    def item_vectors(self) -> Tensor:
        """What the model learned of each item as a vector, ``(items, d)``: for PCA and
        similar items."""

    def similar_items(self, item_idx: int) -> Tensor:
        """Similarity of every item to one, ``(items,)``: the cosine of item vectors."""
        vectors = self.item_vectors().detach().float()
        norms = vectors.norm(dim=1).clamp(min=1e-12)
        similarity: Tensor = (vectors @ vectors[item_idx]) / (norms * norms[item_idx])
        return similarity

    def effects(self) -> tuple[Tensor, Tensor] | None:
        """Each user's and each item's learned bias, or None for families without."""
        return None

    def parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """The named terms that add up to a known user's score of an item before any
        output function (empty for families whose score has no such terms)."""
        return {}

    def reasons(
        self, rated_idx: Tensor, ratings: Tensor, item_idx: Tensor, scale: RatingScale
    ) -> Tensor:
        """How much each rated item speaks for each item, ``(len(rated), len(items))``;
        the reason shown for an item ("because you rated X") is the rated item with the
        largest value, and ``-inf`` marks one that cannot be the reason. The indices are
        on the module's device, the ratings on the CPU.

        The rule of every factor family: among the items the user liked (:func:`liked`),
        the one whose item vector is most like the item's (cosine)."""
        vectors = self.item_vectors().detach().float()
        unit = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
        similarity = unit[rated_idx] @ unit[item_idx].T
        mask = liked(ratings, scale).to(similarity.device)
        strength: Tensor = similarity.masked_fill(~mask.unsqueeze(1), -torch.inf)
        return strength


class RatingModule(FamilyModule):
    """A module whose scores are predicted ratings."""

    predicts_ratings: ClassVar[bool] = True
    has_uncertainty: ClassVar[bool] = False
    """Whether predictions come with their spread (:meth:`predict_with_uncertainty`)."""

    @abstractmethod
    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predicted ratings of pairs, ``(batch,)``, for int64 index tensors of that shape."""

    def predict_folded(self, user: FoldedUser, item_idx: Tensor) -> Tensor:
        """Predicted ratings of some items for a folded-in user."""
        return self.score_folded(user)[item_idx]

    def predict_with_uncertainty(
        self, user_idx: Tensor, item_idx: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean, std of the mean, predictive std)`` per pair (families with samples)."""
        raise CollabFilterError(
            f"{type(self).__name__} gives point predictions; the bayes model gives each "
            "prediction its uncertainty"
        )


class RankingModule(FamilyModule):
    """A module whose scores only order items for a user (top-N lists)."""

    predicts_ratings: ClassVar[bool] = False


# ----------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class FitJob:
    """What a family's fit receives from the learner.

    Attributes:
        train: the training ratings.
        tensors: the same ratings as tensors on the training device.
        valid: validation ratings as tensors, in the training vocabularies, or None.
        options: seed, progress, device and step form.
        first_epoch: the number of this fit's first row in the epoch table.
        on_epoch: called with each row of the table as training goes.
        validate: the validation ``(loss, rmse)`` of the module as it stands.
        validate_at: validate only after these epochs of this fit (None: every one).
    """

    train: Ratings
    tensors: RatingTensors
    valid: RatingTensors | None
    options: RunOptions
    first_epoch: int
    on_epoch: Callable[[EpochRecord], None] | None
    validate: Validate
    validate_at: frozenset[int] | None = None


@dataclass(frozen=True)
class FitOutcome:
    """What a family's fit produced.

    Attributes:
        module: the fitted module (the one given, or a new one for families that
            choose their model or its size while fitting).
        records: the rows of the epoch table.
        config: the fit config as it ran (None: as given).
        report: what the fit chose and why, printable (None: nothing to report).
        best_epoch: the epoch with the lowest monitored loss.
        kept_best: whether that epoch's weights were restored (``keep_best``).
        metrics: final figures beyond the validation RMSE (a ranking model's NDCG).
    """

    module: FamilyModule
    records: list[EpochRecord]
    config: FitConfig | None = None
    report: object | None = None
    best_epoch: int | None = None
    kept_best: bool = False
    metrics: Mapping[str, float] = field(default_factory=dict)


FitHook = Callable[[FamilyModule, FitJob, FitConfig], FitOutcome]
"""``fit(module, job, fit_config)``: how a family trains its module."""
Build = Callable[[Any, int, int, RatingScale], FamilyModule]
"""``build(model_config, n_users, n_items, scale)``: an untrained module for the data."""


@dataclass(frozen=True)
class Family:
    """A model family's entry in the registry.

    Attributes:
        name: the family's name (its package's).
        model_config: its model config class (``kind`` values name the family).
        fit_config: its fit config class.
        modules: the module classes its model files may name.
        recipes: named ``(model config, fit config)`` pairs.
        build: makes an untrained module for the data.
        fit: trains it.
        steps: for families trained by sgd, their steps factory (``fit_one_cycle`` and
            ``lr_find`` drive it); None for families fitted otherwise.
        uses_features: whether its fit reads the side features the training ratings
            carry (:attr:`~collabfilter.data.Ratings.user_features`).
        feature_sides: the sides whose features it reads (``"user"``, ``"item"``).
    """

    name: str
    model_config: type[ModelConfig]
    fit_config: type[FitConfig]
    modules: tuple[type[FamilyModule], ...]
    recipes: Mapping[str, tuple[ModelConfig, FitConfig]]
    build: Build
    fit: FitHook
    steps: StepsFactory | None = field(default=None)
    uses_features: bool = False
    feature_sides: tuple[str, ...] = ("user", "item")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The model kinds this family builds."""
        return self.model_config.KINDS


def default_y_range(scale: RatingScale) -> tuple[float, float]:
    """Half a rating step beyond each end of the scale: (0.5, 5.5) for 1-5 stars (the
    sigmoid reaches its ends only at infinite logits)."""
    step = scale.step or (scale.high - scale.low) / 8
    return (scale.low - step / 2, scale.high + step / 2)


def y_range_for(y_range: Any, scale: RatingScale) -> Any:
    """A model config's ``y_range`` for data on ``scale``: ``"data"`` is
    :func:`default_y_range`, anything else stays as the config says."""
    return default_y_range(scale) if y_range == "data" else y_range


def sgd_family(
    name: str,
    model_config: type[ModelConfig],
    modules: tuple[type[FamilyModule], ...],
    recipes: Mapping[str, tuple[ModelConfig, FitConfig]],
    build: Build,
    steps: StepsFactory,
    *,
    uses_features: bool = False,
) -> Family:
    """The entry of a family trained by sgd epochs (a :class:`TrainConfig`) with
    ``steps``."""
    return Family(
        name=name, model_config=model_config, fit_config=TrainConfig, modules=modules,
        recipes=recipes, build=build, fit=sgd_fit(steps), steps=steps,
        uses_features=uses_features,
    )  # fmt: skip


def sgd_fit(steps: StepsFactory) -> FitHook:
    """The fit of a family trained by sgd epochs with the given steps."""

    def fit(module: FamilyModule, job: FitJob, config: FitConfig) -> FitOutcome:
        if not isinstance(module, RowTrained) or not isinstance(config, TrainConfig):
            raise TypeError(
                f"sgd trains modules with row tables by a TrainConfig, not "
                f"{type(module).__name__} by {type(config).__name__}"
            )
        result = fit_sgd(
            module, job.train, job.tensors, config, job.options, steps=steps,
            validate=job.validate, first_epoch=job.first_epoch, on_record=job.on_epoch,
            validate_at=job.validate_at,
        )  # fmt: skip
        return FitOutcome(
            module, result.records, best_epoch=result.best_epoch, kept_best=result.restored
        )

    return fit
