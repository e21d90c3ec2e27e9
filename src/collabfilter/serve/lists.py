"""Top-N lists, fold-in with stored ratings, explanations and batched predictions.

A known user without stored ratings is scored from the list model's own row: for dot
models by :class:`~collabfilter.serve.served.DotScorer` (one matrix-vector product in
numpy), for others by ``score_users``; top-N and explanations are numpy too. This is
the hot path: no pandas, no title lookups, no per-request set-up. A user with stored
ratings, or a new user, is folded in from everything they rated
(:func:`collabfilter.recommend.fold_in`); the folded scores of a stored user are cached
under the exact ratings they were computed from, so a write in any worker process
makes every worker compute afresh, and a user read twice is folded in once.

"Because you rated X": each recommended item is explained by the rated item, among
those the user liked (rated at least their own mean and the scale's midpoint),
whose item vector is closest by cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from collabfilter.errors import DataError
from collabfilter.fitted import FittedModel
from collabfilter.models import TopNModel
from collabfilter.recommend import fold_in, require_finite, score_folded
from collabfilter.serve.served import ItemList, ServedModel
from collabfilter.serve.store import RawId, Stored


def top_items(
    served: ServedModel, scores: np.ndarray, exclude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items by ``scores`` (shape ``(items,)``, left unchanged), never
    one of ``exclude`` nor a blocked rare item: ``(item_idx int64, scores float32)``,
    possibly fewer than ``k``; equal scores keep index order, as ``torch.topk`` does."""
    if not np.isfinite(scores).all():
        require_finite(torch.from_numpy(scores))  # raises, with the library's message
    ranking = scores.copy()
    ranking[exclude] = -np.inf
    if served.blocked is not None:
        ranking[served.blocked] = -np.inf
    k = min(k, len(ranking))
    best = np.argpartition(-ranking, k - 1)[:k]
    best = best[np.lexsort((best, -ranking[best]))]
    best = best[np.isfinite(ranking[best])].astype(np.int64)
    return best, scores[best]


def explain_picks(
    served: ServedModel, picked: np.ndarray, rated_idx: np.ndarray, rated_values: np.ndarray
) -> np.ndarray:
    """For each picked item, the position in ``rated_idx`` of the liked item behind it:
    for a ranking model the rated item that adds most to the pick's score (its own
    explanation), otherwise the liked item whose factors are most like the pick's (-1
    when nothing the user rated is liked, or the model has neither)."""
    none = np.full(len(picked), -1, dtype=np.int64)
    if not len(rated_idx) or not len(picked):
        return none
    module = served.lister.model
    if isinstance(module, TopNModel):
        history = torch.from_numpy(np.asarray(rated_idx, dtype=np.int64))
        given = torch.from_numpy(np.asarray(rated_values, dtype=np.float32))
        with torch.no_grad():
            parts = module.explain_many(history, torch.from_numpy(np.asarray(picked)), given)
        return parts.argmax(0).numpy().astype(np.int64)
    vectors = served.unit_vectors
    if vectors is None:
        return none
    scale = served.model.scale
    threshold = max(float(np.mean(rated_values)), (scale.low + scale.high) / 2)
    liked = np.flatnonzero(rated_values >= threshold)
    if not len(liked):
        return none
    similarity = vectors[picked] @ vectors[rated_idx[liked]].T
    return np.asarray(liked[similarity.argmax(axis=1)], dtype=np.int64)


def rated_by(served: ServedModel, row: int | None, stored: Stored) -> tuple[np.ndarray, np.ndarray]:
    """Item indices (int64) and ratings (float64) of a user: their training ratings
    (a known user) overridden and extended by what they sent."""
    ratings: dict[int, float] = {}
    if row is not None:
        items, values = served.model.interactions.items_of(row)
        ratings.update(zip(items.tolist(), values.astype(np.float64).tolist(), strict=True))
    for item_id, rating in stored:
        item_row = served.items.row(item_id)
        if item_row is not None:  # an item the current model no longer has
            ratings[item_row] = rating
    return np.fromiter(ratings, np.int64, len(ratings)), np.fromiter(
        ratings.values(), np.float64, len(ratings)
    )


def folded_scores(
    model: FittedModel, served: ServedModel, rated_idx: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Scores (float32) of every item for someone who rated ``rated_idx`` with ``values``."""
    if not len(rated_idx):
        raise DataError("no ratings to recommend from: rate at least one item")
    raw = [served.items.raw_id(int(i)) for i in rated_idx]
    user = fold_in(model, dict(zip(raw, values.tolist(), strict=True)))
    return np.asarray(score_folded(model, user).numpy(), dtype=np.float32)


def user_list(
    served: ServedModel, user_key: RawId, row: int | None, stored: Stored, k: int
) -> ItemList:
    """Top ``k`` for a user: a known one by their row, anyone with stored ratings by
    fold-in (cached under those ratings). Everything they rated is excluded.

    Raises:
        DataError: for an unknown user who sent no ratings (the caller says 404).
    """
    lister = served.lister
    if row is not None and not stored:
        rated_idx, values = lister.interactions.items_of(row)
        if served.scorer is not None:
            scores = served.scorer.scores(row)
        else:
            scores = lister.score_users(np.array([row], dtype=np.int64))[0].numpy()
    else:
        rated_idx, values = rated_by(served, row, stored)

        def fold() -> np.ndarray:
            return folded_scores(lister, served, rated_idx, values)

        scores = served.folds.get_or_make(("list", user_key, stored), fold)
    return finish(served, scores, rated_idx, np.asarray(values, dtype=np.float64), k)


def new_user_list(
    served: ServedModel, rated_idx: np.ndarray, values: np.ndarray, k: int
) -> ItemList:
    """Top ``k`` for someone known only by the ratings in a request."""
    scores = folded_scores(served.lister, served, rated_idx, values)
    return finish(served, scores, rated_idx, values, k)


def finish(
    served: ServedModel, scores: np.ndarray, rated_idx: np.ndarray, values: np.ndarray, k: int
) -> ItemList:
    """The list and its explanations from a user's scores and ratings."""
    picked, picked_scores = top_items(served, scores, rated_idx, k)
    because = explain_picks(served, picked, rated_idx, values)
    return ItemList(picked, picked_scores, because, np.asarray(rated_idx), values)


def predict_pairs(
    served: ServedModel,
    user_rows: Sequence[int | None],
    user_keys: Sequence[RawId],
    item_rows: np.ndarray,
    stored: dict[RawId, Stored],
) -> np.ndarray:
    """Predicted ratings (float32) of pairs whose items are known: by the rating
    model's rows for known users without stored ratings, by fold-in otherwise.

    Raises:
        DataError: naming users neither known nor with stored ratings.
    """
    model = served.model
    result = np.empty(len(item_rows), dtype=np.float32)
    pairs = zip(user_rows, user_keys, strict=True)
    plain = np.array([row is not None and key not in stored for row, key in pairs], dtype=bool)
    if plain.any():
        users = np.array([r for r, p in zip(user_rows, plain, strict=True) if p], dtype=np.int64)
        if served.rating_scorer is not None:
            predicted = served.rating_scorer.pairs(users, item_rows[plain])
        else:
            predicted = model.predict_indices(
                torch.from_numpy(users), torch.from_numpy(item_rows[plain])
            ).numpy()
        if not np.isfinite(predicted).all():
            require_finite(torch.from_numpy(predicted), "predictions")
        result[plain] = predicted
    folded = np.flatnonzero(~plain).tolist()
    missing = sorted({str(user_keys[i]) for i in folded if user_keys[i] not in stored})
    if missing:
        raise DataError(
            f"{len(missing)} unknown user(s): {missing[:5]}; the model knows users like "
            f"{served.users.raw_id(0)!r}, and users who sent ratings"
        )
    groups: dict[RawId, list[int]] = {}
    for position in folded:
        groups.setdefault(user_keys[position], []).append(position)
    for key, positions in groups.items():
        scores = _rating_scores(served, key, user_rows[positions[0]], stored[key])
        result[positions] = scores[item_rows[positions]]
    return result


def _rating_scores(served: ServedModel, key: RawId, row: int | None, stored: Stored) -> np.ndarray:
    def fold() -> np.ndarray:
        rated_idx, values = rated_by(served, row, stored)
        scores = folded_scores(served.model, served, rated_idx, values)
        require_finite(torch.from_numpy(scores), "predictions")
        return scores

    scores: np.ndarray = served.folds.get_or_make(("rating", key, stored), fold)
    return scores
