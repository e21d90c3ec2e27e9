"""Item-kNN's loops compiled by numba: every item's nearest neighbours, their rows by
neighbour, and the scores of a block of users.

Both follow the sparsity of the data instead of a dense product. The neighbours of
item ``i`` are found by walking the users who rated ``i`` and the items each of them
rated: ``sum_u n_u^2`` additions for the whole catalogue, each item's co-counts in one
thread's accumulator, and only the items that co-occur with ``i`` are ranked (a
partition to the list's width, then one within it for each shorter width asked for).
Scores walk each user's rated items and their rows of kept similarities. Items (users)
are cut into a fixed number of chunks shared among the threads; every item's list
(user's scores) is computed by one thread in a fixed order, so results do not depend on
the thread count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.runtime import compile_parallel, use_threads

prange = range  # numba's prange once compiled (collabfilter.runtime.compile_parallel)

CHUNKS = 64
"""Pieces the items (users) are cut into, whatever the number of threads."""


def _neighbour_lists(
    user_ptr: np.ndarray,
    user_items: np.ndarray,
    user_values: np.ndarray,
    item_ptr: np.ndarray,
    item_users: np.ndarray,
    item_values: np.ndarray,
    inverse_norms: np.ndarray,
    cuts: np.ndarray,
    out_items: np.ndarray,
    out_values: np.ndarray,
) -> None:
    n_items, width = out_items.shape

    def precedes(value: float, item: int, other_value: float, other_item: int) -> bool:
        """The ranking of a list: higher cosine first, ties to the lower item index (items
        in a list are distinct, so no two entries tie)."""
        return value > other_value or (value == other_value and item < other_item)

    def select_best(values: np.ndarray, items: np.ndarray, count: int, m: int) -> None:
        """Reorder the first ``count`` entries of ``values`` and ``items`` in place so that
        their first ``m`` are the ``m`` best (``precedes``): a quickselect with a
        median-of-three pivot, linear on average and with no allocation."""
        lo, hi, target = 0, count - 1, m - 1
        while lo < hi:
            mid = (lo + hi) // 2
            for a, b in ((lo, mid), (mid, hi), (lo, mid)):  # median of three to mid
                if precedes(values[b], items[b], values[a], items[a]):
                    values[a], values[b] = values[b], values[a]
                    items[a], items[b] = items[b], items[a]
            pivot_value, pivot_item = values[mid], items[mid]
            i, j = lo, hi
            while i <= j:
                while precedes(values[i], items[i], pivot_value, pivot_item):
                    i += 1
                while precedes(pivot_value, pivot_item, values[j], items[j]):
                    j -= 1
                if i <= j:
                    values[i], values[j] = values[j], values[i]
                    items[i], items[j] = items[j], items[i]
                    i += 1
                    j -= 1
            if target <= j:
                hi = j
            elif target >= i:
                lo = i
            else:
                return

    for chunk in prange(CHUNKS):
        sums = np.zeros(n_items, np.float64)
        last_seen = np.full(n_items, -1, np.int64)
        touched = np.empty(n_items, np.int64)
        cosines = np.empty(n_items, np.float64)
        for i in range(chunk * n_items // CHUNKS, (chunk + 1) * n_items // CHUNKS):
            count = 0
            for p in range(item_ptr[i], item_ptr[i + 1]):
                user, weight = item_users[p], item_values[p]
                for q in range(user_ptr[user], user_ptr[user + 1]):
                    j = user_items[q]
                    if j == i:
                        continue
                    if last_seen[j] != i:
                        last_seen[j] = i
                        sums[j] = 0.0
                        touched[count] = j
                        count += 1
                    sums[j] += weight * user_values[q]
            for t in range(count):
                cosines[t] = sums[touched[t]] * inverse_norms[i] * inverse_norms[touched[t]]
            kept = min(width, count)
            if count > width:
                select_best(cosines, touched, count, width)
            prefix = kept
            for cut in cuts:  # longest first: each prefix is cut from the one before
                if cut < prefix:
                    select_best(cosines, touched, prefix, cut)
                    prefix = cut
            for rank in range(kept):
                out_items[i, rank] = touched[rank]
                out_values[i, rank] = cosines[rank]
            for rank in range(kept, width):
                out_items[i, rank] = i
                out_values[i, rank] = 0.0


def _score_rows(
    row_ptr: np.ndarray,
    row_items: np.ndarray,
    row_values: np.ndarray,
    similar_ptr: np.ndarray,
    similar_items: np.ndarray,
    similar_values: np.ndarray,
    out: np.ndarray,
) -> None:
    n_rows = len(row_ptr) - 1
    for chunk in prange(CHUNKS):
        for r in range(chunk * n_rows // CHUNKS, (chunk + 1) * n_rows // CHUNKS):
            scores = out[r]
            scores[:] = 0.0
            for p in range(row_ptr[r], row_ptr[r + 1]):
                j, weight = row_items[p], row_values[p]
                for q in range(similar_ptr[j], similar_ptr[j + 1]):
                    scores[similar_items[q]] += weight * similar_values[q]


def _by_neighbour(
    items: np.ndarray, cosines: np.ndarray, width: int, indptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n_items = items.shape[0]
    for i in range(n_items):
        for rank in range(width):
            if cosines[i, rank] > 0:
                indptr[items[i, rank] + 1] += 1
    for j in range(n_items):
        indptr[j + 1] += indptr[j]
    targets = np.empty(indptr[n_items], np.int64)
    values = np.empty(indptr[n_items], np.float32)
    filled = indptr[:-1].copy()
    for i in range(n_items):  # targets in ascending order within each row
        for rank in range(width):
            if cosines[i, rank] > 0:
                j = items[i, rank]
                targets[filled[j]], values[filled[j]] = i, cosines[i, rank]
                filled[j] += 1
    return targets, values


@cache
def _compiled(function: Callable[..., Any], parallel: bool = True) -> Callable[..., Any]:
    """``function`` compiled on first use (:func:`collabfilter.runtime.compile_parallel`)."""
    return compile_parallel(function, parallel=parallel)  # type: ignore[no-any-return]


def _arrays(rows: SparseRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rows.indptr.numpy(), rows.indices.numpy(), rows.values.numpy()


def neighbour_lists(
    rows: SparseRows, width: int, cuts: Sequence[int] = ()
) -> tuple[Tensor, Tensor]:
    """Every item's ``width`` most similar items by cosine of the columns of ``rows``
    (an item is not its own neighbour), ties to the lower index: ``(items, cosines)``,
    each ``(n_items, width)``; where an item co-occurs with fewer items, the list ends
    with the item itself at cosine 0.

    Lists are not sorted (only the set a model keeps matters, and sorting was most of
    the cost): for each of ``cuts``, the first ``cut`` entries of a list are its
    ``cut`` most similar items, so one pass serves a grid of neighbour counts."""
    if not bool(torch.isfinite(rows.values).all()):
        raise ValueError("interaction weights must be finite")
    n_items = rows.n_cols
    norms = torch.zeros(n_items, dtype=torch.float64)
    norms.index_add_(0, rows.indices, rows.values.double() ** 2)
    inverse = torch.where(norms > 0, norms.rsqrt(), torch.zeros((), dtype=torch.float64))
    items = np.empty((n_items, width), np.int64)
    cosines = np.empty((n_items, width), np.float32)
    shorter = np.array(sorted({c for c in cuts if 0 < c < width}, reverse=True), np.int64)
    use_threads()
    _compiled(_neighbour_lists)(
        *_arrays(rows), *_arrays(rows.transpose()), inverse.numpy(), shorter, items, cosines
    )
    return torch.from_numpy(items).to(INDEX), torch.from_numpy(cosines)


def by_neighbour(items: Tensor, cosines: Tensor, width: int) -> SparseRows:
    """The first ``width`` entries of each item's list (those with a positive cosine) as
    rows by neighbour: row ``j`` holds the items that have ``j`` among their neighbours,
    in ascending order, with the cosines."""
    n_items = items.shape[0]
    indptr = np.zeros(n_items + 1, np.int64)
    targets, values = _compiled(_by_neighbour, parallel=False)(
        items.numpy(), cosines.numpy(), width, indptr
    )
    return SparseRows(
        torch.from_numpy(indptr), torch.from_numpy(targets), torch.from_numpy(values), n_items
    )


def score_rows(rows: SparseRows, similarities: SparseRows) -> Tensor:
    """``rows @ similarities`` as a dense ``(rows, n_items)`` float32."""
    out = np.empty((rows.n_rows, similarities.n_cols), np.float32)
    use_threads()
    _compiled(_score_rows)(*_arrays(rows), *_arrays(similarities), out)
    return torch.from_numpy(out)
