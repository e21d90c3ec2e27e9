"""A trained model with everything needed to use it, however it was obtained.

A :class:`FittedModel` is what training produces and what a model file holds: the
``nn.Module``, the vocabularies that map raw ids to its rows, the training ratings in
compact form (:class:`~collabfilter.data.interactions.Interactions`), the configs and
the epoch history. Prediction, recommendation and interpretation take one of these,
so a learner fresh from training and a model loaded from disk answer the same calls.

Every entry point that receives pairs maps them **by raw id** through the model's
vocabularies, whatever table they come from: a ``Ratings`` with its own vocabulary, a
DataFrame, or arrays of ids. Unknown users or items follow an explicit policy and are
counted, never mapped to another row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.config import FitConfig, ModelConfig
from collabfilter.data import Ratings, RatingScale, Vocabulary
from collabfilter.data.features import FeatureEncoder
from collabfilter.data.interactions import Interactions
from collabfilter.data.popularity import observed_log_popularity
from collabfilter.data.tensors import tensor_of
from collabfilter.errors import (
    CollabFilterError,
    ConfigError,
    DataError,
    DataWarning,
    UnknownIdError,
)
from collabfilter.models import FamilyModule, FoldContext, FoldedUser, RatingModule
from collabfilter.progress import EpochRecord

UnknownPolicy = Literal["error", "nan", "baseline"]
"""What a prediction for a pair with an unknown user or item is: ``"error"`` raises
:class:`~collabfilter.errors.UnknownIdError` naming them; ``"nan"`` gives NaN;
``"baseline"`` gives the damped bias baseline of the training ratings (the global mean
plus the known side's damped bias). ``"nan"`` and ``"baseline"`` announce how many
pairs they covered with a :class:`~collabfilter.errors.DataWarning`."""

EVAL_BATCH = 65_536
FALLBACK_DAMPING = 10.0
"""Pseudo-ratings at the global mean in the ``"baseline"`` fallback's biases (the
damping of Koren's baseline estimates): a side seen once moves the prediction little."""


@dataclass(frozen=True)
class PairIndex:
    """Pairs of raw ids resolved to rows: indices (0 where unknown) and known masks."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    user_known: np.ndarray
    item_known: np.ndarray

    @property
    def known(self) -> np.ndarray:
        """Pairs whose user and item are both known."""
        return np.asarray(self.user_known & self.item_known)


@dataclass
class FittedModel:
    """A trained model, its vocabularies and what it kept of its training data.

    Attributes:
        model: the ``nn.Module`` (indices in, scores out).
        users: user vocabulary (raw ids of the model's user rows).
        items: item vocabulary (raw ids and titles of its item rows).
        interactions: the training ratings in CSR form.
        model_config: what was built.
        config: how it was trained.
        history: the epoch table.
        metrics: final figures recorded at training time (e.g. validation RMSE).
    """

    model: FamilyModule
    users: Vocabulary
    items: Vocabulary
    interactions: Interactions
    model_config: ModelConfig | None = None
    config: FitConfig | None = None
    history: list[EpochRecord] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    """The source column of each field (``user``, ``item``, ``rating``...) in the table
    the model was trained on: tables given later are read by the same names."""
    features: dict[str, FeatureEncoder] = field(default_factory=dict)
    """The side features the model was trained with, per side (``"user"``, ``"item"``):
    the encoder that turns a table of them into the rows the model read."""
    item_log_popularity: np.ndarray | None = field(default=None, repr=False)
    """``log(1 + n_i)`` per item where an item without training ratings has its
    features' estimate instead of 0 (:func:`~collabfilter.data.popularity.
    log_popularity`); None when the model's training had no such item."""
    ranker: FittedModel | None = field(default=None, repr=False)
    """A ranking model trained on the same data, used for top-N lists when present
    (a model file may hold both)."""
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Derived data built once and reused (e.g. the title index)."""

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live."""
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def scale(self) -> RatingScale:
        """The scale of the training ratings."""
        return self.interactions.scale

    @property
    def predicts_ratings(self) -> bool:
        """Whether the model's scores are ratings (ranking models only order items)."""
        return self.model.predicts_ratings

    def rating_module(self) -> RatingModule:
        """The module, when it predicts ratings.

        Raises:
            CollabFilterError: for a ranking model (it only orders items).
        """
        if not isinstance(self.model, RatingModule):
            raise CollabFilterError(
                f"{type(self.model).__name__} ranks items for top-N lists; it does not "
                "predict ratings (use a rating model such as dot_bias or bayes for that)"
            )
        return self.model

    def __repr__(self) -> str:
        kind = self.model_config.kind if self.model_config is not None else "custom"
        return (
            f"{type(self).__name__}({type(self.model).__name__}, kind={kind!r}, "
            f"{len(self.users):,} users, {len(self.items):,} items, "
            f"{len(self.interactions):,} training ratings)"
        )

    # ------------------------------------------------------------------ resolving ids
    def resolve(self, users: Any, items: Any) -> PairIndex:
        """Map pairs of raw user ids and raw item ids (or exact titles) to rows (see
        :func:`resolve_pairs`)."""
        return resolve_pairs(self.users, self.items, users, items)

    def resolve_ratings(
        self, data: Ratings | pd.DataFrame, *, user: str = "user", item: str = "item"
    ) -> PairIndex:
        """Rows of every pair of ``data`` (see :func:`resolve_table`)."""
        return resolve_table(self.users, self.items, data, user=user, item=item)

    # ------------------------------------------------------------------ predicting
    def predict(self, users: Any, items: Any, *, unknown: UnknownPolicy = "error") -> np.ndarray:
        """Predicted ratings (float32) for pairs of raw user ids and item ids or titles.

        Args:
            users: raw user ids (one, or one per item).
            items: raw item ids or exact titles.
            unknown: what pairs with an unknown user or item get (see
                :data:`UnknownPolicy`).

        Raises:
            UnknownIdError: for unknown ids under ``unknown="error"``.
        """
        return self._predict_pairs(self.resolve(users, items), users, items, unknown)

    def predict_ratings(
        self,
        data: Ratings | pd.DataFrame,
        *,
        unknown: UnknownPolicy = "error",
        user: str = "user",
        item: str = "item",
    ) -> np.ndarray:
        """Predicted ratings (float32) for every pair of ``data``, in its row order.

        ``data`` is matched by raw id: a ``Ratings`` split from the training data, one
        read separately (its own vocabulary), or a DataFrame (``user``/``item`` name
        its id columns).
        """
        pairs = self.resolve_ratings(data, user=user, item=item)
        if isinstance(data, Ratings):
            raw_users, raw_items = data.users.ids[data.user_idx], data.items.ids[data.item_idx]
        else:
            raw_users, raw_items = data[user].to_numpy(), data[item].to_numpy()
        return self._predict_pairs(pairs, raw_users, raw_items, unknown)

    def _predict_pairs(
        self, pairs: PairIndex, raw_users: Any, raw_items: Any, unknown: UnknownPolicy
    ) -> np.ndarray:
        self.rating_module()
        if unknown not in ("error", "nan", "baseline"):
            raise ValueError(f"unknown must be 'error', 'nan' or 'baseline', got {unknown!r}")
        known = pairs.known
        if not known.all():
            self._report_unknown(pairs, raw_users, raw_items, unknown)
        result = np.full(len(known), np.nan, dtype=np.float32)
        if known.any():
            result[known] = self.predict_indices(
                torch.from_numpy(pairs.user_idx[known]), torch.from_numpy(pairs.item_idx[known])
            ).numpy()
        if unknown == "baseline" and not known.all():
            result[~known] = self._fallback(pairs, ~known)
        if not np.isfinite(result[known]).all():
            raise CollabFilterError(
                f"{int((~np.isfinite(result[known])).sum())} predictions are not finite: "
                "the model's weights are damaged (retrain or reload it)"
            )
        return result

    @property
    def has_uncertainty(self) -> bool:
        """Whether the model gives each prediction a spread (models that keep posterior
        samples: ``bayes``)."""
        return isinstance(self.model, RatingModule) and self.model.has_uncertainty

    @torch.inference_mode()
    def predict_with_uncertainty(
        self, users: Any, items: Any, *, level: float = 0.9
    ) -> pd.DataFrame:
        """Predicted ratings with how sure the model is of them, one row per pair.

        Columns: ``prediction`` (the posterior mean), ``std`` (its spread over the kept
        samples: how well the data pins the expected rating down), ``predictive_std``
        (adding the rating noise: how far a rating may fall from it), and ``low``/``high``,
        a central ``level`` predictive interval (Gaussian, clipped to the scale), which
        covers about that share of held-out ratings (``benchmarks/bench_accuracy.py``).

        Raises:
            CollabFilterError: for models without posterior samples.
            UnknownIdError: for unknown users or items.
        """
        self.rating_module()  # raises for a ranking model, before the level is read
        if not 0 < level < 1:
            raise ValueError(f"level must lie in (0, 1), got {level}")
        pairs = self.resolve(users, items)
        if not pairs.known.all():
            self._report_unknown(pairs, users, items, "error")
        mean, spread, predictive = self.uncertainty_indices(pairs.user_idx, pairs.item_idx)
        z = float(torch.special.ndtri(torch.tensor(0.5 + level / 2, dtype=torch.float64)))
        low, high = self.scale.low, self.scale.high
        return pd.DataFrame({
            "prediction": mean.astype(np.float32), "std": spread.astype(np.float32),
            "predictive_std": predictive.astype(np.float32),
            "low": np.clip(mean - z * predictive, low, high).astype(np.float32),
            "high": np.clip(mean + z * predictive, low, high).astype(np.float32),
        })  # fmt: skip

    @torch.inference_mode()
    def uncertainty_indices(
        self, user_idx: np.ndarray, item_idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, std, predictive std)`` (float64) of index pairs: the columns of
        :meth:`predict_with_uncertainty` for pairs already resolved.

        Raises:
            CollabFilterError: for models without posterior samples.
        """
        module = self.rating_module()
        module.eval()
        device = self.device
        parts = module.predict_with_uncertainty(
            tensor_of(np.asarray(user_idx, dtype=np.int64)).to(device),
            tensor_of(np.asarray(item_idx, dtype=np.int64)).to(device),
        )
        mean, spread, predictive = (t.double().cpu().numpy() for t in parts)
        return mean, spread, predictive

    def _report_unknown(
        self, pairs: PairIndex, raw_users: Any, raw_items: Any, unknown: UnknownPolicy
    ) -> None:
        users_arr = np.atleast_1d(np.asarray(raw_users, dtype=object)).reshape(-1)
        items_arr = np.atleast_1d(np.asarray(raw_items, dtype=object)).reshape(-1)
        if users_arr.size == 1:
            users_arr = np.repeat(users_arr, len(pairs.user_known))
        if unknown == "error":
            if not pairs.user_known.all():
                self.users.index(users_arr[~pairs.user_known])  # raises, naming them
            self.items.index(items_arr[~pairs.item_known])
        n_users = len(pd.unique(users_arr[~pairs.user_known]))
        n_items = len(pd.unique(items_arr[~pairs.item_known]))
        given = "NaN" if unknown == "nan" else "the bias baseline"
        warnings.warn(
            f"{int((~pairs.known).sum())} of {len(pairs.known)} pairs have an unknown user "
            f"({n_users} distinct) or item ({n_items} distinct); they get {given}",
            DataWarning,
            stacklevel=4,
        )

    def _fallback(self, pairs: PairIndex, rows: np.ndarray) -> np.ndarray:
        value = self.baseline_of(
            pairs.user_idx[rows], pairs.item_idx[rows], pairs.user_known[rows],
            pairs.item_known[rows],
        )  # fmt: skip
        return value.astype(np.float32)

    def baseline_of(
        self, user_idx: np.ndarray, item_idx: np.ndarray, user_ok: np.ndarray | None = None,
        item_ok: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """The damped bias baseline of index pairs (float64, within the scale): the
        mean, plus the user's and the item's damped biases where ``user_ok`` and
        ``item_ok`` say the index names one (all, when not given)."""
        mean, users, items = self._baseline_terms(user_idx, item_idx, user_ok, item_ok)
        return np.asarray(np.clip(mean + users + items, self.scale.low, self.scale.high))

    def _baseline_terms(
        self, user_idx: np.ndarray, item_idx: np.ndarray, user_ok: np.ndarray | None,
        item_ok: np.ndarray | None,
    ) -> tuple[float, np.ndarray, np.ndarray]:  # fmt: skip
        """The terms of :meth:`baseline_of`: the mean, and the user's and the item's
        damped biases (0 where ``user_ok``/``item_ok`` say the index names none)."""
        mean, user_bias, item_bias = self._damped_biases()
        every = np.ones(len(user_idx), dtype=bool)
        user_ok = every if user_ok is None else user_ok
        item_ok = every if item_ok is None else item_ok
        return (
            mean,
            np.where(user_ok, user_bias[user_idx], 0.0),
            np.where(item_ok, item_bias[item_idx], 0.0),
        )

    def _baseline_for_nobody(self, item_idx: np.ndarray) -> np.ndarray:
        """The baseline of items for a user the model has no trained bias of (an
        unlearned user, a folded-in one): the mean plus each item's damped bias."""
        nobody = np.zeros(len(item_idx), dtype=np.int64)
        return self.baseline_of(nobody, item_idx, nobody.astype(bool))

    def _damped_biases(self) -> tuple[float, np.ndarray, np.ndarray]:
        found = self.cache.get("damped_biases")
        if found is None:
            found = self.cache["damped_biases"] = self._fit_damped_biases()
        assert isinstance(found, tuple)
        return found

    def _fit_damped_biases(self) -> tuple[float, np.ndarray, np.ndarray]:
        data = self.interactions
        mean = data.global_mean()
        residual = data.rating - mean
        item_sum = np.bincount(data.item_idx, weights=residual, minlength=data.n_items)
        item_bias = item_sum / (self.item_counts() + FALLBACK_DAMPING)
        residual = residual - item_bias[data.item_idx]
        user_sum = np.bincount(data.user_idx(), weights=residual, minlength=data.n_users)
        user_bias = user_sum / (data.user_counts() + FALLBACK_DAMPING)
        return mean, user_bias, item_bias

    def on_scale(self, predicted: Tensor) -> Tensor:
        """Predicted ratings clipped to the rating scale: a prediction never leaves it."""
        scale = self.scale
        return predicted.clamp(scale.low, scale.high)

    @torch.inference_mode()
    def predict_indices(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predicted ratings for index tensors, on the scale, in evaluation mode,
        batched; float32 on the CPU."""
        module = self.rating_module()
        module.eval()
        device = self.device
        parts = [
            module(user_idx[start : start + EVAL_BATCH].to(device),
                   item_idx[start : start + EVAL_BATCH].to(device)).float().cpu()
            for start in range(0, len(user_idx), EVAL_BATCH)
        ]  # fmt: skip
        predicted = self.on_scale(torch.cat(parts)) if parts else torch.zeros(0)
        return self._baseline_where_unlearned(user_idx.cpu(), item_idx.cpu(), predicted)

    def _rated(self) -> tuple[np.ndarray, np.ndarray]:
        """Whether each user and each item has training ratings (found once: lists ask
        on every request)."""
        found = self.cache.get("rated")
        if found is None:
            user_counts, item_counts = self.training_counts()
            found = self.cache["rated"] = (user_counts > 0, item_counts > 0)
        users, items = found
        assert isinstance(users, np.ndarray) and isinstance(items, np.ndarray)
        return users, items

    def training_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Training ratings per user and per item."""
        return self.interactions.user_counts(), self.item_counts()

    def cold_items(self) -> np.ndarray:
        """Whether each item has no training ratings (a new item: lists mark it)."""
        return ~self._rated()[1]

    def _learned(self) -> tuple[np.ndarray, np.ndarray]:
        """Whether the model learned something of each user and each item: it has
        training ratings, or the module places it without (bayes: every id; a ranking
        model: the new items it placed from their features; see
        ``FamilyModule.placed_unrated``)."""
        found = self.cache.get("learned")
        if found is None:
            learned = []
            for side, rated in zip(("user", "item"), self._rated(), strict=True):
                if self.model.scores_unrated:
                    rated = np.ones_like(rated)
                elif (placed := self.model.placed_unrated(side)) is not None:
                    rated = rated | placed.cpu().numpy()
                learned.append(rated)
            found = self.cache["learned"] = (learned[0], learned[1])
        users, items = found
        assert isinstance(users, np.ndarray) and isinstance(items, np.ndarray)
        return users, items

    def unlearned_items(self) -> np.ndarray:
        """Items the model learned nothing of (no training ratings, and not placed
        without them: see :meth:`_learned`): their pairs are predicted by the bias
        baseline and lists never hold them. Indices, int64."""
        found = self.cache.get("unlearned_items")
        if found is None:
            found = self.cache["unlearned_items"] = np.flatnonzero(~self._learned()[1])
        assert isinstance(found, np.ndarray)
        return found

    def _unlearned_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Which of ``user_idx`` the model learned nothing of (see
        :meth:`unlearned_items`)."""
        return np.asarray(~self._learned()[0][user_idx])

    def _baseline_where_unlearned(
        self, user_idx: Tensor, item_idx: Tensor, predicted: Tensor
    ) -> Tensor:
        """``predicted`` with the pairs of an unlearned user or item set to the bias
        baseline of their rated sides."""
        if not len(predicted):
            return predicted
        users, items = user_idx.numpy(), item_idx.numpy()
        learned_users, learned_items = self._learned()
        user_ok, item_ok = learned_users[users], learned_items[items]
        unlearned = ~(user_ok & item_ok)
        if not unlearned.any():
            return predicted
        predicted = predicted.clone()
        predicted[torch.from_numpy(unlearned)] = torch.from_numpy(self.baseline_of(
            users[unlearned], items[unlearned], user_ok[unlearned], item_ok[unlearned]
        )).to(predicted.dtype)  # fmt: skip
        return predicted

    def parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """The terms of a pair's predicted rating: the module's, or the bias baseline's
        (``global``, ``user bias``, ``item bias``) for a pair with an unlearned user or
        item, whose prediction the baseline gives."""
        learned_users, learned_items = self._learned()
        if learned_users[user_idx] and learned_items[item_idx]:
            return self.rating_module().parts(user_idx, item_idx)
        users, items = np.array([user_idx]), np.array([item_idx])
        mean, user, item = self._baseline_terms(
            users, items, learned_users[users], learned_items[items]
        )
        return {"global": float(mean), "user bias": float(user[0]), "item bias": float(item[0])}

    def _rank_learned(self, user_idx: np.ndarray, ranking: Tensor, items: slice) -> Tensor:
        """Ranking rows with the unlearned items at ``-inf`` (never listed) and each
        unlearned user's row ordered by the bias baseline (all that is known of them)."""
        start, stop, _ = items.indices(len(self.items))
        unlearned = self.unlearned_items()
        inside = unlearned[(unlearned >= start) & (unlearned < stop)]
        users = self._unlearned_users(np.asarray(user_idx, dtype=np.int64))
        if users.any():
            row = self._baseline_for_nobody(np.arange(start, stop))
            ranking[torch.from_numpy(users)] = torch.from_numpy(row).to(ranking.dtype)
        ranking[:, torch.from_numpy(inside - start)] = -torch.inf
        return ranking

    def score_users(self, user_idx: np.ndarray) -> Tensor:
        """Scores of every item for the given user indices, ``(n, items)`` float32 on
        the CPU: predicted ratings (on the scale), or ranking scores for ranking models."""
        scores = self._item_scores(self.model.score_items, user_idx)
        if not self.predicts_ratings:
            return self._rank_learned(user_idx, scores, slice(None))
        scores = self.on_scale(scores)
        users = np.asarray(user_idx, dtype=np.int64)
        items = self.unlearned_items()
        if len(items):  # the columns of unlearned items: mean + the user's bias
            cells = self._baseline_where_unlearned(
                torch.from_numpy(np.repeat(users, len(items))),
                torch.from_numpy(np.tile(items, len(users))),
                scores[:, torch.from_numpy(items)].reshape(-1),
            )  # fmt: skip
            scores[:, torch.from_numpy(items)] = cells.view(len(users), -1)
        rows = self._unlearned_users(users)
        if rows.any():  # whole rows of unlearned users: mean + the item's bias
            row = self._baseline_for_nobody(np.arange(len(self.items)))
            scores[torch.from_numpy(rows)] = torch.from_numpy(row).to(scores.dtype)
        return scores

    def item_counts(self) -> np.ndarray:
        """Training ratings per item (int64), counted once: lists, searches and the
        service ask for them on every request, and the training ratings never change."""
        counts = self.cache.get("item_counts")
        if counts is None:
            counts = self.cache["item_counts"] = self.interactions.item_counts()
        assert isinstance(counts, np.ndarray)
        return counts

    def log_popularity(self) -> Tensor:
        """The popularity term of blended lists per item, float32: ``log(1 + n_i)``, or
        the features' estimate for an item without training ratings (see
        ``item_log_popularity``)."""
        if self.item_log_popularity is not None:
            return torch.from_numpy(self.item_log_popularity)
        return torch.from_numpy(observed_log_popularity(self.item_counts()))

    def blend_users(self, user_idx: np.ndarray, popularity_weight: float) -> Tensor:
        """Scores ``score + w * log(1 + n_i)`` of every item for the given users, to rank
        by: a rating model's scores before they are clipped to the scale (clipped
        ratings would tie at the top and leave the order to popularity alone). A new
        item's ``log(1 + n_i)`` is what its features predict (:meth:`log_popularity`)."""
        scores = self._item_scores(self.model.score_items, user_idx)
        return self._rank_learned(user_idx, scores, slice(None)) + (
            popularity_weight * self.log_popularity()
        )

    def rank_users(self, user_idx: np.ndarray, items: slice | None = None) -> Tensor:
        """Scores that order every item (or a range of items) for the given users as
        :meth:`score_users` does, at less cost where the family offers it (a rating
        model leaves out its per-user terms and its monotone output function),
        ``(n, items)`` float32 on the CPU. For ranking lists only: not predictions, and
        unlearned items (:meth:`unlearned_items`) are ``-inf``, never listed."""
        ranking = self._item_scores(lambda index: self.model.rank_items(index, items), user_idx)
        return self._rank_learned(user_idx, ranking, items or slice(None))

    def fold_context(self, user_features: Tensor | None = None) -> FoldContext:
        """What placing a new user may need of this model's training."""
        counts = torch.from_numpy(self.interactions.user_counts())
        return FoldContext(counts, self.config, self.scale, user_features)

    def fold_in_indices(
        self, item_idx: np.ndarray, ratings: np.ndarray, user_features: Tensor | None = None
    ) -> FoldedUser:
        """A new user placed from rated item indices and their ratings (checked by the
        caller) and, for a model trained with user features, their encoded row (see
        :meth:`encode_user_features`), without retraining."""
        self.model.eval()
        device = self.device
        items = torch.from_numpy(np.asarray(item_idx, dtype=np.int64)).to(device)
        values = torch.from_numpy(np.asarray(ratings, dtype=np.float64)).to(device)
        row = None if user_features is None else user_features.to(device)
        return self.model.fold_in(items, values, self.fold_context(row))

    def encode_user_features(self, values: Mapping[str, Any]) -> Tensor:
        """A new user's side features (``{"age": 25, "occupation": "writer"}``) as the
        row the model was trained on (:meth:`user_feature_row`), the values the
        training data never had counted in a warning.

        Raises:
            ConfigError: for a model trained without user features.
            DataError: naming fields the model's features do not have.
        """
        row, unseen = self.user_feature_row(values)
        if unseen:
            warnings.warn(
                f"{unseen} user feature value(s) were not in the training data; they "
                "contribute nothing",
                DataWarning,
                stacklevel=2,
            )
        return row

    def user_feature_row(self, values: Mapping[str, Any]) -> tuple[Tensor, int]:
        """A new user's side features as the row the model was trained on, and the
        count of values the training data never had (they contribute nothing); a field
        not named is missing, as it would be in the training table.

        Raises:
            ConfigError: for a model trained without user features.
            DataError: naming fields the model's features do not have.
        """
        encoder = self.features.get("user")
        if encoder is None:
            raise ConfigError(
                "this model was trained without user features; recommend from ratings "
                "alone (bayes and nn models read the features their training data carries)"
            )
        matrix, unseen = encoder.encode_values(values)
        return matrix.to_dense()[0], unseen

    @torch.no_grad()
    def score_folded(self, user: FoldedUser) -> Tensor:
        """Scores of every item for a folded-in user, ``(items,)`` float32 on the CPU
        (ranking order, not always shown ratings; unlearned items ``-inf``)."""
        self.model.eval()
        scores = self.model.score_folded(user).float().cpu()
        scores[torch.from_numpy(self.unlearned_items())] = -torch.inf
        return scores

    @torch.no_grad()
    def predict_folded(self, user: FoldedUser, item_idx: np.ndarray) -> Tensor:
        """Predicted ratings of items for a folded-in user, on the scale, float32 on the
        CPU; an unlearned item (:meth:`unlearned_items`) gets the global mean."""
        module = self.rating_module()
        module.eval()
        items = np.asarray(item_idx, dtype=np.int64)
        predicted = self.on_scale(
            module.predict_folded(user, torch.from_numpy(items).to(self.device)).float().cpu()
        )
        unlearned = np.isin(items, self.unlearned_items())
        if unlearned.any():  # nothing learned of the item, nor a trained bias of the user
            baseline = self._baseline_for_nobody(items[unlearned])
            predicted[torch.from_numpy(unlearned)] = torch.from_numpy(baseline).float()
        return predicted

    @torch.no_grad()  # not inference_mode: callers mask the result in place
    def _item_scores(self, method: Callable[[Tensor], Tensor], user_idx: np.ndarray) -> Tensor:
        self.model.eval()
        index = tensor_of(np.asarray(user_idx, dtype=np.int64)).to(self.device)
        return method(index).float().cpu()

    def training_ratings(self) -> Ratings:
        """The training ratings the model kept, as a ``Ratings`` in its vocabularies
        (e.g. to fit baselines beside a loaded model)."""
        data = self.interactions
        return Ratings(
            data.user_idx(), data.item_idx, data.rating, users=self.users, items=self.items,
            scale=data.scale,
        )  # fmt: skip

    def history_frame(self) -> pd.DataFrame:
        """The epoch table as a DataFrame (fastai's ``recorder.values``)."""
        columns = ["epoch", "train_loss", "valid_loss", "valid_rmse", "seconds"]
        return pd.DataFrame([vars(r) for r in self.history], columns=columns)


def _same(left: Vocabulary, right: Vocabulary) -> bool:
    return left is right or left == right


def resolve_pairs(users_vocab: Vocabulary, items_vocab: Vocabulary, users: Any,
                  items: Any) -> PairIndex:  # fmt: skip
    """Map pairs of raw user ids and raw item ids (or exact titles) to rows.

    A single user pairs with every item. Ids given as text match the vocabulary's ids
    by its type: ``"1"`` finds the integer id 1, ``"007"`` never finds 7.
    """
    users_arr = np.atleast_1d(np.asarray(users, dtype=object)).reshape(-1)
    items_arr = np.atleast_1d(np.asarray(items, dtype=object)).reshape(-1)
    if users_arr.size == 1 and items_arr.size > 1:
        users_arr = np.repeat(users_arr, items_arr.size)
    if users_arr.shape != items_arr.shape:
        raise DataError(
            f"users and items must pair up: {users_arr.size} users vs {items_arr.size} items"
        )
    user_known = users_vocab.contains(users_arr)
    user_idx = np.zeros(len(users_arr), dtype=np.int64)
    user_idx[user_known] = users_vocab.index(users_arr[user_known])
    item_idx, item_known = items_vocab.resolve(items_arr)
    return PairIndex(user_idx, item_idx.astype(np.int64), user_known, item_known)


def resolve_table(
    users_vocab: Vocabulary,
    items_vocab: Vocabulary,
    data: Ratings | pd.DataFrame,
    *,
    user: str = "user",
    item: str = "item",
) -> PairIndex:
    """Rows of every pair of ``data``: a ``Ratings`` (with these vocabularies or its
    own, matched by raw id) or a DataFrame with ``user`` and ``item`` columns of raw ids."""
    if isinstance(data, Ratings):
        if _same(data.users, users_vocab) and _same(data.items, items_vocab):
            ones = np.ones(len(data), dtype=bool)
            return PairIndex(
                data.user_idx.astype(np.int64), data.item_idx.astype(np.int64), ones, ones
            )
        raw_users, raw_items = data.users.ids[data.user_idx], data.items.ids[data.item_idx]
        return resolve_pairs(users_vocab, items_vocab, raw_users, raw_items)
    if isinstance(data, pd.DataFrame):
        missing = [c for c in (user, item) if c not in data.columns]
        if missing:
            raise DataError(
                f"the frame has no column(s) {missing}; found {list(data.columns)}: "
                "name the id columns with user=..., item=..."
            )
        return resolve_pairs(users_vocab, items_vocab, data[user].to_numpy(), data[item].to_numpy())
    raise TypeError(f"expected Ratings or a pandas DataFrame, got {type(data).__name__}")


def require_known_users(model: FittedModel, users: Any) -> np.ndarray:
    """Indices (int64) of raw user ids, raising :class:`UnknownIdError` for unknown ones."""
    user_ids = np.atleast_1d(np.asarray(users, dtype=object)).reshape(-1)
    try:
        return model.users.index(user_ids).astype(np.int64)
    except UnknownIdError as error:
        raise UnknownIdError(f"{error}; recommend_new_user folds in a user from ratings") from None
