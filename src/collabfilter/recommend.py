"""Top-N lists for known and new users, and why an item is on them: one scorer for
every door (the library, the CLI and the service call these functions).

Users are scored in blocks: one ``(block x items)`` matrix of ranking scores per block,
the items each user already rated (and items rated too rarely, when asked) set to
``-inf``, then ``topk``. Rating models rank by scores that order items as their
predictions do and show the predicted ratings of the chosen items; ranking models
show their scores. A user known only by a few (item, rating) pairs is *folded in* by
their model's family (:meth:`collabfilter.models.FamilyModule.fold_in`), with no
retraining. The reason shown beside an item ("because you rated X") is the rated item
with the largest value of the family's :meth:`~collabfilter.models.FamilyModule.reasons`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.errors import CollabFilterError, DataError
from collabfilter.fitted import FittedModel, require_known_users
from collabfilter.interpret import find_item, find_items, item_labels, item_titles, rare_items
from collabfilter.models import FoldedUser

USER_BLOCK = 1024
ITEM_CHUNK = 4096
"""Items scored at a time for a block of users when the family can score a range
(``ranks_item_ranges``): a block's scores for one range stay in the processor's cache
while they are masked and ranked, where whole rows of a large catalogue would stream
through memory on every pass over them."""
By = Literal["auto", "rating", "ranking"]


@dataclass(frozen=True)
class Recommendations:
    """Up to ``k`` items per user, best first; a user with fewer items left to
    recommend gets fewer (never an item they rated, never a placeholder score).

    Attributes:
        users: raw user ids, shape ``(n,)``.
        offsets: user ``j``'s items are ``item_idx[offsets[j]:offsets[j + 1]]``, shape
            ``(n + 1,)``.
        item_idx: item indices, all users' lists end to end.
        scores: their scores (predicted ratings for rating models), float32, finite.
        spread: for models with posterior samples (``bayes``), each predicted rating's
            predictive standard deviation; None otherwise.
        score_name: what the scores are: ``"predicted"`` ratings or a ranking ``"score"``.
        because: with ``explain=True``, each item's reason: the index of the rated item
            behind it (-1: none); None otherwise.
    """

    users: np.ndarray
    offsets: np.ndarray
    item_idx: np.ndarray
    scores: np.ndarray
    spread: np.ndarray | None = None
    score_name: str = "predicted"
    because: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        shown = ", ".join(str(u) for u in self.users[:3].tolist())
        more = f" and {len(self.users) - 3} more" if len(self.users) > 3 else ""
        return (
            f"Recommendations({len(self.users)} users ({shown}{more}), {len(self.item_idx)} "
            f"items by {self.score_name}: see to_frame(model) for ids and titles)"
        )

    def of(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """The item indices and scores of the ``position``-th user asked for."""
        part = slice(int(self.offsets[position]), int(self.offsets[position + 1]))
        return self.item_idx[part], self.scores[part]

    def to_frame(self, model: FittedModel) -> pd.DataFrame:
        """One row per (user, rank): user, rank, item id, title, score (``predicted``
        for rating models), the reason's title when explained, and ``cold`` (True for
        an item without training ratings) when the model has such items."""
        lengths = np.diff(self.offsets)
        ranks = np.arange(len(self.item_idx)) - np.repeat(self.offsets[:-1], lengths) + 1
        frame = pd.DataFrame(
            {
                "user": np.repeat(self.users, lengths),
                "rank": ranks,
                "item": model.items.id_of(self.item_idx),
                "title": item_titles(model, self.item_idx),
                self.score_name: self.scores,
            }
        )
        if self.spread is not None:
            frame["+/- std"] = self.spread
        if self.because is not None:
            frame["because you rated"] = reason_labels(model, self.because)
        cold = model.cold_items()
        if cold.any():
            frame["cold"] = cold[self.item_idx]
        return frame


def require_finite(scores: Tensor, what: str = "scores") -> None:
    """Raise if a model produced a score that is not a number (damaged weights)."""
    if torch.isnan(scores).any() or torch.isinf(scores).any():
        raise CollabFilterError(
            f"the model produced {what} that are not finite: its weights are damaged "
            "(retrain, or reload the model file)"
        )


def ranking_model(model: FittedModel, by: By) -> FittedModel:
    """The model whose scores order the lists: with ``"auto"`` a file's ranking
    companion when it has one (else the model itself), ``"rating"`` the rating model,
    ``"ranking"`` a ranking model (or an error)."""
    if by not in ("auto", "rating", "ranking"):
        raise ValueError(f"by must be 'auto', 'rating' or 'ranking', got {by!r}")
    if by == "rating":
        model.rating_module()  # raises for a ranking model
        return model
    if model.ranker is not None:
        return model.ranker
    if by == "ranking" and model.predicts_ratings:
        raise CollabFilterError(
            "this model predicts ratings and holds no ranking model: train the topn recipe "
            "(and save it beside the rating model) for top-N lists"
        )
    return model


def _top(ranking: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best columns of each row of ``ranking`` (``-inf`` marks what is not
    allowed): ``(indices, values, kept)``, ``kept`` false where fewer than ``k`` remain."""
    top = torch.topk(ranking, min(k, ranking.shape[-1]), dim=-1)
    require_finite(top.values[top.values != -torch.inf])  # NaN sorts first: it shows here
    return top.indices, top.values, top.values > -torch.inf


def block_top(
    model: FittedModel,
    block: np.ndarray,
    k: int,
    seen: tuple[Tensor, Tensor] | None,
    blocked: np.ndarray | None,
    popularity_weight: float,
    chunk: int = ITEM_CHUNK,
) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` best allowed items of each user of ``block``: ``(indices, values,
    kept)`` as ``torch.topk`` gives them, ``kept`` false past the allowed items.

    Items are scored ``chunk`` at a time when the family scores ranges (the best ``k``
    of each range, then the best of those): the same lists as ranking whole rows, up
    to the order of scores equal to rounding. Whole rows otherwise, whatever ``chunk``:
    with ``popularity_weight`` (the blend is of whole rows), and for a family without
    ``ranks_item_ranges`` (each range would score whole rows). ``seen``: ``(row in
    block, item)`` pairs not allowed; ``blocked``: items allowed to nobody;
    ``popularity_weight``: rank by
    :meth:`~collabfilter.fitted.FittedModel.blend_users`."""
    n_items = len(model.items)
    if popularity_weight or not model.model.ranks_item_ranges:
        chunk = n_items
    if chunk >= n_items:
        if popularity_weight:
            ranking = model.blend_users(block, popularity_weight)
        else:
            ranking = model.rank_users(block)
        _forbid(ranking, seen, blocked, 0, n_items)
        return _top(ranking, k)
    best_indices, best_values = [], []
    for start in range(0, n_items, chunk):
        stop = min(start + chunk, n_items)
        ranking = model.rank_users(block, slice(start, stop))
        _forbid(ranking, seen, blocked, start, stop)
        indices, values, _ = _top(ranking, k)
        best_indices.append(indices + start)
        best_values.append(values)
    indices, values, kept = _top(torch.cat(best_values, dim=1), k)
    return torch.gather(torch.cat(best_indices, dim=1), 1, indices), values, kept


def _forbid(
    ranking: Tensor,
    seen: tuple[Tensor, Tensor] | None,
    blocked: np.ndarray | None,
    start: int,
    stop: int,
) -> None:
    """Set to ``-inf`` the seen pairs ``(row, item)`` and the blocked items that fall in
    the item range ``[start, stop)`` whose scores ``ranking`` holds."""
    if seen is not None:
        rows, items = seen
        inside = (items >= start) & (items < stop)
        ranking[rows[inside], items[inside] - start] = -torch.inf
    if blocked is not None:
        inside_blocked = blocked[(blocked >= start) & (blocked < stop)]
        ranking[:, torch.from_numpy(inside_blocked - start)] = -torch.inf


def _shown(model: FittedModel, rows: Tensor, items: Tensor, ranking: Tensor) -> Tensor:
    """Scores shown for chosen items: predicted ratings for a rating model (its ranking
    scores need not be ratings), the ranking scores for a ranking model."""
    if not model.predicts_ratings:
        return ranking
    shown = model.predict_indices(rows, items)
    require_finite(shown, "predictions")
    return shown


def recommend_rows(
    model: FittedModel,
    user_idx: np.ndarray,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    min_ratings: int | None = None,
    popularity_weight: float = 0.0,
    explain: bool = False,
) -> Recommendations:
    """:func:`recommend` for user indices of the model itself (no ids to resolve)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    user_idx = np.asarray(user_idx, dtype=np.int64).reshape(-1)
    blocked = rare_items(model, min_ratings)
    items, scores, lengths, reasons = [], [], [], []
    for start in range(0, len(user_idx), USER_BLOCK):
        block = user_idx[start : start + USER_BLOCK]
        seen = None
        if exclude_seen:
            rows, seen_items, _ = model.interactions.rows(block)
            seen = (torch.from_numpy(rows), torch.from_numpy(seen_items.astype(np.int64)))
        indices, values, kept = block_top(model, block, k, seen, blocked, popularity_weight)
        counts = kept.sum(1)
        chosen = indices[kept]
        owners = torch.from_numpy(block).repeat_interleave(counts)
        items.append(chosen.numpy())
        scores.append(_shown(model, owners, chosen, values[kept]).numpy())
        lengths.append(counts.numpy())
        if explain:
            reasons += [
                because(model, *model.interactions.items_of(int(user)), picked.numpy())
                for user, picked in zip(block, torch.split(chosen, counts.tolist()), strict=True)
            ]
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    picked = np.concatenate(items).astype(np.int64)
    spread = None
    if model.has_uncertainty:
        owners_all = np.repeat(user_idx, np.diff(offsets))
        spread = model.uncertainty_indices(owners_all, picked)[2].astype(np.float32)
    return Recommendations(
        model.users.id_of(user_idx), offsets, picked, np.concatenate(scores).astype(np.float32),
        spread, "predicted" if model.predicts_ratings else "score",
        np.concatenate(reasons).astype(np.int64) if explain else None,
    )  # fmt: skip


def recommend(
    model: FittedModel,
    users: Any,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    min_ratings: int | None = None,
    popularity_weight: float = 0.0,
    by: By = "auto",
    explain: bool = False,
) -> Recommendations:
    """The ``k`` best items for each user by the model's scores.

    A rating model ranks by predicted rating, which answers "what would this user rate
    highest" and favours excellent films few people watch; a ranking model (recipe
    ``"topn"``) is trained for top-N lists and ranks far better on held-out data. A
    model file may hold both: then the ranking model makes the lists unless ``by``
    asks for predicted ratings.

    Args:
        model: a trained learner or a loaded model.
        users: raw user ids (one or many).
        k: items per user (fewer when fewer remain).
        exclude_seen: skip items the user rated in training.
        min_ratings: only items with at least this many training ratings (obscure
            items with one 5-star rating otherwise crowd a rating model's top).
        popularity_weight: rank by ``score + w * log(1 + n_i)`` instead: a rating
            model does not know what people tend to watch at all, and that popularity
            prior lifts its lists on held-out data (``scores`` stay the model's).
        by: ``"auto"`` ranks with the model's ranking companion when it has one (else
            the model itself), ``"rating"`` by predicted rating, ``"ranking"`` requires
            a ranking model.
        explain: also give each item the rated item behind it (``because``).

    Raises:
        UnknownIdError: for users the model does not know (see :func:`recommend_new_user`).
    """
    model = ranking_model(model, by)
    return recommend_rows(
        model, require_known_users(model, users), k=k, exclude_seen=exclude_seen,
        min_ratings=min_ratings, popularity_weight=popularity_weight, explain=explain,
    )  # fmt: skip


# ----------------------------------------------------------------------------- new users
def rated_items(
    model: FittedModel, rated: Mapping[Any, float], *, allow_none: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Item indices (int64) and ratings (float64) of ``{item id or title: rating}``
    (none at all only when ``allow_none``: a user described by side features).

    Raises:
        DataError: with no ratings, ratings off the data's scale, or an item twice.
        UnknownIdError / AmbiguousTitleError: for items that cannot be resolved.
    """
    if not rated:
        if allow_none:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        raise DataError("a new user needs at least one (item, rating) pair")
    item_idx = find_items(model, list(rated))
    try:
        values = np.array([float(v) for v in rated.values()], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"ratings must be numbers, got {list(rated.values())[:5]}") from None
    check_ratings(model, item_idx, values)
    return item_idx, values


def new_user(
    model: FittedModel, rated: Mapping[Any, float], features: Mapping[str, Any] | None
) -> tuple[np.ndarray, np.ndarray, Tensor | None]:
    """A new user's rated item indices, ratings and encoded features (None when not
    given); the ratings may be empty only beside features.

    Raises:
        DataError: with neither, or ratings off the data's scale.
        ConfigError: for features given to a model trained without them.
    """
    row = None if features is None else model.encode_user_features(features)
    item_idx, values = rated_items(model, rated, allow_none=row is not None)
    return item_idx, values, row


def check_ratings(model: FittedModel, item_idx: np.ndarray, values: np.ndarray) -> None:
    """Refuse a new user's ratings that are not on the model's scale, or that rate an
    item twice (every door checks sent ratings with this rule).

    Raises:
        DataError: naming the offending ratings.
    """
    scale = model.scale
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and infinity are refused below
        off = ~np.isfinite(values) | (values < scale.low) | (values > scale.high)
        if scale.step is not None:
            steps = (values - scale.low) / scale.step
            off |= ~(np.abs(steps - np.round(steps)) <= 1e-6)
    if off.any():
        raise DataError(
            f"ratings must lie on the model's scale {scale}; got {values[off][:5].tolist()}"
        )
    if len(np.unique(item_idx)) < len(item_idx):
        raise DataError("each item may be rated once; the ratings name an item twice")


def fold_in(
    model: FittedModel, rated: Mapping[Any, float], features: Mapping[str, Any] | None = None
) -> FoldedUser:
    """Place a new user from ``{item id or title: rating}`` and, for a model trained
    with user features, their own (``{"age": 25}``; then no rating is needed), without
    retraining (by their model's family: see
    :meth:`collabfilter.models.FamilyModule.fold_in`).

    Raises:
        DataError: with neither ratings nor features, or ratings off the data's scale.
        ConfigError: for features given to a model trained without them.
        UnknownIdError / AmbiguousTitleError: for items that cannot be resolved.
    """
    return model.fold_in_indices(*new_user(model, rated, features))


@dataclass(frozen=True)
class UserList:
    """One user's list: item indices best first, the scores shown, and each item's
    reason as a position in the user's rated items (-1: none)."""

    item_idx: np.ndarray
    scores: np.ndarray
    because: np.ndarray


def list_for_rated(
    model: FittedModel,
    rated_idx: np.ndarray,
    ratings: np.ndarray,
    *,
    k: int = 10,
    min_ratings: int | None = None,
    folded: FoldedUser | None = None,
    user_features: Tensor | None = None,
) -> UserList:
    """The list of someone described by what they rated (and their encoded features),
    folded in, or ``folded`` when already placed from exactly these; the rated items
    are excluded."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    user = folded
    if user is None:
        user = model.fold_in_indices(rated_idx, ratings, user_features)
    ranking = model.score_folded(user).clone()
    ranking[torch.from_numpy(np.asarray(rated_idx, dtype=np.int64))] = -torch.inf
    blocked = rare_items(model, min_ratings)
    if blocked is not None:
        ranking[torch.from_numpy(blocked)] = -torch.inf
    indices, values, kept = _top(ranking, k)
    picked = indices[kept].numpy()
    shown = values[kept]
    if model.predicts_ratings:
        shown = model.predict_folded(user, picked)
        require_finite(shown, "predictions")
    positions = because_positions(model, rated_idx, ratings, picked)
    return UserList(picked, shown.numpy().astype(np.float32), positions)


def recommend_new_user(
    model: FittedModel,
    rated: Mapping[Any, float],
    *,
    k: int = 10,
    min_ratings: int | None = None,
    by: By = "auto",
    features: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Recommendations for someone not in the data, from a few ratings (fold-in) and,
    for a model trained with user features, their own (``{"age": 25, "gender": "F"}``;
    then ratings may be empty).

    Returns a frame of rank, item id, title, score (``predicted`` for rating models)
    and the rated item behind each; the rated items themselves are excluded. ``by`` as
    for :func:`recommend` (lists from a ranking model read no features: pass
    ``by="rating"`` with features).

    Raises:
        ConfigError: for features given to a model (or the list model ``by`` picks)
            trained without them.
    """
    model = ranking_model(model, by)
    rated_idx, values, row = new_user(model, rated, features)
    listed = list_for_rated(model, rated_idx, values, k=k, min_ratings=min_ratings,
                            user_features=row)  # fmt: skip
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(listed.item_idx) + 1),
            "item": model.items.id_of(listed.item_idx),
            "title": item_titles(model, listed.item_idx),
            ("predicted" if model.predicts_ratings else "score"): listed.scores,
            "because you rated": reason_labels(model, reason_items(rated_idx, listed.because)),
        }
    )


# ----------------------------------------------------------------------------- reasons
def because_positions(
    model: FittedModel, rated_idx: np.ndarray, ratings: np.ndarray, item_idx: np.ndarray
) -> np.ndarray:
    """For each item, the position in ``rated_idx`` of the rated item behind it: the one
    with the largest reason (-1 when none can be the reason)."""
    none = np.full(len(item_idx), -1, dtype=np.int64)
    if not len(rated_idx) or not len(item_idx):
        return none
    best = reason_strengths(model, rated_idx, ratings, item_idx).max(0)
    return np.where(torch.isfinite(best.values).numpy(), best.indices.numpy(), none)


def reason_strengths(
    model: FittedModel, rated_idx: np.ndarray, ratings: np.ndarray, item_idx: np.ndarray
) -> Tensor:
    """The family's reason value of each rated item for each item, ``(rated, items)``
    float32 on the CPU (``-inf``: it cannot be the reason)."""
    with torch.no_grad():
        strength: Tensor = model.model.reasons(
            torch.from_numpy(np.asarray(rated_idx, dtype=np.int64)).to(model.device),
            torch.from_numpy(np.asarray(ratings, dtype=np.float64)),
            torch.from_numpy(np.asarray(item_idx, dtype=np.int64)).to(model.device),
            model.scale,
        )
    return strength.float().cpu()


def reason_items(rated_idx: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The rated item's index at each reason position (-1 stays: no reason)."""
    result = np.full(len(positions), -1, dtype=np.int64)
    result[positions >= 0] = np.asarray(rated_idx)[positions[positions >= 0]]
    return result


def reason_labels(model: FittedModel, because_idx: np.ndarray) -> np.ndarray:
    """The label of each reason's rated item (None where there is no reason)."""
    known = because_idx >= 0
    labels = np.full(len(because_idx), None, dtype=object)
    labels[known] = item_labels(model, because_idx[known])
    return labels


def because(
    model: FittedModel, rated_idx: np.ndarray, ratings: np.ndarray, item_idx: np.ndarray
) -> np.ndarray:
    """For each item, the index of the rated item behind it (-1: none)."""
    return reason_items(rated_idx, because_positions(model, rated_idx, ratings, item_idx))


@dataclass(frozen=True)
class Reason:
    """The rated item shown as the reason for a recommendation ("because you rated X")."""

    item: Any
    title: str
    rating: float
    strength: float
    """Its reason value: a cosine similarity, or its contribution to the score."""


@dataclass(frozen=True)
class Explanation:
    """A score taken apart.

    ``terms`` holds the named parts of the score before any output function (for the
    dot family: the global offset, user bias, item bias and factor term of the logit
    the sigmoid maps to ``prediction``; for ranking models: the largest contributions
    of rated items). ``because`` is the one rated item the lists show as the reason;
    ``rated`` lists the user's rated items that can be a reason, strongest first.
    ``prediction`` is what the explained model gives: a predicted rating, or a ranking
    model's score (``score_name`` says which).
    """

    user: Any
    item: Any
    title: str
    prediction: float
    terms: dict[str, float]
    because: Reason | None
    rated: pd.DataFrame
    score_name: str = "predicted"


def explain(
    model: FittedModel, user: Any, item: Any, *, n_similar: int = 3, by: By = "auto"
) -> Explanation:
    """Why ``user`` gets ``item``: the score's parts and the rated items behind it.

    ``by`` picks the model explained as for :func:`recommend`: the model the lists
    come from, by default, so that ``because`` is the reason the lists show.
    """
    model = ranking_model(model, by)
    u = model.users.index_of(user)
    i = find_item(model, item)
    rated, ratings = model.interactions.items_of(u)
    strength = reason_strengths(model, rated, ratings, np.array([i]))[:, 0].numpy()
    order = np.argsort(-strength, kind="stable")
    order = order[np.isfinite(strength[order])]
    labels = item_labels(model, rated)
    kind = model.model.reason_kind
    table = pd.DataFrame(
        {"item": model.items.id_of(rated[order]), "title": labels[order],
         kind: strength[order], "their rating": ratings[order]}
    ).head(n_similar)  # fmt: skip
    reason = None
    if len(order):
        top = order[0]
        reason = Reason(model.items.id_of([rated[top]])[0], str(labels[top]),
                        float(ratings[top]), float(strength[top]))  # fmt: skip
    score_of = torch.from_numpy(np.array([u])), torch.from_numpy(np.array([i]))
    if model.predicts_ratings:
        prediction = float(model.predict_indices(*score_of)[0])
        terms = model.parts(u, i)
    else:
        prediction = float(model.score_users(np.array([u]))[0, i])
        terms = {str(labels[j]): float(strength[j]) for j in order[:n_similar]}
    title = str(item_labels(model, [i])[0])
    return Explanation(
        user, model.items.id_of([i])[0], title, prediction, terms, reason, table,
        "predicted" if model.predicts_ratings else "score",
    )  # fmt: skip
