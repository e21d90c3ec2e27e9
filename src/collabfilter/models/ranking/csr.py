"""Products of sparse rows (:class:`~collabfilter.data.csr.SparseRows`): EASE's Gram
matrix."""

from __future__ import annotations

import torch
from torch import Tensor

from collabfilter.data.csr import SparseRows


def gram(matrix: SparseRows, block_rows: int = 256) -> Tensor:
    """``X^T X`` as a dense ``(cols, cols)`` float32 from the CSR rows of ``X``.

    Sparse times sparse, a block of rows at a time: the work follows ``sum_u n_u^2``
    (the pairs of items each user rated), not users x items^2, and each block's sparse
    product is added into its rows of the result (several times faster than torch's
    CSR ``to_dense``).
    """
    transposed = matrix.transpose()
    right = matrix.to_torch()
    n = matrix.n_cols
    result = torch.empty(n, n)
    for start in range(0, n, block_rows):
        rows = torch.arange(start, min(start + block_rows, n))
        product = torch.sparse.mm(transposed.select(rows).to_torch(), right)
        result[start : start + len(rows)].zero_().add_(product)
    return result
