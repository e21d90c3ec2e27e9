"""EASE: a closed-form item-item model for top-N (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.models.ranking.base import (
    InteractionWeights,
    TopNModel,
    interaction_rows,
    weights_from_settings,
)
from collabfilter.models.ranking.csr import gram

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

    def _place_columns(self, weights: SparseRows, targets: Tensor) -> None:
        """``B[:, c] = sum_j w_cj B[:, j]`` for each placed item ``c``."""
        averaged = torch.sparse.mm(weights.to_torch(), self.item_weights.T)
        self.item_weights[:, targets] = averaged.T

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
    return ease_from_rows(rows, weights, l2)


def ease_from_rows(rows: SparseRows, weights: InteractionWeights, l2: float) -> EASE:
    """:class:`EASE` fitted on weighted interaction rows (``weights`` made them): from
    the users' side (:class:`GramSpectrum`) when :func:`spectrum_pays`, else one
    Cholesky inverse."""
    n_users, n_items, n_interactions = rows.n_rows, rows.n_cols, len(rows.indices)
    model = EASE(n_users, n_items, n_interactions, l2=l2, weights=weights)
    model.set_history(rows)
    if spectrum_pays(n_users, n_items, 1):
        model.item_weights = GramSpectrum(rows).item_weights(l2)
    else:
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


EIGH_COST = 8.0
"""An eigendecomposition costs about this many Cholesky inverses of the same size (torch,
on the CPU)."""


def spectrum_pays(n_users: int, n_items: int, n_penalties: int) -> bool:
    """Whether :class:`GramSpectrum` is cheaper than ``n_penalties`` Cholesky inverses of
    the items x items Gram matrix: with fewer users than items, it decomposes the users x
    users matrix instead, once for every penalty. Its memory is not the inverse's: see
    :func:`ease_peak_bytes`."""
    return n_users < n_items and EIGH_COST * n_users**3 < n_penalties * n_items**3


def ease_peak_bytes(n_users: int, n_items: int, n_interactions: int) -> int:
    """Peak bytes of EASE on rows of this shape, by either path a fit or a choice among
    penalties may take (the spectrum whenever it can pay for some grid): what the memory
    budget is checked against."""
    inverse = EASE.memory_bytes(n_users, n_items, n_interactions)
    if n_users >= n_items:
        return inverse
    return max(inverse, GramSpectrum.memory_bytes(n_users, n_items, n_interactions))


class GramSpectrum:
    """The Gram matrix of the users' rows ``X`` (users x items) as ``G = V diag(s) V^T``,
    thin (rank at most the number of users), from the eigendecomposition of the smaller
    ``X X^T``. Then, for any penalty, with ``w = s / (s + l2)`` and ``d = diag(V w V^T)``::

        P = (G + l2 I)^-1 = (I - V diag(w) V^T) / l2
        B = I - P diag(1 / diag(P)):   B[i, j] = (V diag(w) V^T)[i, j] / (1 - d[j]), i != j

    so the whole penalty grid of EASE costs one decomposition, and scoring the rows'
    own users at one penalty costs one thin product instead of an items x items
    inverse: their projection ``X V`` is ``U diag(sqrt(s))``, with ``U`` the
    eigenvectors of ``X X^T``. The decomposition is computed in float64 (eigenvalues
    span many orders of magnitude), the products in float32 (no difference of nearly
    equal terms is formed).

    Both products with ``X`` (``X X^T`` and ``X^T U``) are sparse, so their work
    follows the ratings, not users x items.

    Args:
        rows: ``X``, the weighted interaction rows (users x items).
    """

    def __init__(self, rows: SparseRows) -> None:
        self.rows = rows
        wide, tall = (SparseRows(r.indptr, r.indices, r.values.double(), r.n_cols).to_torch()
                      for r in (rows, rows.transpose()))  # fmt: skip
        users = torch.zeros(rows.n_rows, rows.n_rows, dtype=torch.float64)
        values, vectors = torch.linalg.eigh(users.add_(torch.sparse.mm(wide, tall)))
        keep = values > values.max().clamp(min=0) * 1e-12
        self.values = values[keep]
        roots = self.values.sqrt()
        self.projections = (vectors[:, keep] * roots).float()
        items = torch.sparse.mm(tall, vectors[:, keep]).div_(roots)
        self.squares = items**2
        self.vectors = items.float()

    @cached_property
    def dense(self) -> Tensor:
        """``X`` dense float32, for scoring its own users (a fit needs only ``B``)."""
        return self.rows.to_dense()

    @staticmethod
    def memory_bytes(n_users: int, n_items: int, n_interactions: int) -> int:
        """Peak bytes of a fit from the spectrum, counted as :meth:`EASE.memory_bytes`
        counts the inverse: the dense rows (float32, and room for as much again), three
        users x users float64 matrices (``X X^T``, its eigenvectors
        and their kept columns) and the users' float32 projections, the items x rank
        vectors (float64, their float64 squares and a float32 copy), plus the
        interaction rows, their transpose and float64 copies of both."""
        users, items = n_users, n_items
        return 32 * users * items + 28 * users * users + 80 * n_interactions + 8 * n_users

    def _terms(self, l2: float) -> tuple[Tensor, Tensor, Tensor]:
        """``w``, ``d`` and ``1 / (1 - d)`` (float32; ``d`` summed in float64)."""
        shrink = self.values / (self.values + l2)
        diagonal = self.squares @ shrink
        return shrink.float(), diagonal.float(), (1.0 / (1.0 - diagonal)).float()

    def scorer(self, l2: float) -> Callable[[Tensor], Tensor]:
        """``users -> X[users] @ B`` at penalty ``l2``, for indices of the decomposed rows."""
        shrink, diagonal, inverse = self._terms(l2)

        def scores(users: Tensor) -> Tensor:
            product: Tensor = (self.projections[users] * shrink) @ self.vectors.T
            return product.sub_(self.dense[users] * diagonal).mul_(inverse)

        return scores

    def item_weights(self, l2: float) -> Tensor:
        """EASE's ``B`` (items x items, float32, zero diagonal)."""
        shrink, _, inverse = self._terms(l2)
        weights: Tensor = (self.vectors * shrink) @ self.vectors.T
        weights.mul_(inverse)
        weights.diagonal().zero_()
        return weights
