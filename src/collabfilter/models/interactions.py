"""Who rated what, as sparse rows: the input of the top-N models.

Top-N models learn from the *interaction matrix* ``X`` (users x items): ``x_ui`` is a
weight when user ``u`` rated item ``i`` and 0 otherwise. Ratings say more than "seen":
a film rated 2 stars was watched but disliked, and the held-out items that count as
hits are the liked ones, so :class:`InteractionWeights` gives ratings below a threshold
a smaller weight (on ml-100k's per-user hold-out a weight of 0.3 lifts EASE's NDCG@10
from 0.354 to 0.38; ``benchmarks/bench_ranking.py``).

:class:`TopNModel` is the base of every top-N module: it keeps the training rows as CSR
buffers (so a model file holds everything needed to score its users), turns blocks of
users into sparse CSR tensors, and defines the common API (``score_items``,
``score_new``, ``explain``, ``settings``/``sizes`` to rebuild it from a file).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

INDEX = torch.int64
"""Index dtype of the CSR buffers (torch's sparse kernels want crow and col alike)."""


@dataclass(frozen=True)
class InteractionWeights:
    """The weight ``x_ui`` of a rating ``r``: 1, or ``low_weight`` when ``r < positive``.

    Attributes:
        positive: ratings at or above this count fully; None: every rating counts 1
            (implicit data, or to ignore the stars).
        low_weight: the weight of ratings below ``positive``, in ``(0, 1]``: they still
            say the item was seen, with less evidence that it was liked.
    """

    positive: float | None = None
    low_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.low_weight <= 1.0:
            raise ValueError(f"low_weight must lie in (0, 1], got {self.low_weight}")
        if self.positive is not None and not math.isfinite(self.positive):
            raise ValueError(f"positive must be a finite rating or None, got {self.positive}")

    def of(self, ratings: Tensor | None, n: int) -> Tensor:
        """float32 weights of ``n`` interactions with these ratings (None: all 1)."""
        if ratings is None or self.positive is None or self.low_weight == 1.0:
            return torch.ones(n)
        if ratings.shape != (n,):
            raise ValueError(f"ratings must have shape ({n},), got {tuple(ratings.shape)}")
        low = torch.tensor(self.low_weight)
        return torch.where(ratings.float() >= self.positive, torch.tensor(1.0), low)

    def to_dict(self) -> dict[str, Any]:
        return {"positive": self.positive, "low_weight": self.low_weight}


@cache
def quiet_csr() -> None:
    """torch prints a one-time 'sparse CSR support is in beta' notice on the first CSR
    tensor of a process; the operations used here are stable and tested."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        torch.sparse_csr_tensor(
            torch.zeros(2, dtype=INDEX), torch.zeros(0, dtype=INDEX), torch.zeros(0),
            size=(1, 1), check_invariants=False,
        )  # fmt: skip


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
        rows = rows.to(INDEX)
        starts, lengths = self.indptr[rows], self.indptr[rows + 1] - self.indptr[rows]
        block_row = torch.repeat_interleave(torch.arange(len(rows)), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        offset = torch.arange(int(lengths.sum())) - first[block_row]
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
        """A torch sparse COO tensor of the same matrix (times a wide dense matrix, COO is
        2-3x faster than CSR in torch 2.13 on the CPU; CSR wins for narrow ones)."""
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


def gram(matrix: SparseRows, block_rows: int = 256) -> Tensor:
    """``X^T X`` as a dense ``(cols, cols)`` float32 from the CSR rows of ``X``."""
    result = torch.empty(matrix.n_cols, matrix.n_cols)
    for start, block in gram_blocks(matrix, block_rows):
        result[start : start + len(block)] = block
    return result


def gram_blocks(matrix: SparseRows, block_rows: int = 256) -> Iterator[tuple[int, Tensor]]:
    """``X^T X`` by blocks of rows: ``(first row, dense (block, cols) float32)``.

    Sparse times sparse: the work follows ``sum_u n_u^2`` (the pairs of items each user
    rated), not users x items^2, and only one block is ever dense.
    """
    transposed = matrix.transpose()
    right = matrix.to_torch()
    n = matrix.n_cols
    for start in range(0, n, block_rows):
        rows = torch.arange(start, min(start + block_rows, n))
        product = torch.sparse.mm(transposed.select(rows).to_torch(), right)
        block = torch.zeros(len(rows), n)
        _add_csr(block, product)
        yield start, block


def _add_csr(target: Tensor, csr: Tensor) -> None:
    """``target += csr`` for a dense ``target`` (torch's CSR ``to_dense`` is slow)."""
    crow, col = csr.crow_indices(), csr.col_indices()
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1), crow[1:] - crow[:-1])
    target.view(-1).index_add_(0, rows * target.shape[1] + col, csr.values())


class TopNModel(nn.Module):
    """Base of the top-N modules: the training rows as CSR buffers and the common API.

    Subclasses implement :meth:`score_rows` (scores of every item for sparse weighted
    rows of ``X``) and :meth:`explain`, and list their hyper-parameters in
    :meth:`settings`; everything learned is a registered buffer, so ``state_dict``
    holds the whole model and :meth:`from_settings` rebuilds an empty one to load it.

    Args:
        n_users: rows of the interaction matrix.
        n_items: columns.
        n_interactions: stored training interactions (for the buffers' shapes).
        weights: how ratings become interaction weights (for ``score_new`` too).
    """

    kind: ClassVar[str] = ""
    PREDICTS_RATINGS: ClassVar[bool] = False
    """Scores order items for one user; they are not ratings."""

    history_indptr: Tensor
    history_items: Tensor
    history_weights: Tensor

    def __init__(
        self, n_users: int, n_items: int, n_interactions: int, weights: InteractionWeights
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.n_items = n_items
        self.weights = weights
        self.register_buffer("history_indptr", torch.zeros(n_users + 1, dtype=INDEX))
        self.register_buffer("history_items", torch.zeros(n_interactions, dtype=INDEX))
        self.register_buffer("history_weights", torch.zeros(n_interactions))

    @property
    def n_users(self) -> int:
        return len(self.history_indptr) - 1

    def set_history(self, rows: SparseRows) -> None:
        """Keep the (weighted) training rows, shape ``(n_users, n_items)``; the buffers
        share ``rows``'s tensors (25M interactions take 300 MB)."""
        if rows.n_rows != self.n_users or rows.n_cols != self.n_items:
            raise ValueError(f"history must be {self.n_users} x {self.n_items}")
        self.history_indptr = rows.indptr
        self.history_items = rows.indices
        self.history_weights = rows.values

    def history(self) -> SparseRows:
        """The weighted training rows of every user."""
        return SparseRows(
            self.history_indptr, self.history_items, self.history_weights, self.n_items
        )

    def new_rows(self, item_idx: Tensor, ratings: Tensor | None = None) -> SparseRows:
        """One weighted row for a user described by rated items (and their ratings).

        Raises:
            ValueError: for no items, items out of range or repeated items.
        """
        item_idx = torch.as_tensor(item_idx, dtype=INDEX).reshape(-1)
        if len(item_idx) == 0:
            raise ValueError("a new user needs at least one rated item")
        given = None if ratings is None else torch.as_tensor(ratings).reshape(-1)
        values = self.weights.of(given, len(item_idx))
        zeros = torch.zeros(len(item_idx), dtype=INDEX)
        return SparseRows.from_pairs(zeros, item_idx, values, 1, self.n_items)

    @torch.no_grad()
    def score_items(self, user_idx: Tensor) -> Tensor:
        """Scores of every item for known users, ``(len(user_idx), n_items)`` float32;
        higher is better (not a rating). Items the users rated are not masked."""
        return self.score_rows(self.history().select(torch.as_tensor(user_idx)))

    @torch.no_grad()
    def score_new(self, item_idx: Tensor, ratings: Tensor | None = None) -> Tensor:
        """Scores of every item, ``(n_items,)``, for a user not in the training data who
        rated ``item_idx`` (with ``ratings``, if known): folded in, no retraining."""
        return self.score_rows(self.new_rows(item_idx, ratings))[0]

    def score_rows(self, rows: SparseRows) -> Tensor:
        """Scores of every item for weighted rows of ``X``, ``(rows, n_items)``."""
        raise NotImplementedError

    def explain(
        self, history_item_idx: Tensor, item_idx: int, ratings: Tensor | None = None
    ) -> Tensor:
        """How much each rated item adds to ``item_idx``'s score, ``(len(history),)``
        float32 in the order given; they sum to ``score_new(history, ratings)[item]``."""
        raise NotImplementedError

    def explain_many(
        self, history_item_idx: Tensor, item_idx: Tensor, ratings: Tensor | None = None
    ) -> Tensor:
        """:meth:`explain` for several items at once, ``(len(history), len(item_idx))``
        (a list's explanations in one call; subclasses answer it in one product)."""
        columns = [self.explain(history_item_idx, int(item), ratings) for item in item_idx]
        return torch.stack(columns, 1) if columns else torch.zeros(len(history_item_idx), 0)

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-ready dict (with ``kind``)."""
        return {"kind": self.kind, "weights": self.weights.to_dict()}

    def sizes(self) -> dict[str, int]:
        """The shapes :meth:`from_settings` needs to rebuild the buffers."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": len(self.history_items),
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any], sizes: dict[str, int]) -> TopNModel:
        """An empty module of the right shapes, to ``load_state_dict(strict=True)`` into."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """What a model file records to rebuild this module: settings and sizes."""
        return {"settings": self.settings(), "sizes": self.sizes()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TopNModel:
        """The empty module :meth:`spec` describes (a model file's loader calls this)."""
        if spec.get("settings", {}).get("kind") != cls.kind:
            raise ValueError(
                f"settings of {spec.get('settings', {}).get('kind')!r}, not {cls.kind!r}"
            )
        return cls.from_settings(dict(spec["settings"]), dict(spec["sizes"]))

    @torch.no_grad()
    def similar_items(self, item: int) -> Tensor:
        """Scores of every item for someone who rated only ``item``: the model's own
        item-item relation (EASE's weights, kNN's similarities, iALS's fold-in)."""
        return self.score_new(torch.tensor([item], dtype=INDEX))

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.settings().items() if k != "kind"}
        return ", ".join(f"{k}={v}" for k, v in {**self.sizes(), **shown}.items())


def weights_from_settings(settings: dict[str, Any]) -> InteractionWeights:
    """The :class:`InteractionWeights` stored by :meth:`TopNModel.settings`."""
    return InteractionWeights(**settings.get("weights", {}))


def interaction_rows(
    user_idx: Tensor,
    item_idx: Tensor,
    n_users: int,
    n_items: int,
    ratings: Tensor | None,
    weights: InteractionWeights,
) -> SparseRows:
    """The weighted interaction matrix ``X`` as CSR rows (one row per user)."""
    values = weights.of(ratings, len(user_idx))
    return SparseRows.from_pairs(
        torch.as_tensor(user_idx), torch.as_tensor(item_idx), values, n_users, n_items
    )
