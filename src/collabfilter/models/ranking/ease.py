"""EASE: a closed-form item-item model for top-N (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from collabfilter.models.ranking.base import (
    InteractionWeights,
    TopNModel,
    interaction_rows,
    weights_from_settings,
)
from collabfilter.models.ranking.csr import INDEX, SparseRows, gram

FLOAT_BYTES = 4


class EASE(TopNModel):
    """Each item's score is a learned weighted sum of the items the user rated::

        B = argmin ||X - X B||^2 + l2 ||B||^2   subject to diag(B) = 0
          = I - P diag(1 / diag(P)),   P = (X^T X + l2 I)^-1
        score(u, i) = sum_j x_uj B[j, i]

    ``X`` is the weighted interaction matrix (see
    :class:`~collabfilter.models.ranking.base.InteractionWeights`). The zero diagonal
    stops an item from explaining itself, so ``B[j, i]`` is how much having rated ``j``
    says about ``i``: the model is its own explanation. It holds a dense items x items
    matrix (four bytes per pair of items), which bounds where it can be used.

    Args:
        n_users, n_items, n_interactions: shapes of the buffers.
        l2: the L2 penalty of the fit (kept for the record).
        weights: how ratings became interaction weights.
    """

    kind = "ease"
    item_weights: Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_interactions: int,
        *,
        l2: float,
        weights: InteractionWeights | None = None,
    ) -> None:
        super().__init__(n_users, n_items, n_interactions, weights or InteractionWeights())
        if l2 <= 0:
            raise ValueError(f"l2 must be > 0, got {l2}")
        self.l2 = float(l2)
        self.register_buffer("item_weights", torch.zeros(n_items, n_items))

    def score_rows(self, rows: SparseRows) -> Tensor:
        """``X_rows @ B``: one sparse-dense product, ``(rows, n_items)`` float32."""
        scores: Tensor = torch.sparse.mm(rows.to_torch_coo(), self.item_weights)
        return scores

    @torch.no_grad()
    def explain_many(
        self, history_item_idx: Tensor, item_idx: Tensor, ratings: Tensor | None = None
    ) -> Tensor:
        """``x_uj * B[j, i]`` for each rated ``j`` and each item ``i``, in one gather."""
        rows = self.new_rows(history_item_idx, ratings)
        order = _input_order(history_item_idx, rows.indices)
        picked = self.item_weights[rows.indices[order]][:, torch.as_tensor(item_idx, dtype=INDEX)]
        return rows.values[order].unsqueeze(1) * picked

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "l2": self.l2}

    @classmethod
    def from_settings(cls, settings: dict[str, Any], sizes: dict[str, int]) -> EASE:
        return cls(
            sizes["n_users"], sizes["n_items"], sizes["n_interactions"],
            l2=float(settings["l2"]), weights=weights_from_settings(settings),
        )  # fmt: skip

    @staticmethod
    def memory_bytes(n_users: int, n_items: int, n_interactions: int) -> int:
        """Peak bytes of a fit: the Gram matrix, its Cholesky factor and the inverse
        (three items x items float32 matrices) plus the interaction rows."""
        return 3 * n_items * n_items * FLOAT_BYTES + 40 * n_interactions + 8 * n_users


def _input_order(given: Tensor, stored: Tensor) -> Tensor:
    """Positions in ``stored`` (sorted, as CSR rows keep them) of the ``given`` items."""
    return torch.searchsorted(stored, torch.as_tensor(given, dtype=INDEX).reshape(-1))


def fit_ease(
    user_idx: Tensor,
    item_idx: Tensor,
    n_users: int,
    n_items: int,
    *,
    l2: float,
    ratings: Tensor | None = None,
    weights: InteractionWeights | None = None,
) -> EASE:
    """Fit :class:`EASE` on interactions given as index tensors.

    Args:
        user_idx, item_idx: one entry per interaction, shape ``(n,)`` (no repeats).
        n_users, n_items: sizes of the index spaces.
        l2: the L2 penalty (larger: smoother weights; on the scale of ``diag(X^T X)``,
            the weighted number of raters per item).
        ratings: float ratings, shape ``(n,)``, for ``weights``; None: all weights 1.
        weights: how ratings become interaction weights.

    Raises:
        ValueError: for bad sizes, a non-positive ``l2`` or repeated pairs.
    """
    weights = weights or InteractionWeights()
    rows = interaction_rows(user_idx, item_idx, n_users, n_items, ratings, weights)
    model = EASE(n_users, n_items, len(rows.indices), l2=l2, weights=weights)
    model.set_history(rows)
    model.item_weights = ease_weights(gram(rows), l2)
    return model


def ease_weights(gram_matrix: Tensor, l2: float) -> Tensor:
    """``B = I - P diag(1 / diag(P))`` with ``P = (G + l2 I)^-1``, zero diagonal; the
    Gram matrix is consumed (overwritten) to keep the peak at three matrices."""
    gram_matrix.diagonal().add_(l2)
    factor = torch.linalg.cholesky(gram_matrix)
    del gram_matrix
    precision = torch.cholesky_inverse(factor)
    del factor
    if not precision.is_contiguous():  # column-major from LAPACK; symmetric, so transpose
        precision = precision.T
    precision.div_(-precision.diagonal().clone())
    precision.diagonal().zero_()
    return precision
