"""Top-N evaluation on a per-user hold-out, for a model or the most-popular baseline.

Every user's candidates are all items except those they rated in training; the
held-out items (optionally only those rated at least ``relevance``) are the hits.
All users are scored at once, block by block, with the same masking as
:func:`collabfilter.recommend.recommend`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.data import Ratings, Split
from collabfilter.evaluate import ranking_metrics
from collabfilter.fitted import FittedModel
from collabfilter.recommend import USER_BLOCK, mask_seen

POPULARITY_WEIGHT = 1.5
"""The popularity prior ``w`` of the blended ranking, chosen on a per-user hold-out
carved from the training part of ml-100k (``benchmarks/bench_ranking.py``)."""


def relevance_matrix(test: Ratings, relevance: float | None) -> np.ndarray:
    """Boolean ``(users, items)``: held-out pairs rated at least ``relevance``."""
    keep = np.ones(len(test), dtype=bool) if relevance is None else test.rating >= relevance
    matrix = np.zeros((test.n_users, test.n_items), dtype=bool)
    matrix[test.user_idx[keep], test.item_idx[keep]] = True
    return matrix


def _top_lists(
    scores_for: Callable[[np.ndarray], Tensor], model: FittedModel, k: int
) -> np.ndarray:
    users = np.arange(len(model.users))
    tops = []
    for start in range(0, len(users), USER_BLOCK):
        block = users[start : start + USER_BLOCK]
        scores = scores_for(block)
        mask_seen(model, scores, block)
        tops.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(tops)


def evaluate_ranking(
    learner: FittedModel,
    split: Split,
    *,
    ks: Sequence[int] = (10, 20),
    relevance: float | None = 4.0,
    popularity_weights: Sequence[float] = (0.0, POPULARITY_WEIGHT),
) -> pd.DataFrame:
    """Top-N metrics of the learner and of the most-popular baseline, per ``k``.

    ``split`` is a hold-out whose training part the learner was trained on; a per-user
    hold-out (``split_by_user``) gives every user held-out items to find, the usual
    protocol (``benchmarks/bench_ranking.py``). Ranking by predicted rating alone
    favours excellent but rarely seen items, which held-out data rarely contains; each
    weight ``w`` in ``popularity_weights`` adds a row ranking by
    ``predicted + w * log(1 + n_i)`` (see :func:`collabfilter.recommend.recommend`).
    """
    relevant = relevance_matrix(split.valid, relevance)
    counts = split.train.item_counts().astype(np.float32)
    popularity = torch.from_numpy(counts)
    log_popularity = torch.log1p(popularity)

    def blended(weight: float) -> Callable[[np.ndarray], Tensor]:
        return lambda block: learner.score_users(block) + weight * log_popularity

    scorers = {
        ("model" if w == 0 else f"model + {w:g} log popularity"): blended(w)
        for w in popularity_weights
    }
    scorers["most popular"] = lambda block: popularity.expand(len(block), -1).clone()
    rows = []
    for name, scorer in scorers.items():
        top = _top_lists(scorer, learner, max(ks))
        for k in ks:
            rows.append({"scorer": name, "k": k, **ranking_metrics(top, relevant, k)})
    return pd.DataFrame(rows)
