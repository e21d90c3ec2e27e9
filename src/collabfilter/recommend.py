"""Top-N recommendations for known and brand-new users, and why an item is suggested.

Users are scored in blocks: one ``(block x items)`` matrix of predicted ratings per
block, the items each user already rated set to ``-inf``, then ``topk``. A new user
described by a few (item, rating) pairs is *folded in*: their factors and bias are
solved for with the item side fixed, under the same per-rating regularisation as
training, so no retraining is needed.
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
from collabfilter.interpret import find_item, find_items, item_labels
from collabfilter.models import DotProduct, DotProductBias, TopNModel
from collabfilter.models.ops import sigmoid_range
from collabfilter.train.regularization import new_user_decay

USER_BLOCK = 1024


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
    """

    users: np.ndarray
    offsets: np.ndarray
    item_idx: np.ndarray
    scores: np.ndarray
    spread: np.ndarray | None = None
    score_name: str = "predicted"
    """What the scores are: ``"predicted"`` ratings, or a ranking model's ``"score"``."""

    def __len__(self) -> int:
        return len(self.users)

    def of(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """The item indices and scores of the ``position``-th user asked for."""
        part = slice(int(self.offsets[position]), int(self.offsets[position + 1]))
        return self.item_idx[part], self.scores[part]

    def to_frame(self, model: FittedModel) -> pd.DataFrame:
        """One row per (user, rank): user, rank, item id, title, score (``predicted``
        for rating models)."""
        lengths = np.diff(self.offsets)
        ranks = np.arange(len(self.item_idx)) - np.repeat(self.offsets[:-1], lengths) + 1
        frame = pd.DataFrame(
            {
                "user": np.repeat(self.users, lengths),
                "rank": ranks,
                "item": model.items.id_of(self.item_idx),
                "title": item_labels(model, self.item_idx),
                self.score_name: self.scores,
            }
        )
        if self.spread is not None:
            frame["+/- std"] = self.spread
        return frame


def mask_seen(model: FittedModel, scores: Tensor, user_idx: np.ndarray) -> None:
    """Set the items each row's user rated in training to ``-inf``, in place."""
    rows, items, _ = model.interactions.rows(user_idx)
    scores[torch.from_numpy(rows), torch.from_numpy(items.astype(np.int64))] = -torch.inf


def require_finite(scores: Tensor, what: str = "scores") -> None:
    """Raise if a model produced a score that is not a number (damaged weights)."""
    if torch.isnan(scores).any() or torch.isinf(scores).any():
        raise CollabFilterError(
            f"the model produced {what} that are not finite: its weights are damaged "
            "(retrain, or reload the model file)"
        )


def recommend(
    model: FittedModel,
    users: Any,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    min_ratings: int | None = None,
    popularity_weight: float = 0.0,
    by: Literal["auto", "rating", "ranking"] = "auto",
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
            model does not know what people tend to watch at all, and on held-out
            data that popularity prior lifts NDCG/recall above the most-popular
            baseline (``scores`` stay the model's scores).
        by: ``"auto"`` ranks with the model's ranking companion when it has one (else
            the model itself), ``"rating"`` by predicted rating, ``"ranking"`` requires
            a ranking model.

    Raises:
        UnknownIdError: for users the model does not know (see :func:`recommend_new_user`).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    model = ranking_model(model, by)
    user_idx = require_known_users(model, users)
    counts = torch.from_numpy(model.interactions.item_counts().astype(np.float32))
    blocked = _rare_items(model, min_ratings)
    k = min(k, len(model.items))
    items, scores, lengths = [], [], []
    for start in range(0, len(user_idx), USER_BLOCK):
        block = user_idx[start : start + USER_BLOCK]
        if popularity_weight:
            ranking = model.score_users(block) + popularity_weight * torch.log1p(counts)
        else:
            ranking = model.rank_users(block)
        if exclude_seen:
            mask_seen(model, ranking, block)
        if blocked is not None:
            ranking[:, blocked] = -torch.inf
        top = torch.topk(ranking, k, dim=1)
        kept = top.values > -torch.inf  # masked items are -inf
        require_finite(top.values[top.values != -torch.inf])  # NaN sorts first: shows here
        top_items = top.indices[kept]
        if model.predicts_ratings:  # the ranking scores need not be ratings: predict them
            rows = torch.from_numpy(block.astype(np.int64)).repeat_interleave(kept.sum(1))
            chosen = model.predict_indices(rows, top_items)
            require_finite(chosen)
        else:
            chosen = top.values[kept]
        items.append(top_items.numpy())
        scores.append(chosen.numpy())
        lengths.append(kept.sum(1).numpy())
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
    picked = np.concatenate(items)
    spread = None
    if model.has_uncertainty:
        owners = np.repeat(user_idx, np.diff(offsets))
        spread = model.predict_with_uncertainty(
            model.users.id_of(owners), model.items.id_of(picked)
        )["predictive_std"].to_numpy()
    return Recommendations(
        model.users.id_of(user_idx), offsets, picked, np.concatenate(scores), spread,
        "predicted" if model.predicts_ratings else "score",
    )  # fmt: skip


def ranking_model(model: FittedModel, by: Literal["auto", "rating", "ranking"]) -> FittedModel:
    """The model whose scores order the lists (see :func:`recommend`'s ``by``)."""
    if by not in ("auto", "rating", "ranking"):
        raise ValueError(f"by must be 'auto', 'rating' or 'ranking', got {by!r}")
    if by == "rating":
        if not model.predicts_ratings:
            raise CollabFilterError("this is a ranking model: it does not predict ratings")
        return model
    if model.ranker is not None:
        return model.ranker
    if by == "ranking" and model.predicts_ratings:
        raise CollabFilterError(
            "this model predicts ratings and holds no ranking model: train the topn recipe "
            "(and save it beside the rating model) for top-N lists"
        )
    return model


def shown(model: FittedModel, scores: Tensor) -> Tensor:
    """Scores as shown: what ``predict`` gives for those pairs. A model that ranks by an
    unclipped mean but predicts clipped ratings (``bayes``) says so with
    ``clip_ratings``."""
    clip = getattr(model.model, "clip_ratings", None)
    return scores if clip is None else clip(scores)


def _rare_items(model: FittedModel, min_ratings: int | None) -> Tensor | None:
    if min_ratings is None:
        return None
    return torch.from_numpy(model.interactions.item_counts() < min_ratings)


# ----------------------------------------------------------------------------- fold-in
@dataclass(frozen=True)
class FoldedUser:
    """A user solved for with the items fixed: factors, bias and activity (dot models,
    on the CPU), or a model family's own state (``state``, on the model's device)."""

    factors: Tensor
    bias: float
    activity: float
    state: Any = None


def _dot_model(model: FittedModel) -> DotProduct | DotProductBias:
    if not isinstance(model.model, DotProduct | DotProductBias):
        raise CollabFilterError(
            f"fold-in needs a model that can place a new user, not "
            f"{type(model.model).__name__}; use dot_bias, bayes or topn for new users"
        )
    return model.model


def rated_items(model: FittedModel, rated: Mapping[Any, float]) -> tuple[np.ndarray, Tensor]:
    """Item indices (int64) and ratings (float64) of ``{item id or title: rating}``.

    Raises:
        DataError: with no ratings, ratings outside the data's scale, or an item twice.
        UnknownIdError / AmbiguousTitleError: for items that cannot be resolved.
    """
    if not rated:
        raise DataError("a new user needs at least one (item, rating) pair")
    item_idx = find_items(model, list(rated))
    values = torch.tensor([float(v) for v in rated.values()], dtype=torch.float64)
    scale = model.scale
    if not torch.isfinite(values).all() or ((values < scale.low) | (values > scale.high)).any():
        raise DataError(f"ratings must lie in the data's scale {scale}, got {values.tolist()}")
    if len(np.unique(item_idx)) < len(item_idx):
        raise DataError("each item may be rated once; the ratings name an item twice")
    return item_idx, values


def fold_in(model: FittedModel, rated: Mapping[Any, float], *, iterations: int = 30) -> FoldedUser:
    """Place a new user from ``{item id or title: rating}`` without retraining.

    Dot models minimise the training objective restricted to this user, with the item
    side fixed: half the squared error of the predicted ratings plus the per-rating
    weight decay a user with this many ratings had in training. The problem has only
    ``factors + 1`` unknowns, so damped Gauss-Newton steps (one small linear solve
    each) converge in a few iterations. Other families place the user their own way
    (the module's ``fold_in``). Computed on the CPU, whatever device the model is on.

    Raises:
        DataError: with no ratings, or ratings outside the data's scale.
        UnknownIdError / AmbiguousTitleError: for items that cannot be resolved.
    """
    item_idx, values = rated_items(model, rated)
    module = model.model
    if isinstance(module, TopNModel):  # the rated set (and ratings) is all it needs
        return FoldedUser(torch.zeros(0), 0.0, 0.0, (torch.from_numpy(item_idx), values))
    own = getattr(module, "fold_in", None)
    if own is not None:
        device = model.device
        state = own(torch.from_numpy(item_idx).to(device), values.to(device))
        return FoldedUser(torch.zeros(0), 0.0, 0.0, state)
    dot = _dot_model(model)
    config = model.training_config()
    if config is None:
        raise CollabFilterError("fold-in of a dot model needs its sgd training config")
    counts = torch.from_numpy(model.interactions.user_counts())
    n = len(values)
    factor_decay, bias_decay = new_user_decay(config, counts, n)
    index = torch.from_numpy(item_idx)
    with torch.no_grad():
        design = dot.item_factors.detach().cpu()[index].double()
        fixed = torch.zeros(n, dtype=torch.float64)
        activity = 0.0
        has_bias = isinstance(dot, DotProductBias)
        if isinstance(dot, DotProductBias):
            activity = float(dot.activity_of(torch.tensor([n]), kind="user")[0].cpu())
            fixed = (dot.item_effect().cpu()[index] + dot.offset.cpu()).double()
            if dot.activity_prior:
                fixed = fixed + float(dot.activity_weight[0].cpu()) * activity
            design = torch.cat([design, torch.ones(n, 1, dtype=torch.float64)], dim=1)
        decay = torch.full((design.shape[1],), n * factor_decay, dtype=torch.float64)
        if has_bias:
            decay[-1] = n * bias_decay
        theta = _gauss_newton(design, fixed, values, decay, dot.y_range, iterations)
    factors = theta[:-1] if has_bias else theta
    bias = float(theta[-1]) if has_bias else 0.0
    return FoldedUser(factors.float(), bias, activity)


def _gauss_newton(
    design: Tensor,
    fixed: Tensor,
    target: Tensor,
    decay: Tensor,
    y_range: tuple[float, float] | None,
    iterations: int,
) -> Tensor:
    """Minimise ``0.5 |f(design @ theta + fixed) - target|^2 + 0.5 theta' diag(decay) theta``
    where ``f`` is the sigmoid range (or the identity), by damped Gauss-Newton."""
    theta = torch.zeros(design.shape[1], dtype=torch.float64)
    regulariser = torch.diag(decay)
    for _ in range(iterations):
        x = design @ theta + fixed
        if y_range is None:
            predicted, slope = x, torch.ones_like(x)
        else:
            low, high = y_range
            squashed = torch.sigmoid(x)
            predicted = low + (high - low) * squashed
            slope = (high - low) * squashed * (1 - squashed)
        jacobian = design * slope.unsqueeze(1)
        gradient = jacobian.T @ (predicted - target) + decay * theta
        hessian = jacobian.T @ jacobian + regulariser
        step = torch.linalg.solve(
            hessian + 1e-6 * torch.eye(len(theta), dtype=theta.dtype), gradient
        )
        theta = theta - step
        if float(step.abs().max()) < 1e-7:
            break
    return theta


@torch.no_grad()
def score_folded(model: FittedModel, user: FoldedUser) -> Tensor:
    """Scores of every item for a folded-in user, shape ``(items,)``, on the CPU."""
    if isinstance(model.model, TopNModel):
        item_idx, values = user.state
        device = model.device
        scores: Tensor = model.model.score_new(item_idx.to(device), values.to(device))
        return scores.float().cpu()
    own = getattr(model.model, "score_folded", None)
    if own is not None:
        folded: Tensor = own(user.state)
        return folded.float().cpu()
    dot = _dot_model(model)
    x = dot.item_factors.detach().cpu() @ user.factors
    if isinstance(dot, DotProductBias):
        x = x + user.bias + dot.item_effect().cpu() + dot.offset.cpu()
        if dot.activity_prior:
            x = x + dot.activity_weight[0].cpu() * user.activity
    return x if dot.y_range is None else sigmoid_range(x, *dot.y_range)


def recommend_new_user(
    model: FittedModel,
    rated: Mapping[Any, float],
    *,
    k: int = 10,
    min_ratings: int | None = None,
    by: Literal["auto", "rating", "ranking"] = "auto",
) -> pd.DataFrame:
    """Recommendations for someone not in the data, from a few ratings (fold-in).

    Returns a frame of rank, item id, title and score (``predicted`` for rating
    models); the rated items themselves are excluded. ``by`` as for :func:`recommend`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    model = ranking_model(model, by)
    user = fold_in(model, rated)
    scores = score_folded(model, user).clone()
    require_finite(scores)
    scores[torch.from_numpy(find_items(model, list(rated)))] = -torch.inf
    blocked = _rare_items(model, min_ratings)
    if blocked is not None:
        scores[blocked] = -torch.inf
    top = torch.topk(scores, min(k, len(scores)))
    kept = torch.isfinite(top.values)
    picked = top.indices[kept].numpy()
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(picked) + 1),
            "item": model.items.id_of(picked),
            "title": item_labels(model, picked),
            ("predicted" if model.predicts_ratings else "score"): shown(
                model, top.values[kept]
            ).numpy(),
        }
    )


@dataclass(frozen=True)
class Explanation:
    """A prediction taken apart.

    ``terms`` holds the parts of the score (for dot models: the global offset, user
    bias, item bias and factor term of the logit the sigmoid maps to ``prediction``;
    for ranking models: each rated item's contribution); ``similar_rated`` lists the
    user's training items closest to this one, with the user's ratings.
    """

    user: Any
    item: Any
    title: str
    prediction: float
    terms: dict[str, float]
    similar_rated: pd.DataFrame


@torch.no_grad()
def explain(model: FittedModel, user: Any, item: Any, *, n_similar: int = 3) -> Explanation:
    """Why ``user`` gets ``item``: the score's parts and the rated items behind it.

    For a ranking model the parts are the user's rated items themselves ("because you
    rated ..."): each one's contribution to the item's score, which add up to it.
    """
    if isinstance(model.model, TopNModel):
        return _explain_ranking(model, user, item, n_similar)
    dot = model.model
    if not isinstance(dot, DotProductBias):
        raise CollabFilterError(
            f"explain needs a DotProductBias or a ranking model, not {type(dot).__name__}"
        )
    u = model.users.index_of(user)
    i = find_item(model, item)
    user_factors = dot.user_factors.detach().cpu()
    item_factors = dot.item_factors.detach().cpu()
    terms = {
        "global": float(dot.offset.cpu()),
        "user bias": float(dot.user_effect().cpu()[u]),
        "item bias": float(dot.item_effect().cpu()[i]),
        "factors": float(user_factors[u] @ item_factors[i]),
    }
    prediction = float(sigmoid_range(torch.tensor(sum(terms.values())), *dot.y_range))
    rated, ratings = model.interactions.items_of(u)
    candidates = item_factors[torch.from_numpy(rated.astype(np.int64))]
    similarity = torch.nn.functional.cosine_similarity(candidates, item_factors[i].unsqueeze(0))
    order = torch.argsort(similarity, descending=True)[:n_similar].numpy()
    similar = pd.DataFrame(
        {"item": model.items.id_of(rated[order]), "title": item_labels(model, rated[order]),
         "similarity": similarity.numpy()[order], "their rating": ratings[order]}
    )  # fmt: skip
    title = str(item_labels(model, [i])[0])
    return Explanation(user, model.items.id_of([i])[0], title, prediction, terms, similar)


def _explain_ranking(model: FittedModel, user: Any, item: Any, n_similar: int) -> Explanation:
    module = model.model
    assert isinstance(module, TopNModel)
    u = model.users.index_of(user)
    i = find_item(model, item)
    rated, ratings = model.interactions.items_of(u)
    history = torch.from_numpy(rated.astype(np.int64))
    contributions = module.explain(
        history.to(model.device), i, torch.tensor(ratings).to(model.device)
    )
    parts = contributions.float().cpu().numpy()
    order = np.argsort(-parts, kind="stable")
    labels = item_labels(model, rated)
    because = pd.DataFrame(
        {"item": model.items.id_of(rated[order]), "title": labels[order],
         "contribution": parts[order], "their rating": ratings[order]}
    )  # fmt: skip
    terms = {str(labels[j]): float(parts[j]) for j in order[:n_similar]}
    title = str(item_labels(model, [i])[0])
    return Explanation(
        user, model.items.id_of([i])[0], title, float(parts.sum()), terms, because.head(n_similar)
    )
