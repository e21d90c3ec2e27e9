"""Item-based nearest neighbours on the interaction matrix (implicit feedback)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from collabfilter.data import RatingScale
from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.models.ranking.base import (
    InteractionWeights,
    TopNModel,
    interaction_rows,
    weights_from_settings,
)
from collabfilter.models.ranking.knn_compiled import by_neighbour, neighbour_lists, score_rows
from collabfilter.models.rows import check_rows


class ItemKNN(TopNModel):
    """Sum of the similarities of the rated items among each item's nearest neighbours::

        s(j, i) = (x_j . x_i) / (|x_j| |x_i|)        cosine of the item columns of X
        N(i)    = the n_neighbours items j != i with the largest s(j, i) > 0
        score(u, i) = sum_{j rated by u, j in N(i)} x_uj s(j, i)

    Only ``n_items x n_neighbours`` similarities are kept (as a sparse CSR matrix whose
    row ``j`` lists the items ``i`` that have ``j`` among their neighbours), so the
    model stays small for any catalogue; scoring a block of users is one compiled sparse
    product. An item without interactions placed from its features (:meth:`place_items`)
    holds instead the weighted sums of its feature-neighbours' similarities.

    Args:
        n_users, n_items, n_interactions: shapes of the history buffers.
        n_neighbours: neighbours kept per item.
        n_similarities: stored similarities (at most ``n_items * n_neighbours``, and
            more for items placed from their features: :meth:`place_items`).
        weights: how ratings became interaction weights.
    """

    kind = "item_knn"
    similarity_indptr: Tensor
    similarity_items: Tensor
    similarity_values: Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_interactions: int,
        *,
        n_neighbours: int,
        n_similarities: int = 0,
        weights: InteractionWeights | None = None,
    ) -> None:
        super().__init__(n_users, n_items, n_interactions, weights or InteractionWeights())
        if n_neighbours < 1:
            raise ValueError(f"n_neighbours must be >= 1, got {n_neighbours}")
        self.n_neighbours = int(n_neighbours)
        self.register_buffer("similarity_indptr", torch.zeros(n_items + 1, dtype=INDEX))
        self.register_buffer("similarity_items", torch.zeros(n_similarities, dtype=INDEX))
        self.register_buffer("similarity_values", torch.zeros(n_similarities))

    def similarities(self) -> SparseRows:
        """The kept similarities: row ``j``, column ``i`` holds ``s(j, i)``, j in N(i)."""
        return SparseRows(
            self.similarity_indptr, self.similarity_items, self.similarity_values, self.n_items
        )

    def set_similarities(self, similarities: SparseRows) -> None:
        self.similarity_indptr = similarities.indptr
        self.similarity_items = similarities.indices
        self.similarity_values = similarities.values

    def _place_columns(self, weights: SparseRows, targets: Tensor) -> None:
        """``s(j, c) = sum_k w_ck s(j, k)`` for each placed item ``c``: its kept
        similarities are the weighted sums of its neighbours' (rows ``j``, by
        neighbour, gain the entries of column ``c``)."""
        similarities = self.similarities()
        by_item = similarities.transpose().to_torch_coo()  # row i: s(j, i) over j
        placed = torch.sparse.mm(weights.to_torch_coo(), by_item).coalesce()
        rows, cols = placed.indices()
        old_rows = torch.repeat_interleave(torch.arange(self.n_items), similarities.lengths())
        kept = ~torch.isin(similarities.indices, targets)  # a column placed before: anew
        self.set_similarities(SparseRows.from_pairs(
            torch.cat([old_rows[kept], cols]),
            torch.cat([similarities.indices[kept], targets[rows]]),
            torch.cat([similarities.values[kept], placed.values()]), self.n_items, self.n_items,
        ))  # fmt: skip

    def score_rows(self, rows: SparseRows) -> Tensor:
        """``X_rows @ S``, ``(rows, n_items)``, following the sparsity of both."""
        return score_rows(rows, self.similarities())

    @torch.no_grad()
    def explain_many(
        self, history_item_idx: Tensor, item_idx: Tensor, ratings: Tensor | None = None
    ) -> Tensor:
        """``x_uj * s(j, i)`` for each rated item ``j`` and each item ``i`` (0 when ``j``
        is not among ``i``'s neighbours); see :class:`TopNModel`."""
        history = torch.as_tensor(history_item_idx, dtype=INDEX).reshape(-1)
        items = torch.as_tensor(item_idx, dtype=INDEX).reshape(-1)
        rows = self.new_rows(history, ratings)
        weight = rows.values[torch.searchsorted(rows.indices, history)]
        block_row, picks = self.similarities().positions(history)
        column = torch.full((self.n_items,), -1, dtype=INDEX)
        column[items] = torch.arange(len(items))
        target = column[self.similarity_items[picks]]
        hit = target >= 0
        contributions = torch.zeros(len(history), len(items))
        contributions.index_put_(
            (block_row[hit], target[hit]), self.similarity_values[picks][hit], accumulate=True
        )
        return contributions * weight.unsqueeze(1)

    def check_state(self, scale: RatingScale) -> None:
        super().check_state(scale)
        check_rows(self.similarities(), self.n_items, "similarity")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "n_neighbours": self.n_neighbours}

    def sizes(self) -> dict[str, int]:
        return {**super().sizes(), "n_similarities": len(self.similarity_items)}

    @classmethod
    def from_settings(cls, settings: dict[str, Any], sizes: dict[str, int]) -> ItemKNN:
        return cls(
            sizes["n_users"], sizes["n_items"], sizes["n_interactions"],
            n_neighbours=int(settings["n_neighbours"]),
            n_similarities=sizes["n_similarities"], weights=weights_from_settings(settings),
        )  # fmt: skip

    @staticmethod
    def memory_bytes(n_users: int, n_items: int, n_interactions: int, n_neighbours: int) -> int:
        """Peak bytes of a fit: X, its transpose and the transposition's sort, the
        neighbour lists with the kept similarities sorted from them, and each thread's
        per-item accumulators (:mod:`~collabfilter.models.ranking.knn_compiled`); no
        item x item matrix is ever held."""
        accumulators = 32 * n_items * torch.get_num_threads()
        return 72 * n_interactions + 40 * n_items * n_neighbours + accumulators


def fit_item_knn(
    user_idx: Tensor,
    item_idx: Tensor,
    n_users: int,
    n_items: int,
    *,
    n_neighbours: int,
    ratings: Tensor | None = None,
    weights: InteractionWeights | None = None,
) -> ItemKNN:
    """Fit :class:`ItemKNN`: cosine similarities of all item pairs, a block of target
    items at a time, keeping each item's ``n_neighbours`` most similar items.

    Args:
        user_idx, item_idx: one entry per interaction, shape ``(n,)`` (no repeats).
        n_users, n_items: sizes of the index spaces.
        n_neighbours: neighbours kept per item.
        ratings: float ratings, shape ``(n,)``, for ``weights``; None: all weights 1.
        weights: how ratings become interaction weights.
    """
    weights = weights or InteractionWeights()
    rows = interaction_rows(user_idx, item_idx, n_users, n_items, ratings, weights)
    return item_knn_from_rows(rows, weights, n_neighbours)


def item_knn_from_rows(rows: SparseRows, weights: InteractionWeights, n_neighbours: int) -> ItemKNN:
    """:func:`fit_item_knn` on weighted interaction rows (``weights`` made them)."""
    return item_knn_from_lists(rows, weights, NeighbourLists(rows, n_neighbours), n_neighbours)


def item_knn_from_lists(
    rows: SparseRows, weights: InteractionWeights, lists: NeighbourLists, n_neighbours: int
) -> ItemKNN:
    """:class:`ItemKNN` on ``rows`` keeping ``n_neighbours`` of the longer ``lists``
    (the same model as fitting it from scratch)."""
    model = ItemKNN(
        rows.n_rows, rows.n_cols, len(rows.indices), n_neighbours=n_neighbours, weights=weights
    )
    model.set_history(rows)
    model.set_similarities(lists.keep(n_neighbours))
    return model


class NeighbourLists:
    """Each item's most similar items (cosine, an item is not its own neighbour) for a
    grid of neighbour counts from one pass over the item pairs: the list of every
    count asked for is the beginning of the longest
    (:func:`~collabfilter.models.ranking.knn_compiled.neighbour_lists`).

    Args:
        rows: the weighted interaction rows.
        n_neighbours: the longest lists kept.
        shorter: the other neighbour counts :meth:`keep` will be asked for.
    """

    def __init__(self, rows: SparseRows, n_neighbours: int, shorter: Sequence[int] = ()) -> None:
        self.n_items = rows.n_cols
        width = self._width(n_neighbours)
        self.counts = {width} | {self._width(count) for count in shorter if count < width}
        self.items, self.values = neighbour_lists(rows, width, sorted(self.counts))

    def _width(self, n_neighbours: int) -> int:
        return max(1, min(n_neighbours, self.n_items - 1))

    def keep(self, n_neighbours: int) -> SparseRows:
        """The similarities of the ``n_neighbours`` most similar items of each item (those
        with a positive similarity), as rows by neighbour: row ``j`` holds the items
        ``j`` is a neighbour of.

        Raises:
            ValueError: for a count the lists were not cut for.
        """
        width = self._width(n_neighbours)
        if width not in self.counts:
            raise ValueError(f"lists cut for {sorted(self.counts)} neighbours cannot give {width}")
        return by_neighbour(self.items, self.values, width)
