"""Implicit alternating least squares (Hu, Koren & Volinsky 2008), with the settings of
Rendle et al., "Revisiting the Performance of iALS on Item Recommendation Benchmarks"
(RecSys 2022): a weight on every unobserved pair and frequency-scaled regularisation."""

from __future__ import annotations

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


class ImplicitALS(TopNModel):
    """Low-rank scores fitted to "rated or not" over *all* user-item pairs::

        L = sum_{(u,i) rated} x_ui (1 - w_u . h_i)^2 + a0 sum_{all u,i} (w_u . h_i)^2
            + l2 sum_u (x_u + a0 n_items)^nu |w_u|^2 + l2 sum_i (x_i + a0 n_users)^nu |h_i|^2
        score(u, i) = w_u . h_i

    ``x_ui`` is the interaction weight, ``x_u`` and ``x_i`` its row and column sums,
    ``a0`` the unobserved weight and ``nu`` the frequency exponent (1 as in Rendle et
    al.: a user or item with more evidence gets a proportionally larger penalty, so the
    penalty strength means the same for everyone). Each half-sweep solves one side
    exactly in principle; here, as in the ``implicit`` library, by a few conjugate
    gradient steps warm-started from the previous sweep, batched over all rows.

    A new user is folded in by solving their ``w_u`` exactly given the items, so
    ``score_new`` and :meth:`explain` agree exactly: ``w_u = A^-1 sum_j x_uj h_j`` with
    ``A = sum_j x_uj h_j h_j' + a0 H'H + l2_u I``, and item ``j``'s share of the score
    of ``i`` is ``x_uj h_i' A^-1 h_j`` (``implicit``'s ``explain``).

    Args:
        n_users, n_items, n_interactions: shapes of the buffers.
        n_factors: length of ``w_u`` and ``h_i``.
        l2: the regularisation strength.
        unobserved_weight: ``a0``.
        frequency_exponent: ``nu``.
        weights: how ratings became interaction weights.
    """

    kind = "ials"
    user_factors: Tensor
    item_factors: Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_interactions: int,
        *,
        n_factors: int,
        l2: float,
        unobserved_weight: float,
        frequency_exponent: float = 1.0,
        weights: InteractionWeights | None = None,
    ) -> None:
        super().__init__(n_users, n_items, n_interactions, weights or InteractionWeights())
        if n_factors < 1:
            raise ValueError(f"n_factors must be >= 1, got {n_factors}")
        if l2 <= 0 or unobserved_weight < 0 or frequency_exponent < 0:
            raise ValueError(
                "l2 must be > 0, unobserved_weight and frequency_exponent >= 0; got "
                f"{l2}, {unobserved_weight}, {frequency_exponent}"
            )
        self.n_factors = int(n_factors)
        self.l2 = float(l2)
        self.unobserved_weight = float(unobserved_weight)
        self.frequency_exponent = float(frequency_exponent)
        self.register_buffer("user_factors", torch.zeros(n_users, n_factors))
        self.register_buffer("item_factors", torch.zeros(n_items, n_factors))

    def penalty(self, evidence: Tensor, n_other: int) -> Tensor:
        """``l2 (x_row + a0 n_other)^nu`` for rows with these weight sums."""
        base = evidence + self.unobserved_weight * n_other
        return self.l2 * base.clamp(min=1e-12) ** self.frequency_exponent

    ranks_item_ranges = True

    @torch.no_grad()
    def score_items(self, user_idx: Tensor) -> Tensor:
        """``W[users] @ H^T`` with the trained user factors, ``(n, n_items)``."""
        return self.rank_items(user_idx)

    @torch.no_grad()
    def rank_items(self, user_idx: Tensor, items: slice | None = None) -> Tensor:
        """:meth:`score_items`, for a range of items if asked."""
        part = slice(None) if items is None else items
        users = self.user_factors[torch.as_tensor(user_idx, dtype=INDEX)]
        return users @ self.item_factors[part].T

    def _place_columns(self, weights: SparseRows, targets: Tensor) -> None:
        """``q_c = sum_j w_cj q_j`` for each placed item ``c``."""
        self.item_factors[targets] = torch.sparse.mm(weights.to_torch(), self.item_factors)

    def score_rows(self, rows: SparseRows) -> Tensor:
        """Scores for rows solved exactly given the items (fold-in)."""
        return self.solve_users(rows) @ self.item_factors.T

    def _systems(self, rows: SparseRows) -> tuple[Tensor, Tensor]:
        """The normal equations ``(A, b)`` of the given rows, batched: (n, f, f), (n, f)."""
        factors = self.item_factors.double()
        block_row, picks = rows.positions(torch.arange(rows.n_rows))
        gathered = factors[rows.indices[picks]]
        weight = rows.values[picks].double()
        f = self.n_factors
        outer = (gathered * weight.unsqueeze(1)).unsqueeze(2) * gathered.unsqueeze(1)
        system = torch.zeros(rows.n_rows, f, f, dtype=torch.float64)
        system.index_add_(0, block_row, outer)
        # placed items (written after the fit) stay out of the unobserved term of users
        # who did not rate them, so placing items leaves those users' factors as they were
        placed = factors[self.placed()]
        gram = factors.T @ factors - placed.T @ placed
        system += self.unobserved_weight * gram
        mask = self.placed_unrated("item")
        if mask is not None:  # a placed item the row rated: its unobserved term, as any item's
            rated = mask[rows.indices[picks]]
            plain = gathered[rated].unsqueeze(2) * gathered[rated].unsqueeze(1)
            system.index_add_(0, block_row[rated], self.unobserved_weight * plain)
        evidence = torch.zeros(rows.n_rows, dtype=torch.float64).index_add_(0, block_row, weight)
        penalty = self.penalty(evidence, self.n_items)
        system += penalty.view(-1, 1, 1) * torch.eye(f, dtype=torch.float64)
        target = torch.zeros(rows.n_rows, f, dtype=torch.float64)
        target.index_add_(0, block_row, gathered * weight.unsqueeze(1))
        return system, target

    @torch.no_grad()
    def solve_users(self, rows: SparseRows) -> Tensor:
        """Exact user factors for weighted rows of ``X``, ``(rows, n_factors)``."""
        system, target = self._systems(rows)
        factors: Tensor = torch.linalg.solve(system, target)
        return factors.float()

    @torch.no_grad()
    def explain_many(
        self, history_item_idx: Tensor, item_idx: Tensor, ratings: Tensor | None = None
    ) -> Tensor:
        """:meth:`explain` for several items: one solve with a column per item."""
        history = torch.as_tensor(history_item_idx, dtype=INDEX).reshape(-1)
        rows = self.new_rows(history, ratings)
        system, _ = self._systems(rows)
        weight = rows.values[torch.searchsorted(rows.indices, history)].double()
        items = self.item_factors[torch.as_tensor(item_idx, dtype=INDEX)].double()
        solved: Tensor = torch.linalg.solve(system[0], items.T)  # (factors, items)
        return (weight.unsqueeze(1) * (self.item_factors[history].double() @ solved)).float()

    def item_vectors(self) -> Tensor:
        return self.item_factors

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "n_factors": self.n_factors,
            "l2": self.l2,
            "unobserved_weight": self.unobserved_weight,
            "frequency_exponent": self.frequency_exponent,
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any], sizes: dict[str, int]) -> ImplicitALS:
        return cls(
            sizes["n_users"], sizes["n_items"], sizes["n_interactions"],
            n_factors=int(settings["n_factors"]), l2=float(settings["l2"]),
            unobserved_weight=float(settings["unobserved_weight"]),
            frequency_exponent=float(settings["frequency_exponent"]),
            weights=weights_from_settings(settings),
        )  # fmt: skip

    @staticmethod
    def memory_bytes(n_users: int, n_items: int, n_interactions: int, n_factors: int) -> int:
        """Peak bytes of a fit: the rows of ``X`` and ``X'`` (with a sampled product's
        values), and six float32 vectors of ``n_factors`` per user and per item
        (factors, right-hand side and the conjugate-gradient state)."""
        return 60 * n_interactions + 6 * 4 * n_factors * (n_users + n_items)


def fit_ials(
    user_idx: Tensor,
    item_idx: Tensor,
    n_users: int,
    n_items: int,
    *,
    ratings: Tensor | None = None,
    weights: InteractionWeights | None = None,
    **options: Any,
) -> ImplicitALS:
    """Fit :class:`ImplicitALS` on interactions: their weighted rows, then
    :func:`ials_from_rows` with ``options`` (``n_factors``, ``l2``, ``sweeps``...).

    Args:
        user_idx, item_idx: one entry per interaction, shape ``(n,)`` (no repeats).
        n_users, n_items: sizes of the index spaces.
        ratings: float ratings, shape ``(n,)``, for ``weights``; None: all weights 1.
        weights: how ratings become interaction weights.
        options: :func:`ials_from_rows`'s keywords.
    """
    weights = weights or InteractionWeights()
    rows = interaction_rows(user_idx, item_idx, n_users, n_items, ratings, weights)
    return ials_from_rows(rows, weights, **options)


def ials_from_rows(
    rows: SparseRows,
    weights: InteractionWeights,
    *,
    n_factors: int = 64,
    l2: float = 0.01,
    unobserved_weight: float = 0.01,
    frequency_exponent: float = 1.0,
    sweeps: int = 10,
    cg_steps: int = 3,
    seed: int = 0,
    start: tuple[Tensor, Tensor] | None = None,
) -> ImplicitALS:
    """Fit :class:`ImplicitALS` on weighted interaction rows (``weights`` made them) by
    alternating sweeps of batched conjugate gradients.

    Args:
        rows: the weighted interaction rows, users x items.
        weights: how they were weighted (kept with the model).
        n_factors, l2, unobserved_weight, frequency_exponent: see :class:`ImplicitALS`.
        sweeps: alternations (users, then items).
        cg_steps: conjugate gradient steps per half-sweep.
        seed: seeds the initial factors (:func:`initial_factors`).
        start: initial user and item factors instead (a warm start from a fit with
            nearby settings), shapes ``(n_users, n_factors)`` and ``(n_items, n_factors)``.

    Raises:
        ValueError: for bad sizes or settings.
        ArithmeticError: if the factors are not finite after fitting.
    """
    if sweeps < 1 or cg_steps < 1:
        raise ValueError(f"sweeps and cg_steps must be >= 1, got {sweeps}, {cg_steps}")
    n_users, n_items = rows.n_rows, rows.n_cols
    model = ImplicitALS(
        n_users, n_items, len(rows.indices), n_factors=n_factors, l2=l2,
        unobserved_weight=unobserved_weight, frequency_exponent=frequency_exponent,
        weights=weights,
    )  # fmt: skip
    model.set_history(rows)
    transposed = rows.transpose()  # built once: the start and the item side both read it
    if start is None:
        users, items = initial_factors(rows, n_factors, seed, transposed=transposed)
    else:
        users, items = start
        if users.shape != (n_users, n_factors) or items.shape != (n_items, n_factors):
            raise ValueError(
                f"start factors must be ({n_users}, {n_factors}) and ({n_items}, "
                f"{n_factors}), got {tuple(users.shape)} and {tuple(items.shape)}"
            )
    by_user, by_item = _Side(model, rows, n_items), _Side(model, transposed, n_users)
    for _ in range(sweeps):
        users = by_user.solve(users, items, cg_steps)
        items = by_item.solve(items, users, cg_steps)
    if not (torch.isfinite(users).all() and torch.isfinite(items).all()):
        raise ArithmeticError("iALS factors are not finite; raise l2")
    model.user_factors, model.item_factors = users, items
    return model


def initial_factors(
    rows: SparseRows, n_factors: int, seed: int, *, transposed: SparseRows | None = None
) -> tuple[Tensor, Tensor]:
    """iALS's start: a near-best rank-``n_factors`` fit of the weighted rows ``X``
    alone, split evenly between the two sides, plus seeded normal noise (std
    ``0.1 / sqrt(n_factors)``). That fit is near iALS's solution, so a few sweeps refine
    it where a random start needs several times more; the noise keeps every factor in
    play where ``X`` has a lower rank than ``n_factors``.

    The fit is ``Q Q' X``, ``Q`` an orthonormal basis of ``X``'s dominant range from
    Halko et al.'s randomized range finder (a seeded random projection and two power
    iterations): the users get ``Q`` and the items ``X' Q``, each column rescaled so
    that both sides' columns have equal norms. It draws only from its own seeded
    generator and uses only operations that sum in a fixed order (sparse products,
    products of thin matrices, a small Cholesky factor), so the start is the same for
    a seed on any number of threads, as the sweeps are. ``transposed``: ``X'`` as
    rows, when the caller has it already."""
    n_users, n_items = rows.n_rows, rows.n_cols
    generator = torch.Generator().manual_seed(seed)
    scale = 0.1 / n_factors**0.5
    users = torch.randn(n_users, n_factors, generator=generator) * scale
    items = torch.randn(n_items, n_factors, generator=generator) * scale
    rank = min(n_factors, n_users, n_items)
    if rank == 0:
        return users, items
    wide = rows.to_torch()
    tall = (rows.transpose() if transposed is None else transposed).to_torch()
    probe = torch.randn(n_items, rank, generator=generator)
    basis = _orthonormal(torch.sparse.mm(wide, probe))
    for _ in range(2):  # power iterations: X X' separates the dominant range better
        basis = _orthonormal(torch.sparse.mm(wide, _orthonormal(torch.sparse.mm(tall, basis))))
    loadings = torch.sparse.mm(tall, basis)
    balance = loadings.norm(dim=0).clamp(min=1e-12).sqrt()
    users[:, :rank] += basis * balance
    items[:, :rank] += loadings / balance
    return users, items


def _orthonormal(columns: Tensor) -> Tensor:
    """An orthonormal basis of the columns' span, float32: Cholesky QR twice in float64
    (the second pass restores what the first loses to rounding), where LAPACK's QR of a
    tall matrix would sum in an order that depends on the number of threads. A small
    ridge keeps the factor defined when the columns are dependent (the directions they
    lack then come out near zero, not orthonormal)."""
    basis = columns.double()
    for _ in range(2):
        gram = basis.T @ basis
        gram.diagonal().add_(1e-12 * float(gram.diagonal().mean()) + 1e-300)
        factor = torch.linalg.cholesky(gram)
        basis = torch.linalg.solve_triangular(factor, basis.T, upper=False).T
    return basis.float()


class _Side:
    """One side's least-squares problems (rows of ``X`` or of ``X'``), solved together."""

    def __init__(self, model: ImplicitALS, rows: SparseRows, n_other: int) -> None:
        self.matrix = rows.to_torch()
        self.values = rows.values
        evidence = torch.zeros(rows.n_rows).index_add_(
            0, torch.repeat_interleave(torch.arange(rows.n_rows), rows.lengths()), rows.values
        )
        self.penalty = model.penalty(evidence, n_other).unsqueeze(1)
        self.unobserved_weight = model.unobserved_weight

    def product(self, vectors: Tensor, other: Tensor, other_gram: Tensor) -> Tensor:
        """``A_r v_r`` for every row ``r`` at once."""
        dots = torch.sparse.sampled_addmm(self.matrix, vectors, other.T, beta=0.0)
        weighted = torch.sparse_csr_tensor(
            dots.crow_indices(), dots.col_indices(), dots.values() * self.values,
            size=dots.shape, check_invariants=False,
        )  # fmt: skip
        result = torch.addmm(torch.sparse.mm(weighted, other), vectors, other_gram,
                             alpha=self.unobserved_weight)  # fmt: skip
        return result.addcmul_(self.penalty, vectors)

    def solve(self, start: Tensor, other: Tensor, steps: int) -> Tensor:
        """A few conjugate gradient steps on every row's normal equations."""
        other_gram = other.T @ other
        solution = start.clone()
        residual = torch.sparse.mm(self.matrix, other) - self.product(solution, other, other_gram)
        direction = residual.clone()
        norm = (residual * residual).sum(1, keepdim=True)
        for _ in range(steps):
            applied = self.product(direction, other, other_gram)
            curvature = (direction * applied).sum(1, keepdim=True)
            step = torch.where(curvature > 0, norm / curvature.clamp(min=1e-30), 0.0)
            solution.addcmul_(step, direction)
            residual.addcmul_(step, applied, value=-1.0)
            new_norm = (residual * residual).sum(1, keepdim=True)
            ratio = torch.where(norm > 0, new_norm / norm.clamp(min=1e-30), 0.0)
            direction = direction.mul_(ratio).add_(residual)
            norm = new_norm
        return solution
