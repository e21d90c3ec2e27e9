"""The service's lists and predictions: the library's scorer, with stored ratings.

Every score, list and reason comes from :mod:`collabfilter.recommend` and the fitted
model, exactly as the library and the CLI compute them; this module only decides whose
ratings a request is about. A known user without stored ratings is listed from their
own row (:func:`~collabfilter.recommend.recommend_rows`). A user with stored ratings, or
a new user, is folded in from everything they rated; the folded user is cached under
the exact ratings it was placed from, so a write in any worker process makes every
worker place the user afresh, and a user read twice is placed once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from collabfilter.errors import DataError
from collabfilter.fitted import FittedModel
from collabfilter.models import FoldedUser
from collabfilter.recommend import (
    UserList,
    because_positions,
    list_for_rated,
    reason_items,
    recommend_rows,
    require_finite,
)
from collabfilter.serve.served import ItemList, ServedModel
from collabfilter.serve.store import RawId, Stored

MAX_FOLDED_USERS = 32
"""Users one ``POST /predict`` may fold in (users who sent ratings, each placed afresh
from them): what bounds the CPU one request can take, since a client cycling through
many users defeats any cache of folded users."""


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


def _folded(
    served: ServedModel, model: FittedModel, key: tuple[object, ...], rated_idx: np.ndarray,
    values: np.ndarray,
) -> FoldedUser:  # fmt: skip
    if not len(rated_idx):
        raise DataError("no ratings to recommend from: rate at least one item")
    return served.folds.get_or_make(key, lambda: model.fold_in_indices(rated_idx, values))


def _from_user_list(listed: UserList, rated_idx: np.ndarray, values: np.ndarray) -> ItemList:
    known = listed.because >= 0
    because = reason_items(rated_idx, listed.because)
    given = np.full(len(listed.because), np.nan)
    given[known] = values[listed.because[known]]
    return ItemList(listed.item_idx, listed.scores, because, given, len(rated_idx))


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
        known = recommend_rows(lister, np.array([row]), k=k, min_ratings=served.min_ratings)
        rated_idx, values = lister.interactions.items_of(row)
        positions = because_positions(lister, rated_idx, values, known.item_idx)
        listed = UserList(known.item_idx, known.scores, positions)
        return _from_user_list(listed, rated_idx, values)
    rated_idx, values = rated_by(served, row, stored)
    folded = _folded(served, lister, ("list", user_key, stored), rated_idx, values)
    listed = list_for_rated(
        lister, rated_idx, values, k=k, min_ratings=served.min_ratings, folded=folded
    )
    return _from_user_list(listed, rated_idx, values)


def new_user_list(
    served: ServedModel, rated_idx: np.ndarray, values: np.ndarray, k: int,
    features: Mapping[str, Any] | None = None,
) -> tuple[ItemList, int]:  # fmt: skip
    """Top ``k`` for someone known only by the ratings (and side features) in a
    request, and the count of feature values the model never saw. Lists come from the
    list model, or from the rating model when only it reads the features sent.

    Raises:
        ConfigError: for features sent to a service whose models read none.
    """
    model, row, unseen = served.lister, None, 0
    if features:
        if "user" not in model.features and "user" in served.model.features:
            model = served.model
        row, unseen = model.user_feature_row(features)
    listed = list_for_rated(model, rated_idx, values, k=k, min_ratings=served.min_ratings,
                            user_features=row)  # fmt: skip
    return _from_user_list(listed, rated_idx, values), unseen


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
        DataError: naming users neither known nor with stored ratings, or when more
            than :data:`MAX_FOLDED_USERS` users need folding in.
    """
    folding = len(set(user_keys) & stored.keys())
    if folding > MAX_FOLDED_USERS:
        raise DataError(
            f"pairs: at most {MAX_FOLDED_USERS} different users who sent ratings per request "
            f"(each is placed afresh from their ratings); got {folding}: split the pairs over "
            f"several requests"
        )
    model = served.model
    result = np.empty(len(item_rows), dtype=np.float32)
    pairs = zip(user_rows, user_keys, strict=True)
    plain = np.array([row is not None and key not in stored for row, key in pairs], dtype=bool)
    if plain.any():
        users = np.array([r for r, p in zip(user_rows, plain, strict=True) if p], dtype=np.int64)
        predicted = model.predict_indices(
            torch.from_numpy(users), torch.from_numpy(item_rows[plain])
        )
        require_finite(predicted, "predictions")
        result[plain] = predicted.numpy()
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
        rated_idx, values = rated_by(served, user_rows[positions[0]], stored[key])
        user = _folded(served, model, ("rating", key, stored[key]), rated_idx, values)
        predicted = model.predict_folded(user, item_rows[positions])
        require_finite(predicted, "predictions")
        result[positions] = predicted.numpy()
    return result
