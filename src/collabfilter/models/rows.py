"""Row lookups whose gradients touch only the rows a batch used.

An embedding table of 162k users x 64 factors has 10M entries; a batch touches a few
thousand rows. These autograd functions return gradients as uncoalesced sparse COO
tensors (one row of values per lookup), which :mod:`collabfilter.sgd.optim` applies
with a single ``index_add_``: per step the cost follows the batch, not the table.

``row_dot`` fuses the lookup of both factor rows with their dot product, and writes
its gradient in closed form (``d(p.q)/dp = q``): a generic autograd graph of gather ->
multiply -> sum is slower on the CPU. Both functions are checked against autograd's own
gradients in the tests.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.errors import ModelFileError


def _sparse_rows(indices: Tensor, values: Tensor, shape: torch.Size) -> Tensor:
    """Gradient of a table as a sparse tensor: row ``indices[k]`` gets ``values[k]``."""
    return torch.sparse_coo_tensor(
        indices.reshape(1, -1), values, shape, check_invariants=False, is_coalesced=False
    )


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, table: Tensor, indices: Tensor) -> Tensor:
        ctx.save_for_backward(indices)
        ctx.table_shape = table.shape
        return table.index_select(0, indices)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        (indices,) = ctx.saved_tensors
        return _sparse_rows(indices, grad.contiguous(), ctx.table_shape), None


class _RowDot(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, left: Tensor, right: Tensor, left_idx: Tensor, right_idx: Tensor
    ) -> Tensor:
        left_rows = left.index_select(0, left_idx)
        right_rows = right.index_select(0, right_idx)
        ctx.save_for_backward(left_rows, right_rows, left_idx, right_idx)
        ctx.shapes = (left.shape, right.shape)
        dots: Tensor = torch.linalg.vecdot(left_rows, right_rows)
        return dots

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        left_rows, right_rows, left_idx, right_idx = ctx.saved_tensors
        left_shape, right_shape = ctx.shapes
        scale = grad.unsqueeze(1)
        # The saved rows are private copies made by index_select: scale them in place
        # instead of allocating two more (batch x factors) tensors.
        grad_left = right_rows.mul_(scale) if ctx.needs_input_grad[0] else None
        grad_right = left_rows.mul_(scale) if ctx.needs_input_grad[1] else None
        return (
            None if grad_left is None else _sparse_rows(left_idx, grad_left, left_shape),
            None if grad_right is None else _sparse_rows(right_idx, grad_right, right_shape),
            None,
            None,
        )


def gather_rows(table: Tensor, indices: Tensor) -> Tensor:
    """``table[indices]`` with a sparse, row-wise gradient for ``table``."""
    return _GatherRows.apply(table, indices)  # type: ignore[no-any-return,no-untyped-call]


def row_dot(left: Tensor, right: Tensor, left_idx: Tensor, right_idx: Tensor) -> Tensor:
    """``(left[left_idx] * right[right_idx]).sum(-1)`` with sparse row gradients."""
    return _RowDot.apply(left, right, left_idx, right_idx)  # type: ignore[no-any-return,no-untyped-call]


def check_rows(rows: SparseRows, n_cols: int, name: str) -> None:
    """Refuse CSR buffers that do not describe a matrix: pointers rising from 0 to the
    number of entries, column indices in range.

    Raises:
        ModelFileError: naming the buffers and what is wrong.
    """
    indptr, indices = rows.indptr, rows.indices
    if indptr.dtype != INDEX or indices.dtype != INDEX:
        raise ModelFileError(f"{name} indices must be int64")
    if indptr.numel() < 1 or int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel():
        raise ModelFileError(f"{name} row pointers must run from 0 to {indices.numel()}")
    if bool((indptr[1:] < indptr[:-1]).any()):
        raise ModelFileError(f"{name} row pointers must not decrease")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        raise ModelFileError(f"{name} column indices must lie in [0, {n_cols})")
