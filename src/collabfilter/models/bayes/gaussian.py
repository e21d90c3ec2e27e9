"""Conjugate draws the Gibbs sampler is made of, each vectorised over rows or dimensions.

* :func:`draw_rows`: one Gaussian posterior draw per row (user or item) at once, from
  per-row Gram matrices, with batched float64 Cholesky factors (rows are independent
  given the other side, and ``k + 1`` is small).
* :func:`draw_normal_gamma`: a group's per-dimension prior mean and precision.
* :class:`SpectralDraw` and :class:`ConjugateGradientDraw`: the implicit embeddings,
  a Bayesian linear regression with precision ``lambda_U,d * M^T M + lambda_y,d * I``
  per dimension ``d`` (``M`` the normalised rated-items matrix). The first draws
  exactly from one eigendecomposition made at set-up; the second solves the perturbed
  system ``A y = b + N(0, A)`` ("perturb then solve") by Jacobi-preconditioned
  conjugate gradients, warm-started at the previous draw, for catalogues too large to
  decompose.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from collabfilter.runtime import quiet_csr


def draw_gamma(shape: Tensor, rate: Tensor, generator: torch.Generator) -> Tensor:
    """Gamma(shape, rate) draws of the shapes' shape, from ``generator``."""
    standard: Tensor = torch._standard_gamma(shape, generator=generator)
    return standard / rate


def draw_normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal draws of ``like``'s dtype and device, from ``generator``."""
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


@dataclass(frozen=True)
class NormalGammaPrior:
    """Normal-Gamma hyper-prior: ``lambda ~ Gamma(shape, rate)``,
    ``mu ~ N(0, 1 / (strength * lambda))``."""

    shape: float
    rate: float
    strength: float


def draw_normal_gamma(
    rows: Tensor, prior: NormalGammaPrior, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Posterior draw of a group's per-column ``(mean, precision)`` given its rows
    ``(n, K)``, each row ``N(mean, 1 / precision)`` per column."""
    rows = rows.double()
    n = rows.shape[0]
    average = rows.mean(0) if n else rows.new_zeros(rows.shape[1])
    scatter = ((rows - average) ** 2).sum(0)
    strength = prior.strength + n
    rate = prior.rate + scatter / 2 + prior.strength * n * average**2 / (2 * strength)
    shape = torch.full_like(rate, prior.shape + n / 2)
    precision = draw_gamma(shape, rate, generator)
    noise = draw_normal(tuple(rate.shape), rate, generator)
    mean = n * average / strength + noise / (strength * precision).sqrt()
    return mean, precision


def triangle(width: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Row and column indices of the upper triangle (diagonal included), and for every
    entry of a ``width x width`` matrix the position of its value in that triangle."""
    rows, cols = torch.triu_indices(width, width, device=device)
    position = torch.zeros(width, width, dtype=torch.int64, device=device)
    position[rows, cols] = torch.arange(rows.shape[0], device=device)
    position[cols, rows] = position[rows, cols]
    return rows, cols, position.reshape(-1)


def gram_from_triangle(packed: Tensor, width: int, position: Tensor) -> Tensor:
    """``(n, T)`` packed upper triangles -> ``(n, width, width)`` symmetric float64."""
    full = packed.index_select(1, position).double()
    return full.view(packed.shape[0], width, width)


def draw_rows(
    gram: Tensor,
    moment: Tensor,
    prior_precision: Tensor,
    prior_mean: Tensor,
    noise_precision: float,
    generator: torch.Generator,
) -> Tensor:
    """One draw per row of ``N(P^-1 m, P^-1)``, ``P = alpha * gram + diag(lambda)``,
    ``m = alpha * moment + lambda * prior_mean``.

    Args:
        gram: ``(n, K, K)`` float64, each row's sum of feature outer products.
        moment: ``(n, K)``, each row's sum of features times targets.
        prior_precision: ``(K,)`` prior precision per column.
        prior_mean: ``(n, K)`` prior mean per row.
        noise_precision: ``alpha``.
        generator: the random stream.

    Returns:
        ``(n, K)`` float64 draws.
    """
    precision = gram * noise_precision + torch.diag_embed(prior_precision.double())
    linear = moment.double() * noise_precision + prior_mean.double() * prior_precision.double()
    factor = torch.linalg.cholesky(precision)
    # P = L L^T: x = L^-T (L^-1 m + e) has mean P^-1 m and covariance (L L^T)^-1; two
    # triangular solves (cholesky_solve does two as well, but slower: docs/tuning.md).
    whitened = torch.linalg.solve_triangular(factor, linear.unsqueeze(-1), upper=False)
    whitened += draw_normal(tuple(whitened.shape), whitened, generator)
    draw: Tensor = torch.linalg.solve_triangular(factor.mT, whitened, upper=True).squeeze(-1)
    return draw


class SpectralDraw:
    """Exact draws of ``y ~ N(A^-1 b, A^-1)``, ``A_d = lam_d * M^T M + kappa_d * I``,
    from the eigenvectors of ``M^T M`` found once (``M`` of shape ``(n_rows, n_emb)``).

    With ``M^T M = Q diag(s2) Q^T``, ``A_d^-1 = (I - Q diag(w1) Q^T) / kappa_d`` and
    ``A_d^-1/2 = (I - Q diag(w2) Q^T) / sqrt(kappa_d)``, where ``w1 = lam s2 / (kappa +
    lam s2)`` and ``w2 = 1 - sqrt(kappa / (kappa + lam s2))``: each draw projects onto
    ``Q`` and back once, for every dimension at once. ``Q`` comes from the smaller of
    ``M^T M`` (kept dense) and ``M M^T = P diag(s2) P^T``; in the second case ``Q =
    M^T P diag(s2)^-1/2`` is applied through the sparse ``M`` instead of being formed
    (a tall dense ``Q`` costs more per draw than the sparse product; ``docs/tuning.md``).
    """

    def __init__(self, dense: Tensor) -> None:
        matrix = dense.double()
        self.basis: Tensor | None = None
        if matrix.shape[1] <= matrix.shape[0]:
            values, vectors = torch.linalg.eigh(matrix.T @ matrix)
            keep = values > values.max().clamp(min=1e-30) * 1e-10
            self.values, self.basis = values[keep], vectors[:, keep].to(dense.dtype)
        else:
            values, vectors = torch.linalg.eigh(matrix @ matrix.T)
            keep = values > values.max().clamp(min=1e-30) * 1e-10
            self.values, self.left = values[keep], vectors[:, keep]
            quiet_csr()
            self.matrix = matrix.to_sparse_csr()
            self.transposed = matrix.T.contiguous().to_sparse_csr()

    def _project(self, x: Tensor) -> Tensor:
        """``Q^T x``."""
        if self.basis is not None:
            projected: Tensor = self.basis.T @ x.to(self.basis.dtype)
            return projected
        sparse: Tensor = self.matrix @ x.double()
        projected = (self.left.T @ sparse) * self.values.rsqrt().unsqueeze(1)
        return projected

    def _lift(self, y: Tensor) -> Tensor:
        """``Q y``."""
        if self.basis is not None:
            lifted: Tensor = self.basis @ y.to(self.basis.dtype)
            return lifted
        scaled = self.left @ (y.double() * self.values.rsqrt().unsqueeze(1))
        sparse: Tensor = self.transposed @ scaled
        return sparse

    def draw(
        self, linear: Tensor, scale: Tensor, ridge: Tensor, generator: torch.Generator
    ) -> Tensor:
        """Draw for ``b = linear`` ``(n_emb, K)``, ``lam = scale``, ``kappa = ridge``
        (both ``(K,)``)."""
        scale, ridge = scale.double(), ridge.double()
        s2 = self.values.double().unsqueeze(1)
        boosted = ridge + scale * s2  # (r, K)
        mean_weight = scale * s2 / boosted
        noise_weight = 1 - (ridge / boosted).sqrt()
        noise = draw_normal(tuple(linear.shape), linear, generator)
        width = linear.shape[1]
        projected = self._project(torch.cat([linear, noise], 1)).double()
        weighted = torch.cat(
            [projected[:, :width] * mean_weight, projected[:, width:] * noise_weight], 1
        )
        back = self._lift(weighted).to(linear.dtype)
        ridge = ridge.to(linear.dtype)
        return (linear - back[:, :width]) / ridge + (noise - back[:, width:]) / ridge.sqrt()


class ConjugateGradientDraw:
    """Draws of the same law by perturb-then-solve: ``A y = b + sqrt(lam) M^T e1 +
    sqrt(kappa) e2`` with ``e1, e2 ~ N(0, I)`` has ``y ~ N(A^-1 b, A^-1)`` exactly when
    solved exactly; here by Jacobi-preconditioned conjugate gradients for all
    dimensions at once, warm-started at the previous draw, stopped at ``tol``.

    Args:
        matrix: ``M`` as a sparse CSR ``(n_rows, n_emb)``.
        transposed: ``M^T`` as a sparse CSR ``(n_emb, n_rows)``.
        column_norms: ``diag(M^T M)``, shape ``(n_emb,)``.
    """

    def __init__(
        self, matrix: Tensor, transposed: Tensor, column_norms: Tensor, tol: float, max_iter: int
    ) -> None:
        self.matrix, self.transposed = matrix, transposed
        self.column_norms = column_norms.unsqueeze(1)
        self.tol, self.max_iter = tol, max_iter
        self.iterations: list[int] = []

    def draw(
        self,
        linear: Tensor,
        scale: Tensor,
        ridge: Tensor,
        generator: torch.Generator,
        start: Tensor,
    ) -> Tensor:
        """Draw for ``b = linear`` ``(n_emb, K)``, ``lam = scale``, ``kappa = ridge``,
        starting from ``start``."""
        scale, ridge = scale.to(linear.dtype), ridge.to(linear.dtype)
        own_noise = draw_normal((self.matrix.shape[0], linear.shape[1]), linear, generator)
        emb_noise = draw_normal(tuple(linear.shape), linear, generator)
        target = linear + scale.sqrt() * (self.transposed @ own_noise) + ridge.sqrt() * emb_noise

        def apply(v: Tensor) -> Tensor:
            return scale * (self.transposed @ (self.matrix @ v)) + ridge * v

        inverse_diagonal = 1.0 / (scale * self.column_norms + ridge)
        solution = start.clone()
        residual = target - apply(solution)
        target_norm = target.norm(dim=0).clamp(min=1e-30)
        preconditioned = residual * inverse_diagonal
        direction = preconditioned.clone()
        rho = (residual * preconditioned).sum(0)
        iterations = 0
        while iterations < self.max_iter:
            if bool((residual.norm(dim=0) <= self.tol * target_norm).all()):
                break
            image = apply(direction)
            step = rho / (direction * image).sum(0).clamp(min=1e-30)
            solution += step * direction
            residual -= step * image
            preconditioned = residual * inverse_diagonal
            rho_next = (residual * preconditioned).sum(0)
            direction = preconditioned + (rho_next / rho.clamp(min=1e-30)) * direction
            rho = rho_next
            iterations += 1
        self.iterations.append(iterations)
        return solution
