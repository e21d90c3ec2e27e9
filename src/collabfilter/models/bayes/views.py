"""The training ratings as the Gibbs sampler reads them: CSR matrices built once.

Each side (users, items) gets its ``own x other`` pattern with three value arrays
(ones for the Gram matrices, the ratings for the moments, ``|N(own)|^-1/2`` for the
implicit term ``M``) and ``M^T`` in the other side's layout; all share two sorts of
the ratings. int32 indices: torch's CPU sparse products take a faster path with them
than with int64 (``docs/tuning.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from collabfilter.errors import DataError
from collabfilter.runtime import quiet_csr


@dataclass(frozen=True)
class RatingViews:
    """The training ratings seen from one side: its rows, the other side's columns,
    as CSR matrices sharing one index structure (the sampler's only view of them)."""

    ones: Tensor  # CSR (own, other), 1 per rating
    ratings: Tensor  # CSR (own, other), the ratings
    implicit: Tensor  # CSR (own, other), |N(own)|^-1/2 per rating: M
    implicit_t: Tensor  # CSR (other, own), M^T
    counts: Tensor  # ratings per own row, float64
    rating_sums: Tensor  # sum of ratings per own row, float64


def csr_layout(rows: Tensor, cols: Tensor, n_rows: int, n_cols: int) -> tuple[Tensor, Tensor]:
    """(row pointers, storage order) of the pairs sorted by row then column."""
    order = torch.argsort(rows.long() * n_cols + cols.long())
    pointers = torch.zeros(n_rows + 1, dtype=torch.int64, device=rows.device)
    pointers[1:] = torch.cumsum(torch.bincount(rows.long(), minlength=n_rows), 0)
    return pointers.to(torch.int32), order


def build_views(
    users: Tensor, items: Tensor, values: Tensor, n_users: int, n_items: int
) -> tuple[RatingViews, RatingViews]:
    """The user side's and the item side's views of int64 ``users``, ``items`` and
    float32 ``values``."""
    quiet_csr()
    by_user = csr_layout(users, items, n_users, n_items)
    by_item = csr_layout(items, users, n_items, n_users)
    return (
        _views(users, items, values, by_user, by_item),
        _views(items, users, values, by_item, by_user),
    )


def _views(
    own: Tensor,
    other: Tensor,
    values: Tensor,
    layout: tuple[Tensor, Tensor],
    back_layout: tuple[Tensor, Tensor],
) -> RatingViews:
    """CSR views of the ratings with this side's rows (``layout``) and with the
    other side's (``back_layout``, for ``M^T``)."""
    (pointers, order), (back, back_order) = layout, back_layout
    n_own, n_other = pointers.shape[0] - 1, back.shape[0] - 1
    columns = other[order].to(torch.int32)
    counts = torch.bincount(own, minlength=n_own).double()
    own_scale = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), 0).float()
    back_columns = own[back_order].to(torch.int32)

    def csr(ptr: Tensor, col: Tensor, data: Tensor, size: tuple[int, int]) -> Tensor:
        return torch.sparse_csr_tensor(ptr, col, data, size=size, check_invariants=False)

    sorted_own = own[order]
    return RatingViews(
        ones=csr(pointers, columns, torch.ones_like(values), (n_own, n_other)),
        ratings=csr(pointers, columns, values[order], (n_own, n_other)),
        implicit=csr(pointers, columns, own_scale[sorted_own], (n_own, n_other)),
        implicit_t=csr(back, back_columns, own_scale[own[back_order]], (n_other, n_own)),
        counts=counts,
        rating_sums=torch.zeros(n_own, dtype=torch.float64, device=own.device).index_add_(
            0, own, values.double()
        ),
    )


def check_ratings(
    user_idx: Tensor, item_idx: Tensor, rating: Tensor, n_users: int, n_items: int
) -> None:
    n = rating.shape[0] if rating.ndim == 1 else -1
    if n < 1 or user_idx.shape != (n,) or item_idx.shape != (n,):
        raise DataError(
            "user_idx, item_idx and rating must be 1-d tensors of one non-zero length, got "
            f"shapes {tuple(user_idx.shape)}, {tuple(item_idx.shape)}, {tuple(rating.shape)}"
        )
    for name, idx, size in (("user_idx", user_idx, n_users), ("item_idx", item_idx, n_items)):
        if int(idx.min()) < 0 or int(idx.max()) >= size:
            raise DataError(
                f"{name} must lie in [0, {size}), got [{int(idx.min())}, {int(idx.max())}]"
            )
    if not bool(torch.isfinite(rating).all()):
        raise DataError("ratings must be finite")


def link(
    side: RatingViews, features: Tensor | None, implicit: bool
) -> tuple[Tensor, Tensor] | None:
    """The side's link matrix ``L`` and ``L^T``: the implicit pattern ``M`` (when
    ``implicit``), then the features ``F`` as more columns; None with neither."""
    if features is None:
        return (side.implicit, side.implicit_t) if implicit else None
    n_own = side.implicit.shape[0]
    if features.shape[0] != n_own:
        raise DataError(f"features have {features.shape[0]} rows for {n_own} rows of ratings")
    parts = [_triplets(side.implicit)] if implicit else []
    width = side.implicit.shape[1] if implicit else 0
    rows, columns, values = _triplets(features)
    parts.append((rows, columns + width, values))
    rows, columns, values = (torch.cat(p) for p in zip(*parts, strict=True))
    n_columns = width + features.shape[1]
    return (
        _csr(rows, columns, values, n_own, n_columns),
        _csr(columns, rows, values, n_columns, n_own),
    )


def _triplets(matrix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(row, column, value) of each stored entry of a CSR matrix, int64 indices."""
    pointers = matrix.crow_indices().long()
    rows = torch.repeat_interleave(torch.arange(len(pointers) - 1, device=pointers.device),
                                   pointers.diff())  # fmt: skip
    return rows, matrix.col_indices().long(), matrix.values()


def _csr(rows: Tensor, columns: Tensor, values: Tensor, n_rows: int, n_columns: int) -> Tensor:
    pointers, order = csr_layout(rows, columns, n_rows, n_columns)
    return torch.sparse_csr_tensor(
        pointers, columns[order].to(torch.int32), values[order], size=(n_rows, n_columns),
        check_invariants=False,
    )  # fmt: skip
