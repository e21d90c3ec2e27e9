"""What the model learned: biases, factors, their principal components, neighbours.

Everything is addressed by raw id or by title. Title lookup forgives case, a missing
year and MovieLens' trailing articles ("Star Wars" finds "Star Wars (1977)", "the
godfather" finds "Godfather, The (1972)"); an ambiguous or unknown title raises an
error that lists the closest matches.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from collabfilter.errors import AmbiguousTitleError, CollabFilterError, UnknownIdError
from collabfilter.models.bias import BiasTerms
from collabfilter.train import Learner

_ARTICLES = ("the", "a", "an", "les", "la", "le", "il", "das", "der", "die", "el")
_YEAR = re.compile(r"\s*\(\d{4}\)\s*$")


def _normalise(title: str) -> str:
    """Lower case, no year, leading article restored, punctuation folded."""
    text = _YEAR.sub("", str(title)).strip().lower()
    match = re.match(r"^(.*),\s*(" + "|".join(_ARTICLES) + r")$", text)
    if match:
        text = f"{match.group(2)} {match.group(1)}"
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def _bare(title: str) -> str:
    """:func:`_normalise` without a leading article ("the godfather" -> "godfather")."""
    words = _normalise(title).split(" ")
    return " ".join(words[1:] if len(words) > 1 and words[0] in _ARTICLES else words)


def item_labels(learner: Learner, item_idx: Any) -> np.ndarray:
    """Titles (or raw ids as text) of item indices."""
    return learner.items.labels(np.asarray(item_idx))


def find_item(learner: Learner, query: Any) -> int:
    """The index of an item given by raw id, exact title, or a forgiving title.

    Raises:
        AmbiguousTitleError: when several items match equally well (lists them).
        UnknownIdError: when nothing matches (lists the closest titles).
    """
    items = learner.items
    if items.contains([query])[0]:
        return items.index_of(query)
    titles = items.titles
    if titles is None:
        raise UnknownIdError(f"unknown item id {query!r} (the data has no titles to search)")
    text = str(query)
    for matcher in (
        lambda t: t == text,
        lambda t: t.lower() == text.lower(),
        lambda t: _normalise(t) == _normalise(text),
        lambda t: _bare(t) == _bare(text),
    ):
        hits = [i for i, t in enumerate(titles) if t is not None and matcher(t)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            listed = "; ".join(f"{items.ids[i]}: {titles[i]}" for i in hits[:10])
            raise AmbiguousTitleError(
                f"title {query!r} matches several items ({listed}); use an id"
            )
    close = difflib.get_close_matches(text, [t for t in titles if t is not None], n=5, cutoff=0.5)
    hint = f"; closest titles: {close}" if close else ""
    raise UnknownIdError(f"no item with id or title {query!r}{hint}")


def find_items(learner: Learner, queries: list[Any]) -> np.ndarray:
    """:func:`find_item` for several queries (int64 indices)."""
    return np.array([find_item(learner, q) for q in queries], dtype=np.int64)


def _bias_model(learner: Learner) -> BiasTerms:
    if not isinstance(learner.model, BiasTerms) or not hasattr(learner.model, "user_bias"):
        raise CollabFilterError(f"{type(learner.model).__name__} has no biases to show")
    return learner.model


def _counts_and_means(
    codes: np.ndarray, ratings: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training ratings per index and their mean (NaN where there are none)."""
    counts = np.bincount(codes, minlength=size)
    sums = np.bincount(codes, weights=ratings, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts, sums / counts


def item_statistics(learner: Learner) -> pd.DataFrame:
    """Per item index: title, number of training ratings and mean training rating."""
    train = learner.train_ratings
    counts, means = _counts_and_means(train.item_idx, train.rating, train.n_items)
    return pd.DataFrame(
        {"item": learner.items.ids, "title": learner.items.labels(), "ratings": counts,
         "mean rating": means}
    )  # fmt: skip


def _sorted_by_bias(table: pd.DataFrame, among: int | None) -> pd.DataFrame:
    if among is not None:
        table = table.nlargest(among, "ratings", keep="first")
    return table.sort_values("bias", kind="stable").reset_index(drop=True)


def item_biases(learner: Learner, *, among: int | None = 1000) -> pd.DataFrame:
    """Every item's learned bias (``b_i`` plus its activity prior) beside its mean
    rating and count, sorted by bias, among the ``among`` most rated items."""
    with torch.no_grad():
        bias = _bias_model(learner).item_effect().cpu().numpy()
    return _sorted_by_bias(item_statistics(learner).assign(bias=bias), among)


def user_biases(learner: Learner, *, among: int | None = None) -> pd.DataFrame:
    """Every user's learned bias beside their mean rating and count, sorted by bias."""
    train = learner.train_ratings
    counts, means = _counts_and_means(train.user_idx, train.rating, train.n_users)
    with torch.no_grad():
        bias = _bias_model(learner).user_effect().cpu().numpy()
    table = pd.DataFrame(
        {"user": learner.users.ids, "ratings": counts, "mean rating": means, "bias": bias}
    )
    return _sorted_by_bias(table, among)


def item_factors(learner: Learner) -> np.ndarray:
    """The item factor (or embedding) matrix, ``(items, factors)`` float32."""
    model = learner.model
    table = getattr(model, "item_factors", None)
    if table is None:
        table = getattr(model, "item_embedding", None)
    if table is None:
        raise CollabFilterError(f"{type(model).__name__} has no item factors")
    return np.asarray(table.detach().cpu().numpy(), dtype=np.float32)


@dataclass(frozen=True)
class ItemPCA:
    """Principal components of item factors.

    Attributes:
        item_idx: the items analysed (the most rated first), shape ``(n,)``.
        labels: their titles (or ids as text), ``(n,)``: the result reads on its own,
            for tables, plots, or another process.
        coordinates: their coordinates on the components, ``(n, k)``.
        explained: share of variance each component explains, ``(k,)``.
    """

    item_idx: np.ndarray
    labels: np.ndarray
    coordinates: np.ndarray
    explained: np.ndarray


def item_pca(learner: Learner, n_components: int = 3, *, among: int | None = 1000) -> ItemPCA:
    """PCA of the item factors of the ``among`` most rated items (one SVD, centred).

    Signs are fixed so that each component's largest coordinate is positive.
    """
    factors = item_factors(learner)
    counts = learner.train_ratings.item_counts()
    order = np.argsort(-counts, kind="stable")
    chosen = order[: among or len(order)]
    centred = factors[chosen] - factors[chosen].mean(axis=0)
    n_components = min(n_components, *centred.shape)
    u, s, _ = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    coordinates = u[:, :n_components] * s[:n_components]
    flip = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), range(n_components)])
    explained = s**2 / np.sum(s**2)
    labels = item_labels(learner, chosen)
    return ItemPCA(chosen, labels, coordinates * flip, explained[:n_components])


def pca_extremes(pca: ItemPCA, component: int = 0, n: int = 10) -> pd.DataFrame:
    """The ``n`` items at each end of a component: columns ``low`` and ``high`` titles."""
    order = np.argsort(pca.coordinates[:, component], kind="stable")
    return pd.DataFrame({"low end": pca.labels[order[:n]], "high end": pca.labels[order[::-1][:n]]})


def similar_items(
    learner: Learner,
    item: Any,
    *,
    k: int = 10,
    metric: Literal["cosine", "dot"] = "cosine",
    min_ratings: int | None = None,
) -> pd.DataFrame:
    """The ``k`` items whose factors are closest to ``item``'s (itself excluded).

    Args:
        item: raw id or title (forgiving lookup).
        metric: cosine similarity of factors, or their dot product.
        min_ratings: only items with at least this many training ratings.
    """
    target = find_item(learner, item)
    factors = torch.from_numpy(item_factors(learner))
    scores = factors @ factors[target]
    if metric == "cosine":
        norms = factors.norm(dim=1).clamp(min=1e-12)
        scores = scores / (norms * norms[target])
    elif metric != "dot":
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    scores[target] = -torch.inf
    if min_ratings is not None:
        rare = torch.from_numpy(learner.train_ratings.item_counts() < min_ratings)
        scores[rare] = -torch.inf
    top = torch.topk(scores, min(k, len(scores) - 1))
    picked = top.indices.numpy()
    stats = item_statistics(learner).iloc[picked]
    return pd.DataFrame(
        {"item": learner.items.id_of(picked), "title": item_labels(learner, picked),
         "similarity": top.values.numpy(), "ratings": stats["ratings"].to_numpy()}
    )  # fmt: skip


def top_items_by_bias(learner: Learner, k: int = 10, *, min_ratings: int = 1) -> pd.DataFrame:
    """The ``k`` items with the highest learned bias, among items with enough ratings."""
    table = item_biases(learner, among=None)
    table = table[table.ratings >= min_ratings]
    return table.tail(k)[::-1].reset_index(drop=True)
