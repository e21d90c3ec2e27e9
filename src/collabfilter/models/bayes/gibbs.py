"""Gibbs sampling of Bayesian matrix factorisation with implicit feedback.

The model is :class:`~collabfilter.models.BayesianMF`'s: ``r = w0 + b_u + b_i + U_u .
I_i + noise``. Following Macau (Simm et al. 2017), the full user vector ``U_u`` (with
the bias as one more column) is the latent, with prior ``N(mu_U + M_u y, diag(1 /
lambda_U))``, where ``M_u`` is the users x items training pattern with entries
``|N(u)|^-1/2``; likewise items with ``z``. Then every conditional is a conjugate draw
of whole tables at once:

* ``U | rest`` is independent per user: per-user Gram matrices ``sum_i f_i f_i^T``
  (``f_i = [I_i, 1]``) are ONE sparse product of the pattern with the items' packed
  outer products (``users x items`` times ``items x K(K+1)/2``, nothing per rating),
  then a batched Cholesky draw (:func:`~collabfilter.models.bayes.gaussian.draw_rows`);
* ``y | U`` no longer involves the ratings: a Bayesian linear regression drawn exactly
  from one eigendecomposition, or by perturb-then-solve conjugate gradients on large
  catalogues (:mod:`collabfilter.models.bayes.gaussian`);
* group means and precisions (Normal-Gamma per dimension), the global mean and the
  noise precision from sums the row draws already produced: the squared error is
  ``sum t^2 - 2 x.m + x^T G x`` per row, so no sweep visits the ratings one by one.

Side features enter as Macau's link matrices do: a user's prior mean becomes
``mu_U + M_u y + F_u beta`` with ``F`` the users' encoded features
(:mod:`collabfilter.data.features`), so ``[M | F]`` replaces ``M`` and ``[y; beta]``
is drawn by the same regression. A user with few ratings then leans on what users of
the same features did, and one with many ratings on their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from collabfilter.distributed import all_reduce_sum
from collabfilter.errors import TrainingDivergedError
from collabfilter.models.bayes.config import BayesConfig
from collabfilter.models.bayes.gaussian import (
    ConjugateGradientDraw,
    NormalGammaPrior,
    SpectralDraw,
    draw_gamma,
    draw_normal_gamma,
    draw_rows,
    gram_from_triangle,
    triangle,
)
from collabfilter.models.bayes.module import BayesianMF, cold_offset, packed_rows, pair_ratings
from collabfilter.models.bayes.views import RatingViews, build_views, check_ratings, link

SweepCallback = Callable[[int, float, "float | None", float], None]
"""Called after each sweep with (sweep number from 1, running-average train RMSE,
running-average valid RMSE or None, seconds of the sweep)."""


@dataclass
class _State:
    """One side's part of the chain: rows ``[factors, bias]``, the link ``L = [M | F]``
    (implicit pattern, then features; either may be absent) and its embeddings (``y``
    of the other side's rows, then ``beta`` of the features), ``L @ embedding`` and the
    Normal-Gamma draws ``(mean, precision)`` of both groups."""

    rows: Tensor
    embedding: Tensor
    offset: Tensor
    hyper: tuple[Tensor, Tensor]
    embedding_hyper: tuple[Tensor, Tensor]
    link: tuple[Tensor, Tensor] | None = None
    embedding_draw: SpectralDraw | ConjugateGradientDraw | None = None


class GibbsSampler:
    """The chain's state and one sweep over every conditional.

    Args:
        user_idx: int tensor ``(n,)`` of training users.
        item_idx: int tensor ``(n,)`` of training items.
        rating: float tensor ``(n,)`` of ratings.
        n_users: user rows (users without training ratings are drawn from the prior,
            and kept as the pooled user row).
        n_items: item rows.
        config: schedule and hyper-priors.
        n_factors: length of the factor vectors.
        implicit: with the implicit-feedback terms.
        generator: every random draw comes from it (same seed, same samples).
        device: where the tables live.
        rating_range: predictions are clipped to it (None: the training min and max).
        user_features: CSR ``(n_users, columns)`` of the users' encoded features, or
            None; likewise ``item_features``.

    Raises:
        DataError: on empty or misaligned inputs, or indices out of range.
    """

    def __init__(
        self,
        user_idx: Tensor,
        item_idx: Tensor,
        rating: Tensor,
        n_users: int,
        n_items: int,
        config: BayesConfig,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        rating_range: tuple[float, float] | None = None,
        shard: tuple[Tensor, Tensor, Tensor] | None = None,
        *,
        n_factors: int = 10,
        implicit: bool = True,
        user_features: Tensor | None = None,
        item_features: Tensor | None = None,
    ) -> None:
        check_ratings(user_idx, item_idx, rating, n_users, n_items)
        self.config, self.generator = config, generator
        self.n_factors, self.implicit = n_factors, implicit
        self.device = torch.device(device)
        self.n_users, self.n_items = n_users, n_items
        users = user_idx.to(self.device, torch.int64)
        items = item_idx.to(self.device, torch.int64)
        values = rating.to(self.device, torch.float32)
        self.n_ratings = int(values.shape[0])
        self.rating_range = rating_range or (float(values.min()), float(values.max()))
        self.sum_ratings = float(values.double().sum())
        self.sum_squares = float((values.double() ** 2).sum())
        self.user_side, self.item_side = build_views(users, items, values, n_users, n_items)
        # In a torch.distributed job each rank sums the Gram matrices and moments of its
        # shard of the ratings, and the ranks add them up: every rank then draws the
        # same rows from the same generator (the implicit terms and the global sums
        # use all the ratings, which every rank holds).
        self.shard_sides = (self.user_side, self.item_side)
        self.reduce: Callable[[Tensor], Tensor] = lambda total: total
        if shard is not None:
            shard_users, shard_items, shard_values = shard
            self.shard_sides = build_views(
                shard_users.to(self.device, torch.int64), shard_items.to(self.device, torch.int64),
                shard_values.to(self.device, torch.float32), n_users, n_items,
            )  # fmt: skip
            self.reduce = all_reduce_sum
        k = n_factors
        self.width = k + 1
        self.tri = triangle(self.width, self.device)
        self.prior = NormalGammaPrior(config.hyper_shape, config.hyper_rate, config.mean_strength)
        self.user_feature_mean = _column_means(user_features, self.user_side.counts)
        self.user_state = self._initial_state(
            n_users, link(self.user_side, user_features, implicit)
        )
        self.item_state = self._initial_state(
            n_items, link(self.item_side, item_features, implicit)
        )
        self.global_mean = self.sum_ratings / self.n_ratings
        self.noise_precision = 1.0
        self.sweeps_done = 0
        self._kept_sweep: tuple[int, tuple[Tensor, Tensor, Tensor, Tensor]] | None = None

    # ------------------------------------------------------------------ set-up
    def _initial_state(self, n_rows: int, link: tuple[Tensor, Tensor] | None) -> _State:
        rows = torch.randn(n_rows, self.width, generator=self.generator, device=self.device)
        rows *= self.config.init_std
        rows[:, -1] = 0.0  # biases start at zero
        zeros = torch.zeros(self.width, dtype=torch.float64, device=self.device)
        n_embedding = 0 if link is None else link[0].shape[1]
        return _State(
            rows=rows,
            embedding=torch.zeros(n_embedding, self.width, device=self.device),
            offset=torch.zeros_like(rows),
            hyper=(zeros, torch.ones_like(zeros)),
            embedding_hyper=(zeros, torch.ones_like(zeros)),
            link=link,
            embedding_draw=None if link is None else self._embedding_draw(*link),
        )

    @property
    def users(self) -> Tensor:
        """Current user rows ``[U_u, b_u]``, ``(n_users, n_factors + 1)``."""
        return self.user_state.rows

    @property
    def items(self) -> Tensor:
        """Current item rows ``[I_i, b_i]``, ``(n_items, n_factors + 1)``."""
        return self.item_state.rows

    def _embedding_draw(
        self, matrix: Tensor, transposed: Tensor
    ) -> SpectralDraw | ConjugateGradientDraw:
        """Exact spectral draws when the smaller dimension of the link is small enough."""
        n_own, n_emb = matrix.shape
        if min(n_own, n_emb) <= self.config.exact_max_rows and n_own * n_emb <= 2**27:
            return SpectralDraw(matrix.to_dense())
        squares = transposed.values() ** 2
        column_norms = torch.zeros(n_emb, device=self.device).index_add_(
            0, torch.repeat_interleave(
                torch.arange(n_emb, device=self.device), transposed.crow_indices().diff()
            ), squares,
        )  # fmt: skip
        return ConjugateGradientDraw(
            matrix, transposed, column_norms, self.config.cg_tol, self.config.cg_max_iter
        )

    # ------------------------------------------------------------------ sweep
    def sweep(self) -> None:
        """One pass over every conditional (users, items, global mean, noise)."""
        users, items = self.shard_sides
        self._draw_side(self.item_side, users, self.user_state, self.items)
        sums = self._draw_side(self.user_side, items, self.item_state, self.users)
        self._draw_global(*sums)
        self.sweeps_done += 1

    def _draw_side(
        self,
        other_side: RatingViews,
        shard_side: RatingViews,
        state: _State,
        other: Tensor,
    ) -> tuple[float, float]:
        """Draw one side's hyper-parameters, link embeddings and rows in place;
        returns the squared error and residual sum under the new rows."""
        state.hyper = draw_normal_gamma(state.rows - state.offset, self.prior, self.generator)
        if state.link is not None:
            state.embedding_hyper = draw_normal_gamma(state.embedding, self.prior, self.generator)
            state.embedding = self._draw_embedding(state)
            state.offset = state.link[0] @ state.embedding
        prior_mean = state.offset + state.hyper[0].float()
        state.rows, sums = self._draw_rows(
            shard_side, other_side, other, prior_mean, state.hyper[1]
        )
        return sums

    def _draw_embedding(self, state: _State) -> Tensor:
        """``y | U``: precision ``lam_U L^T L + lam_y I``, linear term
        ``lam_U L^T (U - mu_U) + lam_y mu_y`` per dimension."""
        (mean, precision), (embedding_mean, embedding_precision) = (
            state.hyper,
            state.embedding_hyper,
        )
        scale, ridge = precision.float(), embedding_precision.float()
        assert state.link is not None  # only called with a link
        linear = scale * (state.link[1] @ (state.rows - mean.float()))
        linear += ridge * embedding_mean.float()
        draw = state.embedding_draw
        if isinstance(draw, ConjugateGradientDraw):
            return draw.draw(linear, scale, ridge, self.generator, state.embedding)
        assert draw is not None  # only called with an embedding draw
        return draw.draw(linear, scale, ridge, self.generator)

    def _draw_rows(
        self,
        side: RatingViews,
        other_side: RatingViews,
        other: Tensor,
        prior_mean: Tensor,
        precision: Tensor,
    ) -> tuple[Tensor, tuple[float, float]]:
        """Every row of one side at once (``side``: the ratings summed here, all or this
        rank's shard); returns the rows and, for the global draws, the training squared
        error and residual sum under the new rows."""
        k = self.n_factors
        features = torch.cat([other[:, :k], torch.ones_like(other[:, :1])], 1)
        packed = features[:, self.tri[0]] * features[:, self.tri[1]]
        gram = gram_from_triangle(self.reduce(side.ones @ packed), self.width, self.tri[2])
        offset64 = self.global_mean + other[:, k].double()  # the target subtracts this
        moment = self.reduce(self._targets(side, offset64) @ features.double())
        rows = draw_rows(gram, moment, precision, prior_mean, self.noise_precision, self.generator)
        target_sum = self.sum_ratings - float(other_side.counts @ offset64)
        target_squares = (
            self.sum_squares
            - 2 * float(other_side.rating_sums @ offset64)
            + float(other_side.counts @ offset64**2)
        )
        fitted = (rows.unsqueeze(1) @ gram @ rows.unsqueeze(2)).sum()
        squared_error = target_squares - 2 * float((rows * moment).sum()) + float(fitted)
        residual_sum = target_sum - float((rows * gram[:, :, -1]).sum())
        return rows.float(), (squared_error, residual_sum)

    @staticmethod
    def _targets(side: RatingViews, offset: Tensor) -> Tensor:
        """``r - w0 - b_other`` per rating, as a float64 CSR like ``side.ratings``.

        The moments ``sum f * target`` are float64 sums of centred targets: float32 sums
        over the ratings of a film rated a hundred thousand times lose their accuracy
        (``R @ F - X @ (F * offset)``, two large sums cancelling).
        """
        ratings = side.ratings
        columns = ratings.col_indices()
        targets = ratings.values().double() - offset[columns]
        return torch.sparse_csr_tensor(
            ratings.crow_indices(), columns, targets, size=ratings.shape, check_invariants=False
        )

    def _draw_global(self, squared_error: float, residual_sum: float) -> None:
        """The global mean, then the noise precision given the new squared error."""
        n, config = self.n_ratings, self.config
        precision = config.global_mean_precision + self.noise_precision * n
        centre = self.noise_precision * (residual_sum + n * self.global_mean) / precision
        noise = torch.randn((), generator=self.generator, dtype=torch.float64, device=self.device)
        new_mean = centre + float(noise) / math.sqrt(precision)
        shift = self.global_mean - new_mean
        squared_error += 2 * shift * residual_sum + n * shift**2
        self.global_mean = new_mean
        shape = torch.tensor(config.noise_shape + n / 2, dtype=torch.float64, device=self.device)
        rate = torch.tensor(config.noise_rate + max(squared_error, 0.0) / 2, dtype=torch.float64)
        self.noise_precision = float(draw_gamma(shape, rate.to(self.device), self.generator))
        if not math.isfinite(self.noise_precision) or not math.isfinite(new_mean):
            raise TrainingDivergedError(
                "the Gibbs sampler produced a non-finite noise precision or global mean; "
                "check the ratings for NaN or extreme values"
            )

    # ------------------------------------------------------------------ samples
    def predict(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """The current sample's ratings (unclipped), shape ``(batch,)``."""
        users, items, _, _ = self._kept()
        return pair_ratings(users[user_idx.long()], items[item_idx.long()])

    def sample_blocks(self) -> dict[str, Tensor]:
        """The current sample in :class:`BayesianMF`'s layout (one block of each)."""
        user_mean, user_precision = self.user_state.hyper
        user_rows, item_rows, pooled_item, pooled_user = self._kept()
        embedding = self.user_state.embedding
        implicit = embedding[: self.n_items] if self.implicit else None
        blocks = {}
        if self.user_feature_mean is not None:  # beta: a folded-in user's feature part
            blocks["user_feature_rows"] = embedding[-len(self.user_feature_mean) :]
        return blocks | {
            "user_rows": user_rows,
            "item_rows": item_rows,
            "implicit_item_rows": torch.zeros(self.n_items, self.width, device=self.device)
            if implicit is None
            else implicit,
            "user_prior_mean": user_mean.float(),
            "user_prior_precision": user_precision.float(),
            "noise_precision": torch.tensor([self.noise_precision], device=self.device),
            "global_means": torch.tensor([self.global_mean], device=self.device),
            "pooled_items": pooled_item.float(),
            "pooled_users": pooled_user.float(),
        }

    def _kept(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The current sample as kept: packed user and item rows (rows without training
        ratings pooled, the users' cold offsets beside them; see :class:`BayesianMF`),
        and the pooled item and user rows; built once per sweep (the running RMSEs and
        the kept sample all read it)."""
        if self._kept_sweep is None or self._kept_sweep[0] != self.sweeps_done:
            self._kept_sweep = (self.sweeps_done, self._pack_kept())
        return self._kept_sweep[1]

    def _pack_kept(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        users, pooled_user = self._pooled_rows(
            self.user_state, self.user_side, self.items, self.item_side
        )
        items, pooled_item = self._pooled_rows(
            self.item_state, self.item_side, self.users, self.user_side
        )
        offsets = cold_offset(
            users.double(), pooled_item, self.global_mean, self.user_side.rating_sums,
            self.user_side.counts, self.user_state.hyper[1][self.n_factors],
            self.noise_precision,
        )  # fmt: skip
        cold = (offsets, self.item_side.counts == 0)
        user_rows, item_rows = packed_rows(users, items, self.global_mean, cold)
        return user_rows, item_rows, pooled_item, pooled_user

    def _pooled_rows(
        self, state: _State, side: RatingViews, other: Tensor, other_side: RatingViews
    ) -> tuple[Tensor, Tensor]:
        """The side's rows with each row without training ratings replaced by the row
        that best fits all the training ratings at once (the posterior of one row
        that received them all; float64, also returned) moved by its own feature part
        away from the ratings-weighted average one."""
        k = self.n_factors
        rows64 = torch.cat([other[:, :k], torch.ones_like(other[:, :1])], 1).double()
        counts = other_side.counts
        targets = other_side.rating_sums - counts * (self.global_mean + other[:, k].double())
        mean, precision = state.hyper
        pooled = torch.linalg.solve(
            self.noise_precision * (rows64 * counts.unsqueeze(1)).T @ rows64
            + torch.diag(precision),
            self.noise_precision * (rows64.T @ targets) + precision * mean,
        )
        cold = side.counts == 0
        if not bool(cold.any()):
            return state.rows, pooled
        implicit = side.implicit @ state.embedding[: side.implicit.shape[1]] if self.implicit else 0
        features = state.offset - implicit
        weights = side.counts.float()
        rows = state.rows.clone()
        rows[cold] = pooled.float() + features[cold] - weights @ features / weights.sum()
        return rows, pooled

    def new_model(self, n_samples: int) -> BayesianMF:
        """An empty :class:`BayesianMF` for ``n_samples`` samples of this chain, with
        its rating range set; fill it with :meth:`keep`."""
        n_features = 0 if self.user_feature_mean is None else len(self.user_feature_mean)
        model = BayesianMF(
            self.n_users, self.n_items, n_samples, self.n_factors, self.implicit, n_features
        ).to(self.device)
        if self.user_feature_mean is not None:
            model.user_feature_mean.copy_(self.user_feature_mean)
        model.rating_range.copy_(torch.tensor(self.rating_range))
        return model

    def keep(self, model: BayesianMF, position: int) -> None:
        """Write the current sample into ``model``'s sample slot ``position``."""
        for name, block in self.sample_blocks().items():
            target: Tensor = getattr(model, name)
            if name.endswith("_rows"):
                width = block.shape[1]
                target[:, position * width : (position + 1) * width] = block
            else:
                target[position] = block.reshape(target.shape[1:])


def kept_sweeps(
    config: BayesConfig, n_users: int, n_items: int, n_factors: int, n_user_features: int = 0
) -> list[int]:
    """The sweeps whose samples are kept: the config's schedule, spread more thinly
    when its samples would exceed ``max_kept_bytes``."""
    schedule = config.kept_schedule()
    per_sample = BayesianMF.bytes_per_sample(n_users, n_items, n_factors, n_user_features)
    fits = max(1, config.max_kept_bytes // per_sample)
    if len(schedule) > fits:
        last = len(schedule) - 1
        schedule = [schedule[round(j * last / max(fits - 1, 1))] for j in range(fits)]
        schedule = sorted(set(schedule)) if fits > 1 else [schedule[-1]]
    return schedule


class _RunningMean:
    """Running mean of kept-sample predictions on fixed pairs, and its clipped RMSE."""

    def __init__(self, users: Tensor, items: Tensor, rating: Tensor, low: float, high: float):
        self.users, self.items, self.rating = users.long(), items.long(), rating.float()
        self.total = torch.zeros_like(self.rating, dtype=torch.float64)
        self.count = 0
        self.low, self.high = low, high

    def rmse(self, sampler: GibbsSampler, kept: bool) -> float:
        """Add the current sample if kept; RMSE of the running mean (of the current
        sample alone while none is kept)."""
        current = sampler.predict(self.users, self.items).double()
        if kept:
            self.total += current
            self.count += 1
        mean = self.total / self.count if self.count else current
        error = mean.clamp(self.low, self.high) - self.rating
        return float(error.pow(2).mean().sqrt())


def run_gibbs(
    user_idx: Tensor,
    item_idx: Tensor,
    rating: Tensor,
    n_users: int,
    n_items: int,
    config: BayesConfig,
    *,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    valid: tuple[Tensor, Tensor, Tensor] | None = None,
    rating_range: tuple[float, float] | None = None,
    on_sweep: SweepCallback | None = None,
    shard: tuple[Tensor, Tensor, Tensor] | None = None,
    n_factors: int = 10,
    implicit: bool = True,
    user_features: Tensor | None = None,
    item_features: Tensor | None = None,
) -> BayesianMF:
    """Run the chain for ``config.sweeps`` sweeps and return the kept samples' model.

    Args:
        user_idx, item_idx, rating: training ratings, int/int/float tensors ``(n,)``.
        n_users, n_items: table sizes.
        config: schedule and hyper-priors.
        generator: the only source of randomness (on ``device``).
        device: where the tables live.
        valid: optional ``(user_idx, item_idx, rating)`` to report the RMSE of the
            running-average prediction on, each sweep.
        rating_range: predictions are clipped to it (None: training min and max).
        shard: in a torch.distributed job, this rank's share of the training ratings
            (see :class:`GibbsSampler`);
        n_factors: length of the factor vectors.
        implicit: with the implicit-feedback terms.
        user_features, item_features: encoded side features (see
            :class:`GibbsSampler`), or None.
        on_sweep: called after each sweep with ``(sweep, train RMSE, valid RMSE or None,
            seconds)``; the train RMSE is of the running average on at most
            ``config.monitor_ratings`` training ratings (a fixed random subset). Before
            the first kept sample both RMSEs are of the current sample.

    Returns:
        A :class:`BayesianMF` holding the kept samples.

    Raises:
        DataError: on empty or inconsistent inputs.
        TrainingDivergedError: if the chain produces non-finite values.
    """
    sampler = GibbsSampler(
        user_idx, item_idx, rating, n_users, n_items, config, generator, device, rating_range,
        shard, n_factors=n_factors, implicit=implicit, user_features=user_features,
        item_features=item_features,
    )  # fmt: skip
    n_features = 0 if user_features is None else int(user_features.shape[1])
    schedule = kept_sweeps(config, n_users, n_items, n_factors, n_features)
    model = sampler.new_model(len(schedule))
    low, high = sampler.rating_range
    monitored = torch.arange(len(rating), device=sampler.device)
    if len(rating) > config.monitor_ratings:
        monitored = torch.randperm(len(rating), generator=generator, device=sampler.device)
        monitored = monitored[: config.monitor_ratings]
    on = sampler.device
    train_mean = _RunningMean(
        user_idx.to(on)[monitored], item_idx.to(on)[monitored], rating.to(on)[monitored], low, high
    )
    valid_mean = None if valid is None else _RunningMean(*_on(valid, on), low, high)
    positions = {sweep: j for j, sweep in enumerate(schedule)}
    for sweep in range(1, config.sweeps + 1):
        start = time.perf_counter()
        sampler.sweep()
        kept = sweep in positions
        if kept:
            sampler.keep(model, positions[sweep])
        seconds = time.perf_counter() - start
        if on_sweep is not None:
            train_rmse = train_mean.rmse(sampler, kept)
            valid_rmse = None if valid_mean is None else valid_mean.rmse(sampler, kept)
            on_sweep(sweep, train_rmse, valid_rmse, seconds)
    return model


def _on(
    pairs: tuple[Tensor, Tensor, Tensor], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    return pairs[0].to(device), pairs[1].to(device), pairs[2].to(device)


def _column_means(features: Tensor | None, weights: Tensor) -> Tensor | None:
    """The ``weights``-weighted average row of a CSR feature matrix (float32), or None
    without one: with the ratings per row as weights, the feature row of the average
    rating's user, the one the pooled user row stands for."""
    if features is None:
        return None
    weights = weights.to(features.values().device, torch.float64)
    return (features.double().t() @ weights / weights.sum()).float()
