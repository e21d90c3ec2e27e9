"""What the model learned: biases, factors, their principal components, neighbours.

Everything is addressed by raw id or by title. Title lookup forgives case, a missing
year and MovieLens' trailing articles ("Star Wars" finds "Star Wars (1977)", "the
godfather" finds "Godfather, The (1972)"); an ambiguous or unknown title raises an
error that lists the closest matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from collabfilter.data.titles import TitleIndex
from collabfilter.errors import AmbiguousTitleError, CollabFilterError, ConfigError, UnknownIdError
from collabfilter.fitted import FittedModel

_LISTED = 10


def item_labels(model: FittedModel, item_idx: Any) -> np.ndarray:
    """Titles (or raw ids as text) of item indices: names to print or plot."""
    return model.items.labels(np.asarray(item_idx))


def item_titles(model: FittedModel, item_idx: Any) -> np.ndarray:
    """Titles of item indices, None where the data gave none: for a ``title`` column,
    where an id as text would pass for a title (object array)."""
    item_idx = np.asarray(item_idx, dtype=np.int64)
    titles = np.full(len(item_idx), None, dtype=object)
    known = model.items.titles
    if known is not None:
        found = known[item_idx]
        titled = ~pd.isna(found)
        titles[titled] = found[titled]
    return titles


def title_index(model: FittedModel) -> TitleIndex:
    """The model's title index, built on first use and kept (searches are frequent)."""
    index = model.cache.get("titles")
    if index is None:
        titles = model.items.titles
        if titles is None:
            titles = np.full(len(model.items), None, dtype=object)
        index = model.cache["titles"] = TitleIndex(titles, model.item_counts())
    assert isinstance(index, TitleIndex)
    return index


def find_item(model: FittedModel, query: Any, *, most_rated: bool = False) -> int:
    """The index of an item given by raw id, exact title, or a forgiving title.

    Titles match forgivingly (case, year, punctuation, articles, then every word typed,
    then a substring; see :mod:`collabfilter.data.titles`): "star wars" finds "Star Wars
    (1977)", and in the CSV releases "Star Wars: Episode IV - A New Hope (1977)" among
    the other episodes.

    Args:
        model: a trained or loaded model.
        query: a raw item id or a title.
        most_rated: when several titles match equally well, take the most rated one
            instead of raising.

    Raises:
        AmbiguousTitleError: when several items match equally well (lists them, most
            rated first).
        UnknownIdError: when nothing matches (lists the closest titles).
    """
    items = model.items
    if items.contains([query])[0]:
        return items.index_of(query)
    if items.titles is None:
        raise UnknownIdError(f"unknown item id {query!r} (the data has no titles to search)")
    found = title_index(model).match(str(query))
    if found.unique or (most_rated and len(found.item_idx) and found.how != "close"):
        return int(found.item_idx[0])
    listed = "; ".join(f"{items.ids[i]}: {items.titles[i]}" for i in found.item_idx[:_LISTED])
    if found.how in ("exact", "words", "substring"):
        more = len(found.item_idx) - _LISTED
        tail = f" and {more} more" if more > 0 else ""
        raise AmbiguousTitleError(
            f"title {query!r} matches {len(found.item_idx)} items, most rated first "
            f"({listed}{tail}); use an id or a fuller title"
        )
    hint = f"; closest titles: {listed}" if listed else ""
    raise UnknownIdError(f"no item with id or title {query!r}{hint}")


def search_items(model: FittedModel, query: str, *, k: int = 10) -> pd.DataFrame:
    """Up to ``k`` items matching ``query`` (id, title or part of a title), best match
    first and most rated first within a match: the search box of the service."""
    rows: list[int] = []
    items = model.items
    if items.contains([query])[0]:
        rows.append(items.index_of(query))
    if items.titles is not None and str(query).strip():
        found = title_index(model).match(str(query))
        rows += [int(i) for i in found.item_idx if int(i) not in rows]
    picked = np.asarray(rows[:k], dtype=np.int64)
    counts = model.item_counts()
    return pd.DataFrame(
        {"item": items.id_of(picked), "title": item_labels(model, picked),
         "ratings": counts[picked]}
    )  # fmt: skip


def find_items(model: FittedModel, queries: list[Any]) -> np.ndarray:
    """:func:`find_item` for several queries (int64 indices)."""
    return np.array([find_item(model, q) for q in queries], dtype=np.int64)


def _effects(model: FittedModel) -> tuple[np.ndarray, np.ndarray]:
    """Each user's and item's learned bias (the family's ``effects``)."""
    with torch.no_grad():
        effects = model.model.effects()
    if effects is None:
        raise CollabFilterError(f"{type(model.model).__name__} has no biases to show")
    user, item = effects
    return user.detach().float().cpu().numpy(), item.detach().float().cpu().numpy()


def item_statistics(model: FittedModel) -> pd.DataFrame:
    """Per item index: title, number of training ratings and mean training rating."""
    data = model.interactions
    return pd.DataFrame(
        {"item": model.items.ids, "title": model.items.labels(), "ratings": model.item_counts(),
         "mean rating": data.item_means()}
    )  # fmt: skip


def _sorted_by_bias(table: pd.DataFrame, among: int | None) -> pd.DataFrame:
    if among is not None:
        table = table.nlargest(among, "ratings", keep="first")
    return table.sort_values("bias", kind="stable").reset_index(drop=True)


def item_biases(model: FittedModel, *, among: int | None = 1000) -> pd.DataFrame:
    """Every item's learned bias (``b_i`` plus its activity prior) beside its mean
    rating and count, sorted by bias, among the ``among`` most rated items."""
    _, bias = _effects(model)
    return _sorted_by_bias(item_statistics(model).assign(bias=bias), among)


def user_biases(model: FittedModel, *, among: int | None = None) -> pd.DataFrame:
    """Every user's learned bias beside their mean rating and count, sorted by bias."""
    data = model.interactions
    bias, _ = _effects(model)
    table = pd.DataFrame(
        {"user": model.users.ids, "ratings": data.user_counts(), "mean rating": data.user_means(),
         "bias": bias}
    )  # fmt: skip
    return _sorted_by_bias(table, among)


def item_factors(model: FittedModel) -> np.ndarray:
    """What the model learned of each item as a vector (factors, embeddings, posterior
    means), ``(items, d)`` float32, on the CPU.

    Raises:
        CollabFilterError: for models that relate items directly (EASE, item-kNN).
    """
    with torch.no_grad():
        vectors = model.model.item_vectors()
    return np.asarray(vectors.detach().float().cpu().numpy(), dtype=np.float32)


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


def item_pca(model: FittedModel, n_components: int = 3, *, among: int | None = 1000) -> ItemPCA:
    """PCA of the item factors of the ``among`` most rated items (one SVD, centred).

    Signs are fixed so that each component's largest coordinate is positive.

    Raises:
        ConfigError: for ``among`` below 2 (a single item has no spread).
    """
    if among is not None and among < 2:
        raise ConfigError(f"among must be at least 2 items, got {among}")
    factors = item_factors(model)
    counts = model.item_counts()
    order = np.argsort(-counts, kind="stable")
    chosen = order[: among or len(order)]
    centred = factors[chosen] - factors[chosen].mean(axis=0)
    n_components = min(n_components, *centred.shape)
    u, s, _ = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    coordinates = u[:, :n_components] * s[:n_components]
    flip = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), range(n_components)])
    explained = s**2 / np.sum(s**2)
    labels = item_labels(model, chosen)
    return ItemPCA(chosen, labels, coordinates * flip, explained[:n_components])


def pca_extremes(pca: ItemPCA, component: int = 0, n: int = 10) -> pd.DataFrame:
    """The ``n`` items at each end of a component: columns ``low`` and ``high`` titles."""
    order = np.argsort(pca.coordinates[:, component], kind="stable")
    return pd.DataFrame({"low end": pca.labels[order[:n]], "high end": pca.labels[order[::-1][:n]]})


def similar_items(
    model: FittedModel,
    item: Any,
    *,
    k: int = 10,
    metric: Literal["cosine", "dot"] = "cosine",
    min_ratings: int | None = None,
) -> pd.DataFrame:
    """The ``k`` items closest to ``item`` (itself excluded): by the cosine of item
    vectors, or a ranking model's own item-item relation.

    Args:
        item: raw id or title (forgiving lookup).
        metric: the family's similarity (cosine of item vectors), or the dot product
            of item vectors.
        min_ratings: only items with at least this many training ratings; None (the
            default, and what the CLI and the service pass when not asked) takes
            :func:`rarely_rated`'s bound for the data; 1 keeps every item.

    Returns:
        Columns item, title, similarity, ratings, best first; ``attrs["min_ratings"]``
        holds the bound applied.

    Raises:
        ValueError: for a bound below 1 or an unknown metric.
    """
    target = find_item(model, item, most_rated=True)
    if metric == "cosine":
        with torch.no_grad():
            scores = model.model.similar_items(target).detach().float().cpu().clone()
    elif metric == "dot":
        factors = torch.from_numpy(item_factors(model))
        scores = factors @ factors[target]
    else:
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    return _top_similar(model, target, scores, k, min_ratings)


RARE_SHARE = 0.05
"""The share of all training ratings that the most rarely rated items may hold
together before they are left out of neighbour lists by default."""


def rarely_rated(counts: np.ndarray, share: float = RARE_SHARE) -> int:
    """The fewest ratings an item needs to be shown as a neighbour by default.

    An item's vector is learned from its ratings alone: with a handful it stays near
    its initial noise, and its cosine with anything is chance (a film rated once can
    sit among Star Wars' nearest). The bound leaves out the most rarely rated items
    that together hold ``share`` of all ratings: a share of the ratings rather than a
    count, so it follows the data (a long tail of rarely rated items is cut, and
    nothing when every item is rated alike).

    Args:
        counts: training ratings per item, shape ``(items,)``.
        share: the share of ratings the left-out items may hold, in [0, 1).

    Returns:
        The bound, at least 1 (1: every item is kept).
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must lie in [0, 1), got {share}")
    ordered = np.sort(np.asarray(counts, dtype=np.int64))
    total = int(ordered.sum())
    if total == 0:
        return 1
    cumulative = np.cumsum(ordered)
    # the rarest items whose ratings stay within the share go; the next count is kept
    return max(1, int(ordered[int(np.searchsorted(cumulative, share * total, side="right"))]))


def rare_items(model: FittedModel, min_ratings: int | None) -> np.ndarray | None:
    """Items with fewer than ``min_ratings`` training ratings, the least rated first
    (None: no bound): what top-N lists and neighbour lists leave out when asked.

    Raises:
        ValueError: for a bound below 1.
    """
    if min_ratings is None:
        return None
    if min_ratings < 1:
        raise ValueError(f"min_ratings must be >= 1, got {min_ratings!r}")
    order, ordered = _items_by_count(model)
    return order[: int(np.searchsorted(ordered, min_ratings))]


def _items_by_count(model: FittedModel) -> tuple[np.ndarray, np.ndarray]:
    """Item indices from the least rated up and their counts, found once per model
    (asked for on every list): any bound's rare items are a prefix of them, where a
    result kept per bound would grow with every bound a client sends."""
    found = model.cache.get("items_by_count")
    if found is None:
        counts = model.item_counts()
        order = np.argsort(counts, kind="stable")
        found = model.cache["items_by_count"] = (order, counts[order])
    order, ordered = found
    assert isinstance(order, np.ndarray) and isinstance(ordered, np.ndarray)
    return order, ordered


def _default_min_ratings(model: FittedModel) -> int:
    """:func:`rarely_rated`'s bound for the model's training counts, found once per
    model (it sorts every item's count; the counts never change)."""
    bound = model.cache.get("rarely_rated")
    if bound is None:
        bound = model.cache["rarely_rated"] = rarely_rated(model.item_counts())
    assert isinstance(bound, int)
    return bound


def _top_similar(
    model: FittedModel,
    target: int,
    scores: torch.Tensor,
    k: int,
    min_ratings: int | None,
) -> pd.DataFrame:
    scores[target] = -torch.inf
    counts = model.item_counts()
    if min_ratings is None:
        min_ratings = _default_min_ratings(model)
    rare = rare_items(model, min_ratings)
    assert rare is not None  # a bound was set just above
    scores[torch.from_numpy(rare)] = -torch.inf
    top = torch.topk(scores, min(k, len(scores) - 1))
    kept = torch.isfinite(top.values)
    picked = top.indices[kept].numpy()
    frame = pd.DataFrame(
        {"item": model.items.id_of(picked), "title": item_labels(model, picked),
         "similarity": top.values[kept].numpy(), "ratings": counts[picked]}
    )  # fmt: skip
    frame.attrs["min_ratings"] = min_ratings
    return frame


def top_items_by_bias(model: FittedModel, k: int = 10, *, min_ratings: int = 1) -> pd.DataFrame:
    """The ``k`` items with the highest learned bias, among items with enough ratings."""
    table = item_biases(model, among=None)
    table = table[table.ratings >= min_ratings]
    return table.tail(k)[::-1].reset_index(drop=True)
