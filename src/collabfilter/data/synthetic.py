"""Deterministic MovieLens-shaped ratings with a planted low-rank structure.

Benchmarks and scale tests need data of any size whose answer is known. Each rating is
drawn as ``round(mu + b_u + b_i + p_u . q_i + noise)`` clipped to the star scale, with
long-tailed user activity and item popularity (Zipf-like, as in MovieLens). The
generator keeps the truth, so it can say how well any model *could* do: the RMSE of
the Bayes-optimal prediction ``E[r | u, i]`` (the noise floor). Synthetic data is
labelled as such in its load report and never passed off as MovieLens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from collabfilter.data.encoding import Vocabulary
from collabfilter.data.io import LoadReport
from collabfilter.data.ratings import Ratings, RatingScale
from collabfilter.errors import DataError

if TYPE_CHECKING:
    import torch

ML25M_SHAPE = {"n_users": 162_541, "n_items": 59_047, "n_ratings": 25_000_095}
"""Users, items and ratings of MovieLens 25M, the usual scale target."""


@dataclass(frozen=True)
class SyntheticTruth:
    """The parameters the ratings were drawn from.

    Attributes:
        global_mean: ``mu``, before rounding and clipping.
        user_bias: ``b_u`` per user index, float32.
        item_bias: ``b_i`` per item index, float32.
        user_factors: ``p_u``, shape (n_users, n_factors), float32.
        item_factors: ``q_i``, shape (n_items, n_factors), float32.
        noise_std: standard deviation of the Gaussian noise.
        scale: the star scale ratings were rounded and clipped to.
    """

    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    noise_std: float
    scale: RatingScale

    def latent(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """``mu + b_u + b_i + p_u . q_i`` (float32), the rating before noise."""
        dot = np.einsum(
            "ij,ij->i", self.user_factors[user_idx], self.item_factors[item_idx], dtype=np.float32
        )
        biases = self.user_bias[user_idx] + self.item_bias[item_idx]
        return np.asarray(self.global_mean + biases + dot, dtype=np.float32)

    def _level_probabilities(self, latent: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        import torch  # only here: the rest of the data layer does not need it

        levels = torch.tensor(_levels(self.scale), dtype=torch.float64)
        edges = torch.cat(
            [
                torch.tensor([-torch.inf], dtype=torch.float64),
                (levels[1:] + levels[:-1]) / 2,
                torch.tensor([torch.inf], dtype=torch.float64),
            ]
        )
        z = (edges[None, :] - torch.from_numpy(latent).double()[:, None]) / self.noise_std
        cdf = torch.special.ndtr(z)
        return cdf[:, 1:] - cdf[:, :-1], levels

    def expected(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """The Bayes-optimal prediction ``E[r | u, i]`` after rounding and clipping."""
        probabilities, levels = self._level_probabilities(self.latent(user_idx, item_idx))
        return (probabilities @ levels).numpy().astype(np.float32)

    def noise_floor(self, user_idx: np.ndarray, item_idx: np.ndarray) -> float:
        """The lowest RMSE any model can expect on these (user, item) pairs."""
        probabilities, levels = self._level_probabilities(self.latent(user_idx, item_idx))
        mean = probabilities @ levels
        variance = probabilities @ levels**2 - mean**2
        return float(variance.clamp(min=0).mean().sqrt())

    def reference_rmse(self, train: Ratings, valid: Ratings) -> float:
        """RMSE on ``valid`` of a Bayesian reference that must learn from ``train``.

        The noise floor assumes the parameters are known; a model has to estimate them,
        and a user with 20 ratings cannot pin down a bias and ``n_factors`` factors.
        This reference knows the generator's priors and, when estimating a user, the
        true parameters of the items (and the other way round); each row is then the
        posterior mean of a ridge regression on its training ratings. It is not a
        bound (it ignores rounding and clipping, and a model's two sides interact), but
        it tells how much of a gap to the floor is the price of learning from this many
        ratings.
        """
        user_bias, user_factors = self._estimate_rows(train, "user")
        item_bias, item_factors = self._estimate_rows(train, "item")
        learned = SyntheticTruth(
            self.global_mean, user_bias, item_bias, user_factors, item_factors,
            self.noise_std, self.scale,
        )  # fmt: skip
        expected = learned.expected(valid.user_idx, valid.item_idx)
        return float(np.sqrt(np.mean((expected - valid.rating) ** 2)))

    def _estimate_rows(self, train: Ratings, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Posterior-mean bias and factors of every ``side`` row, the other side known."""
        import torch

        own, other = train.user_idx, train.item_idx
        bias, factors = self.user_bias, self.user_factors
        other_bias, other_factors = self.item_bias, self.item_factors
        if side == "item":
            own, other = other, own
            bias, factors, other_bias, other_factors = other_bias, other_factors, bias, factors
        n_rows = len(bias)
        step = self.scale.step or 1.0
        noise = self.noise_std**2 + step**2 / 12  # rounding adds a uniform error
        width = other_factors.shape[1] + 1  # bias, then factors
        gram = torch.zeros(n_rows, width, width, dtype=torch.float64)
        moment = torch.zeros(n_rows, width, dtype=torch.float64)
        for start in range(0, len(train), 500_000):  # the outer products, a chunk at a time
            part = slice(start, start + 500_000)
            rows = torch.from_numpy(own[part]).long()
            features = torch.from_numpy(other_factors[other[part]]).double()
            features = torch.cat([torch.ones(len(rows), 1, dtype=torch.float64), features], 1)
            residual = train.rating[part] - self.global_mean - other_bias[other[part]]
            gram.index_add_(0, rows, features[:, :, None] * features[:, None, :])
            moment.index_add_(0, rows, features * torch.from_numpy(residual).double()[:, None])
        prior = torch.full((width,), 1.0 / float(factors.var()), dtype=torch.float64)
        prior[0] = 1.0 / float(bias.var())
        posterior = torch.linalg.solve(gram / noise + torch.diag(prior), moment / noise)
        estimate = posterior.float().numpy()
        return estimate[:, 0].copy(), estimate[:, 1:].copy()


@dataclass(frozen=True)
class SyntheticRatings:
    """Generated ratings and the truth behind them."""

    ratings: Ratings
    truth: SyntheticTruth


def _levels(scale: RatingScale) -> np.ndarray:
    step = scale.step or 1.0
    return np.arange(scale.low, scale.high + step / 2, step)


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Popularity weights ``rank^-exponent`` over a random ordering of ``n`` ids."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return rng.permutation(weights / weights.sum())


def generate_ratings(
    n_users: int = 943,
    n_items: int = 1682,
    n_ratings: int = 100_000,
    *,
    n_factors: int = 8,
    noise_std: float = 0.7,
    half_stars: bool = False,
    popularity_exponent: float = 0.9,
    activity_exponent: float = 0.5,
    min_per_user: int = 20,
    seed: int = 0,
    n_genres: int = 0,
    n_user_groups: int = 0,
    feature_share: float = 0.6,
) -> SyntheticRatings:
    """Draw MovieLens-shaped explicit ratings (defaults: the shape of ml-100k).

    Every user and every item gets at least one rating; users get ``min_per_user``
    when the budget allows (MovieLens guarantees 20). No (user, item) pair repeats.
    Timestamps are spread over 1996-2019 so temporal splits work.

    Args:
        n_users, n_items, n_ratings: the shape.
        n_factors: rank of the planted interaction term.
        noise_std: Gaussian noise before rounding.
        half_stars: 0.5..5 in half stars (CSV releases) instead of 1..5 stars.
        popularity_exponent: Zipf exponent of item popularity (larger: longer tail).
        activity_exponent: Zipf exponent of user activity.
        min_per_user: ratings each user gets before the rest is shared out.
        seed: everything is a function of the arguments and this seed.
        n_genres: with more than 0, items carry ``genres`` (one to three of this
            many, ``"g1|g4"``) that explain ``feature_share`` of the variance of their
            factors and biases; the rest is their own.
        n_user_groups: likewise users carry a ``group`` (one of this many).
        feature_share: the share of the variance the features explain, in [0, 1].

    Raises:
        DataError: if the shape is impossible (denser than a quarter of all pairs, too few
            ratings to give every user and item one).
    """
    if min(n_users, n_items, n_ratings, n_factors) < 1:
        raise DataError("n_users, n_items, n_ratings and n_factors must be >= 1")
    if n_ratings - n_items > n_users * (n_items // 4):
        raise DataError(
            f"{n_ratings:,} ratings are too dense for {n_users}x{n_items}: each user may rate "
            "at most a quarter of the items (MovieLens: 1-6% density)"
        )
    if n_ratings < n_items + n_users:
        raise DataError("need at least one rating per item plus one per user")
    if min(n_genres, n_user_groups) < 0 or not 0.0 <= feature_share <= 1.0:
        raise DataError("n_genres and n_user_groups must be >= 0, feature_share in [0, 1]")
    rng = np.random.Generator(np.random.PCG64(seed))
    scale = RatingScale(0.5, 5.0, 0.5) if half_stars else RatingScale(1.0, 5.0, 1.0)
    user_idx, item_idx = _draw_pairs(
        n_users, n_items, n_ratings, popularity_exponent, activity_exponent, min_per_user, rng
    )
    truth = _draw_truth(n_users, n_items, n_factors, noise_std, scale, item_idx, rng)
    truth, user_features, item_features = _plant_features(
        truth, n_user_groups, n_genres, feature_share, rng
    )
    latent = truth.latent(user_idx, item_idx)
    noisy = latent + rng.standard_normal(len(latent), dtype=np.float32) * noise_std
    step = scale.step or 1.0
    rating = np.clip(np.round(noisy / step) * step, scale.low, scale.high).astype(np.float32)
    timestamp = rng.integers(820_454_400, 1_546_300_800, size=len(rating))  # 1996..2019
    report = LoadReport(
        source=f"synthetic(n_users={n_users}, n_items={n_items}, n_ratings={n_ratings}, "
        f"n_factors={n_factors}, seed={seed})",
        rows_read=len(rating),
    )
    ratings = Ratings(
        user_idx,
        item_idx,
        rating,
        users=Vocabulary(np.arange(1, n_users + 1), kind="user"),
        items=Vocabulary(np.arange(1, n_items + 1), kind="item"),
        timestamp=timestamp,
        scale=scale,
        report=report,
    ).with_features(user_features, item_features)
    return SyntheticRatings(ratings, truth)


def _draw_pairs(
    n_users: int,
    n_items: int,
    n_ratings: int,
    popularity_exponent: float,
    activity_exponent: float,
    min_per_user: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs: every item once, then per-user quotas by popularity."""
    activity = _zipf_weights(n_users, activity_exponent, rng)
    popularity = _zipf_weights(n_items, popularity_exponent, rng)
    floor = max(1, min(min_per_user, (n_ratings - n_items) // n_users))
    quotas = _share_out(n_ratings - n_items, floor, activity, n_items // 4, rng)
    users = np.concatenate(
        [rng.choice(n_users, size=n_items, p=activity), np.repeat(np.arange(n_users), quotas)]
    )
    items = np.concatenate(
        [rng.permutation(n_items), rng.choice(n_items, size=int(quotas.sum()), p=popularity)]
    )
    fixed = np.zeros(len(users), dtype=bool)
    fixed[:n_items] = True  # the one-rating-per-item block keeps its items
    uniform = np.full(n_items, 1.0 / n_items)
    for round_ in range(100):
        key = users.astype(np.int64) * n_items + items
        clash = _duplicated_after_fixed(key, fixed)
        if not clash.any():
            break
        # Heavy users keep hitting popular items they already rated; after a few
        # rounds, drawing uniformly finds their remaining items quickly.
        weights = popularity if round_ < 10 else uniform
        items[clash] = rng.choice(n_items, size=int(clash.sum()), p=weights)
    else:  # pragma: no cover - only with absurd shapes
        raise DataError("could not draw distinct pairs; lower n_ratings")
    order = rng.permutation(len(users))[:n_ratings]
    return users[order].astype(np.int32), items[order].astype(np.int32)


def _share_out(
    total: int, floor: int, weights: np.ndarray, cap: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-user quotas: ``floor`` each, the rest by ``weights``, none above ``cap``."""
    quotas = np.full(len(weights), floor, dtype=np.int64)
    remaining = total - floor * len(weights)
    while remaining > 0:
        open_ = quotas < cap
        if not open_.any():
            raise DataError("too many ratings for the number of users and items")
        share = np.where(open_, weights, 0.0)
        quotas += rng.multinomial(remaining, share / share.sum())
        over = np.clip(quotas - cap, 0, None)
        quotas -= over
        remaining = int(over.sum())
    return quotas


def _duplicated_after_fixed(key: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Mark repeats of a key, sparing the fixed rows (listed first, always kept)."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    repeat = np.zeros(len(key), dtype=bool)
    repeat[order[1:]] = sorted_key[1:] == sorted_key[:-1]
    return np.asarray(repeat & ~fixed)


def _draw_truth(
    n_users: int,
    n_items: int,
    n_factors: int,
    noise_std: float,
    scale: RatingScale,
    item_idx: np.ndarray,
    rng: np.random.Generator,
) -> SyntheticTruth:
    """Biases and factors; popular items lean better rated, as in MovieLens."""
    counts = np.bincount(item_idx, minlength=n_items).astype(np.float64)
    log_popularity = np.log1p(counts)
    popularity_effect = (log_popularity - log_popularity.mean()) / (log_popularity.std() + 1e-9)
    factor_std = (0.36 / n_factors) ** 0.25  # dot products with std 0.6 at any rank
    return SyntheticTruth(
        global_mean=float(scale.low + 0.62 * (scale.high - scale.low)),
        user_bias=(rng.standard_normal(n_users) * 0.35).astype(np.float32),
        item_bias=(rng.standard_normal(n_items) * 0.35 + 0.2 * popularity_effect).astype(
            np.float32
        ),
        user_factors=(rng.standard_normal((n_users, n_factors)) * factor_std).astype(np.float32),
        item_factors=(rng.standard_normal((n_items, n_factors)) * factor_std).astype(np.float32),
        noise_std=float(noise_std),
        scale=scale,
    )


def _plant_features(
    truth: SyntheticTruth, n_groups: int, n_genres: int, share: float, rng: np.random.Generator
) -> tuple[SyntheticTruth, pd.DataFrame | None, pd.DataFrame | None]:
    """``truth`` with part of its users' (items') factors and biases explained by a
    group (genres), and the feature tables; unchanged without groups or genres."""
    users = items = None
    user_factors, user_bias = truth.user_factors, truth.user_bias
    item_factors, item_bias = truth.item_factors, truth.item_bias
    if n_groups:
        group = rng.integers(n_groups, size=len(user_bias))
        membership = np.eye(n_groups, dtype=np.float32)[group]
        user_factors, user_bias = _blend(membership, user_factors, user_bias, share, rng)
        users = pd.DataFrame({"group": [f"u{g}" for g in group]},
                             index=np.arange(1, len(group) + 1))  # fmt: skip
    if n_genres:
        counts = rng.integers(1, min(3, n_genres) + 1, size=len(item_bias))
        membership = np.zeros((len(item_bias), n_genres), dtype=np.float32)
        names = []
        for item, count in enumerate(counts):  # per item, at set-up only
            chosen = np.sort(rng.choice(n_genres, size=count, replace=False))
            membership[item, chosen] = 1.0
            names.append("|".join(f"g{g}" for g in chosen))
        membership /= np.sqrt(counts)[:, None]
        item_factors, item_bias = _blend(membership, item_factors, item_bias, share, rng)
        items = pd.DataFrame({"genres": names}, index=np.arange(1, len(names) + 1))
    planted = SyntheticTruth(
        truth.global_mean, user_bias, item_bias, user_factors, item_factors, truth.noise_std,
        truth.scale,
    )  # fmt: skip
    return planted, users, items


def _blend(
    membership: np.ndarray, factors: np.ndarray, bias: np.ndarray, share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Factors and biases of the same spread, ``share`` of their variance from the
    features' own draws (``membership @ draws``, rows of norm one)."""
    factor_std, bias_std = float(factors.std()), float(bias.std())
    shared = membership @ rng.standard_normal((membership.shape[1], factors.shape[1]))
    shared_bias = membership @ rng.standard_normal(membership.shape[1])
    keep, add = np.sqrt(1.0 - share), np.sqrt(share)
    return (
        (keep * factors + add * factor_std * shared).astype(np.float32),
        (keep * bias + add * bias_std * shared_bias).astype(np.float32),
    )
