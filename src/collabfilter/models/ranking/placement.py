"""New items in a top-N model: an item with features and no interactions is placed as
the similarity-weighted average of the rated items whose features are most like its own.

A ranking model's scores are linear in its item columns (EASE's weights, item-kNN's
similarities, iALS's item factors), so each model writes a new item's column as that
average of its neighbours' columns (:meth:`TopNModel.place_items`): a user's score of
the new item is then the weighted average of their scores of those rated items, and
scoring, explanations and model files need nothing new. Encoded feature rows have norm
one, so their dot products are cosines.
"""

from __future__ import annotations

import torch
from torch import Tensor

from collabfilter.data.csr import INDEX, SparseRows

NEIGHBOURS = 100
"""Rated items a new item averages (more where they tie): enough that one odd neighbour
weighs little (on ml-100k's new films 50 and 200 ranked them alike, 10 clearly worse)."""

BLOCK_ENTRIES = 1 << 24
"""Entries of a block's dense matrices (its feature rows, its similarities to every
rated item: 64 MB of float32 each, and a few temporaries of the same size): new items
are taken in blocks of this many over the wider of the two."""


def feature_placement(
    features: SparseRows, rated: Tensor, n_neighbours: int = NEIGHBOURS
) -> SparseRows:
    """Rows ``(items, items)``: row ``c`` of an item without interactions (``~rated``)
    and with features holds its ``n_neighbours`` most similar rated items (positive
    cosine only), weights proportional to the cosines and summing to one; every other
    row is empty. Rated items as similar as the ``n_neighbours``-th are all kept: with
    categorical features many items tie (the same genres and year), and no index order
    should pick among them.

    Args:
        features: encoded item features, one row per item (norm one or empty).
        rated: boolean, per item, whether it has interactions.
        n_neighbours: rated items each new item averages.
    """
    n_items = features.n_rows
    if rated.shape != (n_items,):
        raise ValueError(f"rated must have one entry per item ({n_items})")
    new = torch.nonzero(~rated & (features.lengths() > 0)).flatten()
    sources = torch.nonzero(rated).flatten()
    rows, cols, values = [], [], []
    if len(new) and len(sources):
        known = features.select(sources).to_torch()
        width = min(n_neighbours, len(sources))
        step = max(1, BLOCK_ENTRIES // max(len(sources), features.n_cols))
        for start in range(0, len(new), step):
            block = new[start : start + step]
            dense = features.select(block).to_dense()
            cosines = torch.sparse.mm(known, dense.T).T  # (block, rated)
            edge = torch.topk(cosines, width, dim=1).values[:, -1:]  # the k-th cosine
            weights = torch.where((cosines >= edge) & (cosines > 0), cosines, 0.0)
            totals = weights.sum(1, keepdim=True)
            weights = torch.where(totals > 0, weights / totals.clamp(min=1e-30), weights)
            block_row, position = torch.nonzero(weights, as_tuple=True)
            rows.append(block[block_row])
            cols.append(sources[position])
            values.append(weights[block_row, position])
    if not rows:
        empty = torch.zeros(0, dtype=INDEX)
        return SparseRows.from_pairs(empty, empty, torch.zeros(0), n_items, n_items)
    return SparseRows.from_pairs(
        torch.cat(rows), torch.cat(cols), torch.cat(values), n_items, n_items
    )
