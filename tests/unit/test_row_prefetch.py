"""The row prefetch hint (collabfilter.runtime.row_prefetch) compiles for every table
the compiled loops gather from and changes nothing: it is a hint to the CPU only."""

from __future__ import annotations

import numpy as np
import pytest

from collabfilter.runtime import compile_parallel

prange = range
fetch_row = None  # bound by compile_parallel


def _gather_sums(table: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    for k in prange(len(rows)):
        if k + 3 < len(rows):
            fetch_row(table, rows[k + 3])  # type: ignore[misc]
        total = 0.0
        for column in range(table.shape[1]):
            total += table[rows[k], column]
        out[k] = total


@pytest.mark.parametrize("seed", range(12))
def test_prefetched_gathers_equal_plain_ones(seed):
    rng = np.random.default_rng(seed)
    n_rows = int(rng.integers(1, 300))
    n_columns = int(rng.choice([0, 1, 3, 15, 16, 17, 50, 64, 65, 129]))
    dtype = rng.choice([np.float32, np.float64, np.int32])
    values = (rng.standard_normal((n_rows, n_columns)) * 10).astype(dtype)
    offset = int(rng.integers(0, 16))  # the table starts anywhere within a cache line
    table = np.empty(values.size + offset, dtype)[offset:].reshape(values.shape)
    table[...] = values
    index_type = rng.choice([np.int32, np.int64])
    rows = rng.integers(0, n_rows, int(rng.integers(0, 500))).astype(index_type)
    rows[-2:] = n_rows - 1  # the last row (its last line is the table's), fetched ahead
    before = table.copy()
    out = np.empty(len(rows))
    compile_parallel(_gather_sums, cache=False)(table, rows, out)
    expected = table.astype(np.float64)[rows].sum(axis=1) if len(rows) else out
    assert np.allclose(out, expected) and np.array_equal(table, before)
