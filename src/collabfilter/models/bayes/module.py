"""The posterior-predictive model of Bayesian matrix factorisation: kept Gibbs samples.

The sampler (:mod:`collabfilter.models.bayes.gibbs`) draws the parameters; this module only
holds the samples it kept and turns them into predictions, uncertainties, fold-ins of
new users and posterior means for interpretation. Every tensor is a registered buffer,
so the model saves as a safetensors state dict and is rebuilt from its shapes and
config alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from collabfilter.data import RatingScale
from collabfilter.errors import ModelFileError, NotFittedError
from collabfilter.models.family import FoldContext, FoldedUser, RatingModule


def packed_rows(
    users: Tensor, items: Tensor, global_mean: float, cold: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """One sample's rows in the packed layout whose row-wise dot product is the rating:
    users ``[U_u, b_u, 1]``, items ``[I_i, 1, b_i + w0]`` from rows ``[factors, bias]``;
    with ``cold`` = (users' cold offsets ``c_u``, items' cold flags), one more column
    each: ``c_u``, and 1 for an item without training ratings, 0 for the others."""
    ones_users = torch.ones(users.shape[0], 1, device=users.device, dtype=users.dtype)
    ones_items = torch.ones(items.shape[0], 1, device=items.device, dtype=items.dtype)
    k = items.shape[1] - 1
    user_parts = [users, ones_users]
    item_parts = [items[:, :k], ones_items, items[:, k:] + global_mean]
    if cold is not None:
        user_parts.append(cold[0].to(users.dtype).unsqueeze(1))
        item_parts.append(cold[1].to(items.dtype).unsqueeze(1))
    return torch.cat(user_parts, 1), torch.cat(item_parts, 1)


def cold_offset(
    users: Tensor, pooled_item: Tensor, global_mean: Tensor | float, rating_sums: Tensor,
    counts: Tensor | float, bias_precision: Tensor | float, noise_precision: Tensor | float,
) -> Tensor:  # fmt: skip
    """Users' cold offsets ``c_u`` in one sample: their damped mean residual against the
    pooled item, ``(sum r - n (w0 + b_u + U_u . I_pooled + b_pooled)) / (n + lam_b /
    alpha)``, the damping being the noise variance over the user-bias prior's. ``users``
    are rows ``[U_u, b_u]``; every argument broadcasts over leading dimensions."""
    k = users.shape[-1] - 1
    expected = (
        global_mean + users[..., k] + pooled_item[..., k]
        + (users[..., :k] * pooled_item[..., :k]).sum(-1)
    )  # fmt: skip
    return (rating_sums - counts * expected) / (counts + bias_precision / noise_precision)


def pair_ratings(user_rows: Tensor, item_rows: Tensor) -> Tensor:
    """The ratings of paired packed rows (one sample, or the sum of several)."""
    return (user_rows * item_rows).sum(-1)


@dataclass(frozen=True)
class BayesUser(FoldedUser):
    """A folded-in user: their wide row, one block per kept sample."""

    row: Tensor


class BayesianMF(RatingModule):
    """Posterior mean of a Bayesian factorisation with implicit feedback::

        r_s(u, i) = w0_s + b_u,s + b_i,s + U_u,s . I_i,s
        U_u = v_u + |N(u)|^-1/2 * sum_{j in N(u)} y_j
        I_i = w_i + |N(i)|^-1/2 * sum_{v in N(i)} z_v
        r(u, i) = clip(mean over kept samples s of r_s(u, i), low, high)

    ``N(u)`` are the items ``u`` rated in training, ``N(i)`` the users who rated
    ``i``; ``y`` and ``z`` are the implicit embeddings (the biases get implicit terms
    the same way). The noise is ``N(0, 1 / alpha_s)``.

    An item without training ratings (a cold item) has no rows of its own to average:
    each sample gives it the row that best fits all the training ratings at once (the
    posterior of one item that received them all), moved by its own feature part, and
    each user a cold offset ``c_u``: their damped mean residual against that pooled
    item, damped by the sample's noise variance over the user-bias prior's
    (:func:`cold_offset`; ``r_s(u, i) += c_u,s`` for cold items only). Without features
    a cold item is then predicted much as the bias baseline predicts it; features move
    it from there. Users without training ratings, and new users folded in from no
    ratings, get the pooled user row the same way (no offset).

    Sample ``s`` is stored as a block of ``n_factors + 3`` columns, users
    ``[U_u,s, b_u,s, 1, c_u,s]`` and items ``[I_i,s, 1, b_i,s + w0_s, cold_i]``, so the
    average over ``S`` samples is one dot product of rows ``S * (n_factors + 3)`` wide
    divided by ``S``. For fold-in each sample also keeps the implicit item embeddings
    ``[y_j,s, y-bias_j,s]``, the user prior (mean and precision per dimension), the
    pooled item and user rows. (Files written before cold offsets existed hold blocks of
    ``n_factors + 2`` columns, without the last one.)

    Memory per kept sample, float32: ``4 * ((n_users + n_items) * (n_factors + 3)
    + n_items * (n_factors + 1) + 4 * (n_factors + 1) + 2)`` bytes
    (:meth:`bytes_per_sample`; ``BayesConfig`` bounds the kept samples by a budget).

    Args:
        n_users: user rows.
        n_items: item rows.
        n_samples: kept samples ``S``.
        n_factors: length of the factor vectors.
        implicit: whether the model has the implicit-feedback terms (fold-in adds the
            rated items' implicit embeddings to the user's prior mean).
        n_user_features: columns of the encoded user features the model was trained
            with (0: none). Each sample then keeps their link ``beta``, and the model the
            average user's feature row: a folded-in user's prior mean adds their own
            row's ``F beta``, or the average's when their features are not given.
        cold_offsets: whether the rows carry the cold-item column (every model the
            sampler fits; False only for files written before it existed).
    """

    family = "bayes"

    has_uncertainty = True

    scores_unrated = True

    def __init__(
        self, n_users: int, n_items: int, n_samples: int, n_factors: int = 10,
        implicit: bool = True, n_user_features: int = 0, cold_offsets: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        for name, value in (
            ("n_users", n_users), ("n_items", n_items), ("n_samples", n_samples),
            ("n_factors", n_factors),
        ):  # fmt: skip
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if n_user_features < 0:
            raise ValueError(f"n_user_features must be >= 0, got {n_user_features}")
        self.n_factors = int(n_factors)
        self.implicit = bool(implicit)
        self.cold_offsets = bool(cold_offsets)
        k, n = n_factors, n_samples
        self.width = k + 2 + int(self.cold_offsets)
        self.register_buffer("user_rows", torch.zeros(n_users, n * self.width))
        self.register_buffer("item_rows", torch.zeros(n_items, n * self.width))
        self.register_buffer("implicit_item_rows", torch.zeros(n_items, n * (k + 1)))
        self.register_buffer("user_prior_mean", torch.zeros(n, k + 1))
        self.register_buffer("user_prior_precision", torch.ones(n, k + 1))
        self.register_buffer("noise_precision", torch.ones(n))
        self.register_buffer("global_means", torch.zeros(n))
        self.register_buffer("rating_range", torch.tensor([-torch.inf, torch.inf]))
        feature_rows, feature_mean = (
            torch.zeros(n_user_features, n * (k + 1)),
            torch.zeros(n_user_features),
        )
        if self.cold_offsets:  # files written before cold offsets hold neither
            self.register_buffer("pooled_items", torch.zeros(n, k + 1))
            self.register_buffer("pooled_users", torch.zeros(n, k + 1))
        if n_user_features:  # only then in the state (files without features hold none)
            self.register_buffer("user_feature_rows", feature_rows)
            self.register_buffer("user_feature_mean", feature_mean)
        else:
            self.user_feature_rows, self.user_feature_mean = feature_rows, feature_mean
        self.user_rows: Tensor
        self.item_rows: Tensor
        self.implicit_item_rows: Tensor
        self.user_prior_mean: Tensor
        self.user_prior_precision: Tensor
        self.noise_precision: Tensor
        self.global_means: Tensor
        self.rating_range: Tensor
        self.pooled_items: Tensor  # with cold offsets only
        self.pooled_users: Tensor

    def spec(self) -> dict[str, Any]:
        return {
            "n_users": int(self.user_rows.shape[0]), "n_items": int(self.item_rows.shape[0]),
            "n_samples": self.n_samples, "n_factors": self.n_factors, "implicit": self.implicit,
            "n_user_features": int(self.user_feature_mean.shape[0]),
            "cold_offsets": self.cold_offsets,
        }  # fmt: skip

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BayesianMF:
        return cls(
            int(spec["n_users"]), int(spec["n_items"]), int(spec["n_samples"]),
            int(spec["n_factors"]), bool(spec["implicit"]), int(spec.get("n_user_features", 0)),
            bool(spec.get("cold_offsets", False)),
        )  # fmt: skip

    def check_state(self, scale: RatingScale) -> None:
        super().check_state(scale)
        low, high = (float(v) for v in self.rating_range)
        if not scale.low - 1e-6 <= low < high <= scale.high + 1e-6:
            raise ModelFileError(
                f"rating_range ({low}, {high}) does not lie in the rating scale {scale}"
            )
        for name in ("noise_precision", "user_prior_precision"):
            if not bool((getattr(self, name) > 0).all()):
                raise ModelFileError(f"{name} must be positive")
        if self.cold_offsets:
            flags = self._sample_view(self.item_rows, self.width)[..., -1]
            if not bool(((flags == 0) | (flags == 1)).all()) or not bool(
                (flags == flags[:, :1]).all()
            ):
                raise ModelFileError("item_rows' cold flags must be 0 or 1, one per item")

    def check_training(self, item_counts: np.ndarray) -> None:
        if self.cold_offsets and not np.array_equal(self.cold_items().numpy(), item_counts == 0):
            raise ModelFileError(
                "item_rows' cold flags must mark exactly the items without training ratings"
            )

    def cold_items(self) -> Tensor:
        """Which items the rows flag as cold (without training ratings), bool."""
        if not self.cold_offsets:
            return torch.zeros(self.item_rows.shape[0], dtype=torch.bool)
        return self._sample_view(self.item_rows, self.width)[:, 0, -1] > 0.5

    @staticmethod
    def bytes_per_sample(
        n_users: int, n_items: int, n_factors: int, n_user_features: int = 0
    ) -> int:
        """Bytes one kept sample adds to the model (see the class docstring)."""
        k = n_factors
        rows = (n_users + n_items) * (k + 3) + (n_items + n_user_features) * (k + 1)
        return 4 * (rows + 4 * (k + 1) + 2)

    @property
    def n_samples(self) -> int:
        """Kept samples ``S``."""
        return int(self.noise_precision.shape[0])

    def _require_samples(self) -> None:
        if not bool(torch.isfinite(self.rating_range).all()):
            raise NotFittedError("BayesianMF holds no samples yet: run the Gibbs sampler")

    def clip_ratings(self, x: Tensor) -> Tensor:
        """Scores clipped to the rating scale, as predictions are."""
        self._require_samples()
        return x.clamp(float(self.rating_range[0]), float(self.rating_range[1]))

    def _per_sample(self, user_rows: Tensor, item_rows: Tensor) -> Tensor:
        """``r_s`` for paired wide rows, shape ``(batch, S)``."""
        shape = (user_rows.shape[0], self.n_samples, self.width)
        return pair_ratings(user_rows.view(shape), item_rows.view(shape))

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Posterior-mean ratings, clipped to the scale, shape ``(batch,)`` (int64
        indices of that shape)."""
        parts = [
            pair_ratings(self.user_rows[user_idx[part]], self.item_rows[item_idx[part]])
            for part in self._pair_chunks(user_idx.shape[0])
        ]
        return self.clip_ratings(torch.cat(parts) / self.n_samples)

    def _pair_chunks(self, n_pairs: int) -> list[slice]:
        """Slices of at most ``2**22 / width`` pairs: the gathered wide rows of a chunk
        take 32 MB at most, however many samples are kept."""
        step = max(1, 2**22 // self.user_rows.shape[1])
        return [slice(start, start + step) for start in range(0, max(n_pairs, 1), step)]

    def score_items(self, user_idx: Tensor) -> Tensor:
        """Posterior-mean ratings of every item for each user, ``(users, items)``, not
        clipped: for ranking, where films predicted past the top of the scale must not
        tie (callers clip what they show as ratings)."""
        return self.score_user_rows(self.user_rows[user_idx])

    ranks_item_ranges = True

    def rank_items(self, user_idx: Tensor, items: slice | None = None) -> Tensor:
        """:meth:`score_items`, for a range of items if asked."""
        return self.score_user_rows(self.user_rows[user_idx], items)

    def score_user_rows(self, user_rows: Tensor, items: slice | None = None) -> Tensor:
        """Unclipped ratings of every item (or a range of them) for users given as wide
        rows (from :meth:`fold_in`), shape ``(n, S * width)`` -> ``(n, items)``."""
        self._require_samples()
        part = slice(None) if items is None else items
        return user_rows @ self.item_rows[part].T / self.n_samples

    def predict_with_uncertainty(
        self, user_idx: Tensor, item_idx: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean, std of the mean, predictive std)``, each of shape ``(batch,)``.

        The std of the mean is the spread of ``r_s(u, i)`` over kept samples (how sure
        the model is of the expected rating); the predictive std adds the noise: the
        standard deviation of the mixture of ``N(r_s(u, i), 1 / alpha_s)``. The mean is
        clipped to the scale, the spreads are not.
        """
        per_sample = torch.cat([
            self._per_sample(self.user_rows[user_idx[part]], self.item_rows[item_idx[part]])
            for part in self._pair_chunks(user_idx.shape[0])
        ])  # fmt: skip
        mean = per_sample.mean(1)
        spread = per_sample.var(1, correction=0)
        noise = (1.0 / self.noise_precision).mean()
        return self.clip_ratings(mean), spread.sqrt(), (spread + noise).sqrt()

    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> BayesUser:
        """The wide row of a new user who rated ``item_idx`` (int64, shape ``(n,)``)
        with ``ratings`` (float, same shape).

        Per kept sample, the user's factors and bias are the Gaussian posterior mean
        given that sample's item vectors and biases, noise precision and user prior,
        whose mean includes the implicit term ``|N|^-1/2 * sum of the rated items'
        y``; their cold offset is their damped mean residual against the sample's
        pooled item, as for trained users. With no ratings, they are the pooled user
        (moved by their features' part), as a trained user without ratings is. The row
        has shape ``(S * width,)``.
        """
        if item_idx.ndim != 1 or item_idx.shape != ratings.shape:
            raise ValueError(
                f"item_idx and ratings must be 1-d of one length, got shapes "
                f"{tuple(item_idx.shape)} and {tuple(ratings.shape)}"
            )
        k, n = self.n_factors, self.n_samples
        items = self.item_rows[item_idx].view(-1, n, self.width).transpose(0, 1).double()
        features = torch.cat([items[..., :k], torch.ones_like(items[..., :1])], -1)
        target = ratings.double().reshape(1, -1) - items[..., k + 1]  # (S, ratings)
        prior_mean = self.user_prior_mean.double()
        feature_part = torch.zeros_like(prior_mean)  # own features' part beyond the average
        if self.user_feature_mean.numel():
            row = self.user_feature_mean if context.user_features is None else context.user_features
            if row.shape != self.user_feature_mean.shape:
                raise ValueError(f"user features must be {tuple(self.user_feature_mean.shape)} "
                                 f"long, got {tuple(row.shape)}")  # fmt: skip
            beta = self.user_feature_rows.view(-1, n, k + 1).double()
            prior_mean = prior_mean + torch.einsum("f,fsd->sd", row.double(), beta)
            shift = row.double() - self.user_feature_mean.double()
            feature_part = torch.einsum("f,fsd->sd", shift, beta)
        if self.cold_offsets and item_idx.numel() == 0:
            user = self.pooled_users.double() + feature_part
            rows = [user, torch.ones(n, 1, dtype=user.dtype), torch.zeros(n, 1, dtype=user.dtype)]
            return BayesUser(torch.cat(rows, 1).float().reshape(-1))
        if self.implicit and item_idx.numel() > 0:
            implicit = self.implicit_item_rows[item_idx].view(-1, n, k + 1).double()
            prior_mean = prior_mean + implicit.sum(0) / item_idx.numel() ** 0.5
        precision_diag = self.user_prior_precision.double()
        alpha = self.noise_precision.double().view(n, 1, 1)
        precision = alpha * features.transpose(1, 2) @ features + torch.diag_embed(precision_diag)
        moment = alpha[:, :, 0] * (features.transpose(1, 2) @ target.unsqueeze(-1))[..., 0]
        moment = moment + precision_diag * prior_mean
        user = torch.linalg.solve(precision, moment)  # (S, k + 1)
        parts = [user, torch.ones(n, 1, dtype=user.dtype)]
        if self.cold_offsets:
            offset = cold_offset(
                user, self.pooled_items.double(), self.global_means.double(),
                ratings.double().sum(), float(item_idx.numel()),
                self.user_prior_precision.double()[:, k], self.noise_precision.double(),
            )  # fmt: skip
            parts.append(offset.unsqueeze(1))
        return BayesUser(torch.cat(parts, 1).float().reshape(-1))

    def _row(self, user: FoldedUser) -> Tensor:
        if not isinstance(user, BayesUser):
            raise TypeError(f"a bayes model scores its own folded users, not {type(user).__name__}")
        return user.row.to(self.item_rows.device)

    def score_folded(self, user: FoldedUser) -> Tensor:
        """Unclipped ratings of every item for a folded-in user, ``(items,)`` (as
        :meth:`score_items`, for ranking)."""
        return self.score_user_rows(self._row(user).unsqueeze(0))[0]

    def predict_folded(self, user: FoldedUser, item_idx: Tensor) -> Tensor:
        """Posterior-mean ratings, clipped, of some items for a folded-in user."""
        row = self._row(user).unsqueeze(0)
        return self.clip_ratings(pair_ratings(row, self.item_rows[item_idx]) / self.n_samples)

    def _sample_view(self, rows: Tensor, width: int) -> Tensor:
        return rows.view(rows.shape[0], self.n_samples, width)

    def user_effect(self) -> Tensor:
        """Posterior mean of each user's bias ``b_u``, shape ``(users,)``."""
        k = self.n_factors
        return self._sample_view(self.user_rows, self.width)[..., k].mean(1)

    def item_effect(self) -> Tensor:
        """Posterior mean of each item's bias ``b_i``, shape ``(items,)``; the global
        mean ``w0`` is :meth:`global_mean`."""
        k = self.n_factors
        return (
            self._sample_view(self.item_rows, self.width)[..., k + 1].mean(1) - self.global_mean()
        )

    def global_mean(self) -> Tensor:
        """Posterior mean of ``w0`` (a 0-d tensor)."""
        return self.global_means.mean()

    def item_vectors(self) -> Tensor:
        """Posterior mean of the item vectors ``I_i`` (implicit part included), shape
        ``(items, n_factors)``, for PCA and similar items.

        Samples differ mostly by posterior noise, not by a rotation of the factors
        (which would leave predictions unchanged), so they are averaged as they are
        (``docs/tuning.md`` has the check)."""
        k = self.n_factors
        return self._sample_view(self.item_rows, self.width)[..., :k].mean(1)

    def effects(self) -> tuple[Tensor, Tensor]:
        return self.user_effect(), self.item_effect()

    def parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """Posterior means of the rating's terms: ``w0``, ``b_u``, ``b_i``, ``U_u . I_i``
        and, for a cold item, the user's cold offset (they add up to the unclipped
        posterior-mean rating)."""
        k = self.n_factors
        users = self._sample_view(self.user_rows[[user_idx]], self.width)[0]
        items = self._sample_view(self.item_rows[[item_idx]], self.width)[0]
        global_mean = float(self.global_mean())
        cold = (users[:, -1] * items[:, -1]).mean() if self.cold_offsets else 0.0
        return {
            "global": global_mean,
            "user bias": float(users[:, k].mean()),
            "item bias": float(items[:, k + 1].mean()) - global_mean,
            "factors": float((users[:, :k] * items[:, :k]).sum(1).mean()),
            "cold offset": float(cold),
        }

    def user_vectors(self) -> Tensor:
        """Posterior mean of the user vectors ``U_u``, shape ``(users, n_factors)``."""
        k = self.n_factors
        return self._sample_view(self.user_rows, self.width)[..., :k].mean(1)
