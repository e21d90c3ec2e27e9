"""Top-N evaluation on a per-user hold-out, for any scorer, a rating model or the
most-popular baseline.

Every user's candidates are all items except those they rated in training; the
held-out items (optionally only those rated at least ``relevance``) are the hits.
Users with a hit to find are scored block by block (see
:func:`collabfilter.metrics.evaluate_top_n`): no users x items array is ever built.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.data import Split
from collabfilter.errors import DataWarning
from collabfilter.fitted import FittedModel
from collabfilter.metrics import (
    ItemSets,
    evaluate_top_n,
    popular_items,
    relevant_items,
    seen_items,
)
from collabfilter.recommend import USER_BLOCK

POPULARITY_WEIGHT = 1.5
"""The popularity prior ``w`` of the blended ranking, chosen on a per-user hold-out
carved from the training part of ml-100k (``benchmarks/bench_ranking.py``)."""

POPULAR_SHARE = 0.01
"""``popular_share`` counts recommendations among this share of most-rated items."""


def evaluate_scores(
    scores_for: Callable[[np.ndarray], Tensor],
    split: Split,
    *,
    ks: Sequence[int] = (10, 20),
    relevance: float | None = 4.0,
    block_size: int = USER_BLOCK,
) -> pd.DataFrame:
    """Top-N metrics of any scorer on ``split``, one row per ``k``.

    Args:
        scores_for: scores of every item for a block of user indices, a float tensor
            ``(len(block), n_items)`` (it is modified: return a fresh one), e.g. a
            top-N module's ``score_items``.
        split: a hold-out whose training part defines what each user has seen.
        ks: list lengths.
        relevance: held-out ratings at least this count as hits (None: all).
        block_size: users scored at once.

    Returns:
        Columns ``k``, ``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate``,
        ``coverage``, ``popular_share`` (share of recommendations from the 1% most
        rated training items) and ``users``.
    """
    rows = evaluate_top_n(
        scores_for,
        seen_items(split.train),
        relevant_items(split.valid, relevance),
        ks=ks,
        popular=popular_items(split.train.item_counts(), POPULAR_SHARE),
        block_size=block_size,
    )
    table = pd.DataFrame(rows)
    table["k"] = table["k"].astype(int)
    return table


def evaluate_ranking(
    model: FittedModel,
    split: Split,
    *,
    ks: Sequence[int] = (10, 20),
    relevance: float | None = 4.0,
    popularity_weights: Sequence[float] = (0.0, POPULARITY_WEIGHT),
    unknown: Literal["error", "skip"] = "error",
) -> pd.DataFrame:
    """Top-N metrics of a model and of the most-popular baseline, per ``k``.

    ``split.valid`` holds the hits, matched to the model by raw id (it may come with its
    own vocabulary); what each user has seen is what the model was trained on. A
    per-user hold-out (``split_by_user``) gives every user held-out items to find, the
    usual protocol (``benchmarks/bench_ranking.py``). For a rating model, ranking by
    predicted rating alone favours excellent but rarely seen items, which held-out data
    rarely contains; each weight ``w`` in ``popularity_weights`` adds a row ranking by
    ``predicted + w * log(1 + n_i)`` (see :func:`collabfilter.recommend.recommend`). A
    ranking model (``topn``) is scored as it is.

    Args:
        unknown: held-out pairs whose user or item the model does not know raise an
            error naming them, or are left out (``"skip"``, counted in a warning).
    """
    pairs = model.resolve_ratings(split.valid)
    known = pairs.known
    if not known.all():
        if unknown == "error":
            valid = split.valid  # raises UnknownIdError, naming them
            model.users.index(valid.users.ids[valid.user_idx[~pairs.user_known]])
            model.items.index(valid.items.ids[valid.item_idx[~pairs.item_known]])
        warnings.warn(
            f"{int((~known).sum())} held-out pairs have a user or item the model does not "
            "know; they are left out of the ranking evaluation",
            DataWarning,
            stacklevel=2,
        )
    keep = known if relevance is None else known & (split.valid.rating >= relevance)
    n_users, n_items = len(model.users), len(model.items)
    relevant = ItemSets.from_pairs(pairs.user_idx[keep], pairs.item_idx[keep], n_users, n_items)
    data = model.interactions
    seen = ItemSets.from_pairs(data.user_idx(), data.item_idx, n_users, n_items)
    counts = model.item_counts().astype(np.float32)
    popularity = torch.from_numpy(counts)

    def blended(weight: float) -> Callable[[np.ndarray], Tensor]:
        return lambda block: model.blend_users(block, weight) if weight else model.rank_users(block)

    weights = popularity_weights if model.predicts_ratings else (0.0,)
    scorers = {
        ("model" if w == 0 else f"model + {w:g} log popularity"): blended(w) for w in weights
    }
    scorers["most popular"] = lambda block: popularity.expand(len(block), -1).clone()
    popular = popular_items(model.item_counts(), POPULAR_SHARE)
    tables = []
    for name, scorer in scorers.items():
        rows = evaluate_top_n(scorer, seen, relevant, ks=ks, popular=popular)
        tables.append(pd.DataFrame(rows).assign(scorer=name))
    combined = pd.concat(tables, ignore_index=True)
    combined["k"] = combined["k"].astype(int)
    return combined[["scorer", *[c for c in combined.columns if c != "scorer"]]]
