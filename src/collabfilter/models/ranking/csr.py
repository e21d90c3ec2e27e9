"""Products of sparse rows (:class:`~collabfilter.data.csr.SparseRows`): the ranking
models' Gram matrices."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from collabfilter.data.csr import SparseRows


def gram(matrix: SparseRows, block_rows: int = 256) -> Tensor:
    """``X^T X`` as a dense ``(cols, cols)`` float32 from the CSR rows of ``X``."""
    result = torch.empty(matrix.n_cols, matrix.n_cols)
    for start, block in gram_blocks(matrix, block_rows):
        result[start : start + len(block)] = block
    return result


def gram_blocks(matrix: SparseRows, block_rows: int = 256) -> Iterator[tuple[int, Tensor]]:
    """``X^T X`` by blocks of rows: ``(first row, dense (block, cols) float32)``.

    Sparse times sparse: the work follows ``sum_u n_u^2`` (the pairs of items each user
    rated), not users x items^2, and only one block is ever dense: every block is
    written into the same buffer (fresh memory per block would cost a page fault per
    page, every block), so a block is valid until the next one is drawn.
    """
    transposed = matrix.transpose()
    right = matrix.to_torch()
    n = matrix.n_cols
    buffer = torch.empty(min(block_rows, n), n)
    for start in range(0, n, block_rows):
        rows = torch.arange(start, min(start + block_rows, n))
        product = torch.sparse.mm(transposed.select(rows).to_torch(), right)
        block = buffer[: len(rows)].zero_()
        _add_csr(block, product)
        yield start, block


def _add_csr(target: Tensor, csr: Tensor) -> None:
    """``target += csr`` for a dense ``target`` (torch's CSR ``to_dense`` is slow)."""
    crow, col = csr.crow_indices(), csr.col_indices()
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1), crow[1:] - crow[:-1])
    target.view(-1).index_add_(0, rows * target.shape[1] + col, csr.values())
