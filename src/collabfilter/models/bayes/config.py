"""The Bayesian family's configs: the model's sizes, and how its chain is run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from collabfilter.config import FitConfig, ModelConfig, require


@dataclass(frozen=True)
class BayesMFConfig(ModelConfig):
    """Bayesian matrix factorisation with implicit feedback (:class:`BayesianMF`)."""

    KINDS: ClassVar[tuple[str, ...]] = ("bayes",)

    n_factors: int = 10
    """Length of the user and item factor vectors (the bias is one more dimension)."""
    implicit: bool = True
    """Add each user's rated items (and each item's raters), normalised by
    ``1/sqrt(count)``, to its prior mean (SVD++ on both sides, "flipped SVD++")."""

    def __post_init__(self) -> None:
        require(self.n_factors >= 1, f"n_factors must be >= 1, got {self.n_factors}")


@dataclass(frozen=True)
class BayesConfig(FitConfig):
    """How a Bayesian factorisation is fitted: Gibbs sampling
    (:mod:`collabfilter.models.bayes.gibbs`).

    There is no learning rate and no weight decay: the noise precision and every
    group's prior mean and precision are sampled too. The constants below only set
    the weak hyper-priors over those; with thousands of ratings the data outweigh them.
    """

    sweeps: int = 200
    """Gibbs sweeps in all, burn-in included."""
    burn_in: int = 5
    """Sweeps whose samples are discarded: the chain starts from small random factors.
    Short: the early, still shrunk samples help the average a little (chosen on
    validation parts carved out of ml-100k's training files, ``docs/tuning.md``)."""
    thin: int = 1
    """Keep every ``thin``-th sample after burn-in (consecutive samples are correlated,
    but keeping them all still lowers the variance of the averaged prediction)."""
    max_kept: int = 200
    """Most samples kept; past this, thinning grows to spread them over the run."""
    max_kept_bytes: int = 2**30
    """Most bytes the kept samples may take (see ``BayesianMF`` for the cost per
    sample); past this, thinning grows as for ``max_kept``."""
    init_std: float = 0.1
    """Standard deviation of the random initial factors (libFM and myFM use 0.1)."""
    noise_shape: float = 1.0
    """Gamma shape of the noise precision's prior: one pseudo-observation, so a hundred
    ratings already dominate it."""
    noise_rate: float = 1.0
    """Gamma rate of the noise precision's prior (prior mean precision 1: a noise
    standard deviation of one star, the right order for star ratings)."""
    hyper_shape: float = 0.5
    """Gamma shape of each group's per-dimension precision prior: libFM's and myFM's
    ``Gamma(alpha_lambda / 2, beta_lambda / 2)`` with ``alpha_lambda = beta_lambda = 1``.
    The rate bounds how far an unneeded dimension may shrink: too small a rate lets
    dimensions collapse (the values tried are in ``docs/tuning.md``)."""
    hyper_rate: float = 0.5
    """Gamma rate of each group's per-dimension precision prior (see ``hyper_shape``)."""
    mean_strength: float = 1.0
    """Pseudo-rows behind the zero prior mean of each group's mean (libFM's gamma_0):
    negligible beside hundreds of rows, enough to keep an empty group finite."""
    global_mean_precision: float = 1e-4
    """Precision of the zero-centred prior of the global mean: nearly flat over any
    rating scale (standard deviation 100)."""
    exact_max_rows: int = 2000
    """The implicit embeddings are drawn exactly from one eigendecomposition of a
    square matrix of ``min(users, items)`` rows when that is at most this; larger data
    use preconditioned conjugate gradients each sweep (the decomposition's cost grows
    with the cube of its rows)."""
    cg_tol: float = 1e-2
    """Relative residual at which conjugate gradients stop (large data only)."""
    cg_max_iter: int = 50
    """Conjugate-gradient iterations per draw at most (large data only)."""
    monitor_ratings: int = 100_000
    """Training ratings (a fixed random subset past this) whose running-average
    prediction gives the training RMSE reported each sweep."""

    def with_length(self, n: int) -> BayesConfig:
        """This chain with ``n`` sweeps (and a burn-in that leaves one kept)."""
        return dataclasses.replace(self, sweeps=n, burn_in=min(self.burn_in, max(n - 1, 0)))

    def kept_schedule(self) -> list[int]:
        """The sweeps (1-based) whose samples are kept, before any byte budget."""
        kept = list(range(self.burn_in + self.thin, self.sweeps + 1, self.thin))
        if len(kept) > self.max_kept:
            kept = (
                [
                    kept[round(j * (len(kept) - 1) / (self.max_kept - 1))]
                    for j in range(self.max_kept)
                ]
                if self.max_kept > 1
                else [kept[-1]]
            )
        return kept

    def __post_init__(self) -> None:
        for name in (
            "sweeps",
            "thin",
            "max_kept",
            "max_kept_bytes",
            "cg_max_iter",
            "monitor_ratings",
        ):
            value = getattr(self, name)
            require(value >= 1, f"{name} must be >= 1, got {value}")
        require(
            0 <= self.burn_in < self.sweeps,
            f"burn_in must lie in [0, sweeps={self.sweeps}), got {self.burn_in}",
        )
        require(
            self.burn_in + self.thin <= self.sweeps,
            f"burn_in + thin ({self.burn_in} + {self.thin}) must be <= sweeps "
            f"({self.sweeps}) so that at least one sample is kept",
        )
        for name in (
            "init_std",
            "noise_shape",
            "noise_rate",
            "hyper_shape",
            "hyper_rate",
            "mean_strength",
            "global_mean_precision",
            "cg_tol",
        ):
            value = getattr(self, name)
            require(value > 0, f"{name} must be > 0, got {value}")
        require(self.exact_max_rows >= 0, f"exact_max_rows must be >= 0, got {self.exact_max_rows}")


RECIPES: dict[str, tuple[BayesMFConfig, BayesConfig]] = {"bayes": (BayesMFConfig(), BayesConfig())}
"""``bayes`` samples its hyper-parameters (no rate, no decay to tune) and is the most
accurate rating model: see :class:`BayesConfig`."""
