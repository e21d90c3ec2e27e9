"""Sparse rows (CSR) as three tensors: who rated what for the ranking models, and
side features encoded one row per id."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from collabfilter.runtime import quiet_csr

INDEX = torch.int64
"""Index dtype of the CSR buffers (torch's sparse kernels want crow and col alike)."""


@dataclass(frozen=True)
class SparseRows:
    """A CSR matrix as three tensors: row ``r`` holds ``indices[indptr[r]:indptr[r+1]]``
    with ``values`` alongside (indices sorted within a row, no repeats)."""

    indptr: Tensor
    indices: Tensor
    values: Tensor
    n_cols: int

    @classmethod
    def from_pairs(
        cls, rows: Tensor, cols: Tensor, values: Tensor, n_rows: int, n_cols: int
    ) -> SparseRows:
        """CSR from (row, col, value) triples; repeated pairs are an error.

        Raises:
            ValueError: on misaligned inputs, indices out of range or repeated pairs.
        """
        if not rows.shape == cols.shape == values.shape or rows.ndim != 1:
            raise ValueError("rows, cols and values must be 1-D and of one length")
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n_rows):
            raise ValueError(f"row indices must lie in [0, {n_rows})")
        if len(cols) and (int(cols.min()) < 0 or int(cols.max()) >= n_cols):
            raise ValueError(f"column indices must lie in [0, {n_cols})")
        key = rows.to(INDEX) * n_cols + cols.to(INDEX)
        order = torch.argsort(key)
        key = key[order]
        if len(key) > 1 and bool((key[1:] == key[:-1]).any()):
            raise ValueError("repeated (row, column) pairs; resolve duplicates first")
        counts = torch.bincount(rows.to(INDEX), minlength=n_rows)
        indptr = torch.cat([torch.zeros(1, dtype=INDEX), torch.cumsum(counts, 0)])
        return cls(indptr, cols.to(INDEX)[order], values.float()[order], n_cols)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> Tensor:
        """Entries per row, int64."""
        return self.indptr[1:] - self.indptr[:-1]

    def positions(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """For the given rows: each entry's position in the block (0..len(rows)-1) and
        its index into ``indices``/``values``, without a loop over rows."""
        device = self.indptr.device
        rows = rows.to(device, INDEX)
        starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        block_row = torch.repeat_interleave(torch.arange(len(rows), device=device), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        offset = torch.arange(int(lengths.sum()), device=device) - first[block_row]
        return block_row, starts[block_row] + offset

    def select(self, rows: Tensor) -> SparseRows:
        """The given rows (in that order) as a new CSR."""
        block_row, picks = self.positions(rows)
        lengths = torch.bincount(block_row, minlength=len(rows))
        indptr = torch.cat([torch.zeros(1, dtype=INDEX), torch.cumsum(lengths, 0)])
        return SparseRows(indptr, self.indices[picks], self.values[picks], self.n_cols)

    def to_torch(self) -> Tensor:
        """A torch sparse CSR tensor sharing these buffers."""
        quiet_csr()
        return torch.sparse_csr_tensor(
            self.indptr, self.indices, self.values, size=(self.n_rows, self.n_cols),
            check_invariants=False,
        )  # fmt: skip

    def to_torch_coo(self) -> Tensor:
        """A torch sparse COO tensor of the same matrix: times a wide dense matrix, torch's
        CPU kernel for COO beats the one for CSR (CSR wins for narrow ones)."""
        rows = torch.repeat_interleave(torch.arange(self.n_rows), self.lengths())
        return torch.sparse_coo_tensor(
            torch.stack([rows, self.indices]), self.values, (self.n_rows, self.n_cols),
            is_coalesced=True, check_invariants=False,
        )  # fmt: skip

    def transpose(self) -> SparseRows:
        """The transposed matrix in CSR (columns become rows)."""
        rows = torch.repeat_interleave(torch.arange(self.n_rows), self.lengths())
        return SparseRows.from_pairs(self.indices, rows, self.values, self.n_cols, self.n_rows)

    def to_dense(self) -> Tensor:
        """Dense ``(rows, cols)`` float32 (only for small blocks)."""
        dense = torch.zeros(self.n_rows * self.n_cols)
        rows = torch.repeat_interleave(torch.arange(self.n_rows), self.lengths())
        dense[rows * self.n_cols + self.indices] = self.values
        return dense.view(self.n_rows, self.n_cols)
