"""The learner: a model, its data, and the loop that fits it.

``Learner`` follows fastai's workflow (``fit``, ``fit_one_cycle``, ``lr_find``, a table
of epochs) without its mechanisms: no callbacks system, no monkey-patching. The loop
takes one seeded permutation per epoch, slices batches from tensors built once, lets
autograd produce sparse row gradients, and applies them with
:class:`~collabfilter.train.optim.RowOptimizer`. It keeps the best epoch's weights,
stops early when asked, and raises :class:`TrainingDivergedError` on NaN.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from collabfilter.config import RECIPES, ModelConfig, RunOptions, TrainConfig, with_changes
from collabfilter.data import Ratings, Vocabulary
from collabfilter.data.tensors import Batch, RatingTensors
from collabfilter.errors import DataError, TrainingDivergedError
from collabfilter.models import build_model
from collabfilter.train import fused, sparse
from collabfilter.train.optim import RowOptimizer
from collabfilter.train.progress import EpochReporter
from collabfilter.train.schedule import exponential_sweep, get_schedule

EVAL_BATCH = 65_536


@dataclass(frozen=True)
class EpochRecord:
    """One row of the training table."""

    epoch: int
    train_loss: float
    valid_loss: float | None
    valid_rmse: float | None
    seconds: float


@dataclass(frozen=True)
class LRFinderResult:
    """Loss along an exponential sweep of learning rates, and the suggested rate.

    ``suggestion`` is the rate where the smoothed loss falls fastest (steepest
    negative slope), fastai's ``steep`` suggestion; ``minimum`` is a tenth of the rate
    at the lowest loss, fastai's ``minimum`` rule.
    """

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float
    minimum: float


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA, then Apple MPS, then CPU; anything else as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_y_range(ratings: Ratings) -> tuple[float, float]:
    """Half a rating step beyond each end of the scale: (0.5, 5.5) for 1-5 stars."""
    step = ratings.scale.step or (ratings.scale.high - ratings.scale.low) / 8
    return (ratings.scale.low - step / 2, ratings.scale.high + step / 2)


class Learner:
    """Holds a model with its training and validation ratings, and fits it.

    Args:
        model: a model from :mod:`collabfilter.models` (or any module taking
            ``(user_idx, item_idx)`` and returning ratings).
        train: training ratings; their vocabularies become the model's.
        valid: optional validation ratings (same vocabularies) for the epoch table,
            best-epoch keeping and early stopping.
        config: the training recipe (defaults: the ``dot_bias`` recipe).
        options: device, threads, seed, progress display.
        on_epoch: called with each :class:`EpochRecord` as it is produced (the CLI
            prints the table this way).
        model_config: the config the model was built from, kept for model files.
    """

    def __init__(
        self,
        model: nn.Module,
        train: Ratings,
        valid: Ratings | None = None,
        *,
        config: TrainConfig | None = None,
        options: RunOptions | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        model_config: ModelConfig | None = None,
    ) -> None:
        if len(train) == 0:
            raise DataError("cannot train on an empty training set")
        if valid is not None and (valid.users is not train.users or valid.items is not train.items):
            if valid.users != train.users or valid.items != train.items:
                raise DataError("train and valid must share vocabularies (split one Ratings)")
        self.config = config or TrainConfig()
        self.options = options or RunOptions()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self.device = resolve_device(self.options.device)
        self.model = model.to(self.device)
        self.train_ratings, self.valid_ratings = train, valid
        self.users: Vocabulary = train.users
        self.items: Vocabulary = train.items
        self.train_tensors = RatingTensors(train, self.device)
        self.valid_tensors = RatingTensors(valid, self.device) if valid is not None else None
        self.history: list[EpochRecord] = []
        self.best_epoch: int | None = None
        self.on_epoch = on_epoch
        self.model_config = model_config
        self._prepare_model()

    # ------------------------------------------------------------------ set-up
    def _prepare_model(self) -> None:
        """Give the model what it takes from the training data (activity, mean)."""
        prepare = getattr(self.model, "set_data_statistics", None)
        if prepare is not None:
            prepare(
                self.train_tensors.user_counts(),
                self.train_tensors.item_counts(),
                float(self.train_tensors.rating.mean()),
            )

    def _row_decay(self, config: TrainConfig) -> dict[str, Tensor]:
        """Per-row decay coefficient of each user/item table (see ``TrainConfig``)."""
        decays = {}
        for name, (side, role) in self._tables().items():
            strength, exponent = config.decay_for(side, role)
            decays[name] = (strength * self._frequency_weights(side, exponent - 1.0)).float()
        return decays

    def _side_rates(self, config: TrainConfig) -> dict[str, Tensor]:
        """Per-row rate multipliers ``(1 + c_row) ** -rate_exponent`` of the user and
        item sides, ``c_row`` being the row's expected occurrences in one batch (none at
        exponent 0)."""
        if config.rate_exponent == 0.0:
            return {}
        data = self.train_tensors
        share = min(config.batch_size, len(data)) / len(data)
        return {
            side: ((1.0 + data.counts(side).double() * share) ** -config.rate_exponent).float()
            for side in ("user", "item")
        }

    def _tables(self) -> dict[str, tuple[str, str]]:
        tables: dict[str, tuple[str, str]] = getattr(self.model, "ROW_TABLES", {})
        return tables

    def _frequency_weights(self, side: str, power: float) -> Tensor:
        """``n_row ** power`` per row of ``side``, normalised to a mean of 1 per rating."""
        counts = self.train_tensors.counts(side)
        return frequency_weight(counts.clamp(min=1).double(), counts, power)

    def _optimizer(self, config: TrainConfig, *, dense_only: bool = False) -> RowOptimizer:
        """The optimizer of every parameter, or only of the dense ones (the fused path
        updates the tables itself, so it needs no per-row decays or rates here)."""
        tables = self._tables()
        params = [
            (name, param)
            for name, param in self.model.named_parameters()
            if not (dense_only and name in tables)
        ]
        rates = {} if dense_only else self._side_rates(config)
        return RowOptimizer(
            params,
            kind=config.optimizer,
            lr=config.lr,
            row_decay={} if dense_only else self._row_decay(config),
            row_rate={
                name: rate
                for name, (side, _) in tables.items()
                if (rate := rates.get(side)) is not None
            },
            dense_decay=config.weight_decay if config.optimizer != "sgd" else 0.0,
            momentum=config.momentum,
            betas=config.betas,
            dense_lr=config.dense_lr,
            grad_clip=config.grad_clip,
        )

    # ------------------------------------------------------------------ fitting
    def fit(
        self, epochs: int | None = None, lr: float | None = None, **changes: Any
    ) -> list[EpochRecord]:
        """Train at a constant rate (fastai's ``fit``); other config fields by keyword.

        Returns the records of this call's epochs (also appended to ``history``).
        """
        return self._run(
            with_changes(self.config, epochs=epochs, lr=lr, schedule="constant", **changes)
        )

    def fit_one_cycle(
        self,
        epochs: int | None = None,
        lr_max: float | None = None,
        *,
        wd: float | None = None,
        **changes: Any,
    ) -> list[EpochRecord]:
        """Train with the one-cycle schedule; ``wd`` is fastai's name for weight decay."""
        config = with_changes(self.config, epochs=epochs, lr=lr_max, weight_decay=wd, **changes)
        return self._run(replace(config, schedule="one_cycle"))

    def fit_recipe(self) -> list[EpochRecord]:
        """Train with this learner's config as it stands (the default recipe)."""
        return self._run(self.config)

    def _run(self, config: TrainConfig) -> list[EpochRecord]:
        torch.manual_seed(self.options.seed)  # dropout
        generator = torch.Generator().manual_seed(self.options.seed)
        epoch_runner = self._epoch_runner(config, generator)
        schedule = get_schedule(config.schedule, pct_start=config.pct_start)
        per_epoch = self.train_tensors.n_batches(config.batch_size)
        total_steps = config.epochs * per_epoch
        best_loss, best_state, stale = float("inf"), None, 0
        records: list[EpochRecord] = []
        first_epoch = len(self.history) + 1
        with EpochReporter(config.epochs, per_epoch, self.options.progress) as reporter:
            for epoch in range(config.epochs):
                start = time.perf_counter()
                rates = [schedule((epoch * per_epoch + k) / total_steps) for k in range(per_epoch)]
                train_loss = self._mean_loss(epoch_runner(rates, reporter.advance), config)
                valid_loss, valid_rmse = self._validate_loss()
                record = EpochRecord(
                    first_epoch + epoch, train_loss, valid_loss, valid_rmse,
                    time.perf_counter() - start,
                )  # fmt: skip
                records.append(record)
                self.history.append(record)
                reporter.epoch_done(record)
                if self.on_epoch is not None:
                    self.on_epoch(record)
                monitored = valid_loss if valid_loss is not None else train_loss
                if monitored < best_loss:
                    best_loss, stale, self.best_epoch = monitored, 0, record.epoch
                    if config.keep_best and valid_loss is not None:
                        best_state = copy.deepcopy(self.model.state_dict())
                else:
                    stale += 1
                    if config.early_stopping is not None and stale >= config.early_stopping:
                        break
        if best_state is not None and self.history[-1].epoch != self.best_epoch:
            self.model.load_state_dict(best_state)
        return records

    def _epoch_runner(
        self, config: TrainConfig, generator: torch.Generator
    ) -> Callable[[list[float], Callable[[int], None]], Tensor]:
        """A function running one epoch at given rate multipliers; returns half the SSE.

        Dot models under plain sgd take a closed-form path (sparse matrix products for
        small tables on the CPU, gather and ``index_add_`` otherwise); everything else
        goes through autograd with sparse row gradients.
        """
        if fused.supports(self.model, config):
            small = sparse.suits(self.train_tensors, config.batch_size)
            runner = (sparse.SparseDotSGD if small else fused.FusedDotSGD)(
                self.model,  # type: ignore[arg-type]
                self.train_tensors,
                self._row_decay(config),
                self._side_rates(config),
                self._optimizer(config, dense_only=True),
                config.batch_size,
                generator,
            )
            return lambda rates, advance: runner.epoch(config.lr, rates, advance)
        optimizer = self._optimizer(config)

        def autograd_epoch(rates: list[float], advance: Callable[[int], None]) -> Tensor:
            self.model.train()
            total = torch.zeros((), device=self.device, dtype=torch.float64)
            batches = self.train_tensors.batches(config.batch_size, generator=generator)
            for step, batch in enumerate(batches):
                loss = self._squared_error(batch)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step(rates[step])
                total += loss.detach()
                advance(1)
            return total

        return autograd_epoch

    def _mean_loss(self, half_sse: Tensor, config: TrainConfig) -> float:
        mean_loss = 2 * float(half_sse) / len(self.train_tensors)  # MSE
        if not np.isfinite(mean_loss):
            raise TrainingDivergedError(
                f"training loss became {mean_loss} (lr={config.lr:g}, optimizer="
                f"{config.optimizer}); lower the learning rate (lr_max) or raise weight decay"
            )
        return mean_loss

    def _squared_error(self, batch: Batch) -> Tensor:
        """Half the summed squared error: each rating's gradient is its own, as in
        per-rating SGD (Funk SVD), whatever the batch size; Adam ignores the scale."""
        prediction = self.model(batch.user_idx, batch.item_idx)
        return 0.5 * torch.sum((prediction - batch.rating) ** 2)

    def _validate_loss(self) -> tuple[float | None, float | None]:
        if self.valid_tensors is None or len(self.valid_tensors) == 0:
            return None, None
        predictions = self._predict_indices(
            self.valid_tensors.user_idx, self.valid_tensors.item_idx
        )
        mse = float(torch.mean((predictions - self.valid_tensors.rating.cpu()) ** 2))
        return mse, float(np.sqrt(mse))

    # ------------------------------------------------------------------ lr finder
    def lr_find(
        self, start_lr: float = 1e-5, end_lr: float = 1.0, num_steps: int = 100
    ) -> LRFinderResult:
        """Train briefly with an exponentially growing rate and record the loss.

        The model and its statistics are restored afterwards. Stops early once the
        loss exceeds four times its minimum (the rate is then clearly too high).
        """
        saved = copy.deepcopy(self.model.state_dict())
        config = replace(self.config, lr=1.0, schedule="constant")
        optimizer = self._optimizer(config)
        generator = torch.Generator().manual_seed(self.options.seed)
        lrs, losses = [], []
        self.model.train()
        try:
            for step, batch in enumerate(self._endless_batches(config.batch_size, generator)):
                if step >= num_steps:
                    break
                lr = exponential_sweep(step / max(1, num_steps - 1), start_lr, end_lr)
                loss = self._squared_error(batch)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step(lr)
                value = 2 * float(loss.detach()) / len(batch)
                lrs.append(lr)
                losses.append(value)
                if not np.isfinite(value) or value > 4 * min(losses):
                    break
        finally:
            self.model.load_state_dict(saved)
        return _suggest(np.asarray(lrs), np.asarray(losses))

    def _endless_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Any]:
        while True:
            yield from self.train_tensors.batches(batch_size, generator=generator)

    # ------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def _predict_indices(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predictions for index tensors, in evaluation mode, batched; on the CPU."""
        self.model.eval()
        parts = [
            self.model(user_idx[start : start + EVAL_BATCH].to(self.device),
                       item_idx[start : start + EVAL_BATCH].to(self.device)).float().cpu()
            for start in range(0, len(user_idx), EVAL_BATCH)
        ]  # fmt: skip
        return torch.cat(parts) if parts else torch.zeros(0)

    def predict_ratings(self, ratings: Ratings) -> np.ndarray:
        """Predictions (float32) for every (user, item) pair of ``ratings``."""
        tensors = RatingTensors(ratings)
        return self._predict_indices(tensors.user_idx, tensors.item_idx).numpy()

    def predict(
        self, users: Any, items: Any, *, unknown: Literal["error", "nan"] = "error"
    ) -> np.ndarray:
        """Predicted ratings for pairs of raw user ids and item ids (or exact titles).

        Args:
            users: raw user ids (one, or one per item).
            items: raw item ids or titles.
            unknown: ``"error"`` raises :class:`~collabfilter.errors.UnknownIdError`;
                ``"nan"`` returns NaN for pairs with an unknown user or item.

        Returns:
            float32 array with one prediction per pair.
        """
        users_arr = np.atleast_1d(np.asarray(users, dtype=object))
        items_arr = np.atleast_1d(np.asarray(items, dtype=object))
        if users_arr.size == 1 and items_arr.size > 1:
            users_arr = np.repeat(users_arr, items_arr.size)
        if users_arr.shape != items_arr.shape:
            raise ValueError(
                f"users and items must pair up: {users_arr.shape} vs {items_arr.shape}"
            )
        user_known = self.users.contains(users_arr)
        item_idx, item_known = self.items.resolve(items_arr)
        known = user_known & item_known
        if unknown == "error" and not known.all():
            self.users.index(users_arr[~user_known])  # raises, naming the unknown ids
            self.items.index(items_arr[~item_known])
        result = np.full(users_arr.shape, np.nan, dtype=np.float32)
        if known.any():
            user_idx = torch.from_numpy(self.users.index(users_arr[known]).astype(np.int64))
            result[known] = self._predict_indices(
                user_idx, torch.from_numpy(item_idx[known].astype(np.int64))
            ).numpy()
        return result

    def history_frame(self) -> pd.DataFrame:
        """The epoch table as a DataFrame (fastai's ``recorder.values``)."""
        return pd.DataFrame([vars(r) for r in self.history])


def frequency_weight(n: Tensor, counts: Tensor, power: float) -> Tensor:
    """``n ** power`` divided by its mean over the training ratings (``counts``: ratings
    per row), so that the weights average 1 per rating whatever the data size. ``n``
    holds rows' numbers of ratings: training's rows, or a new user's count at fold-in;
    both share this one rule."""
    counts = counts.double()
    norm = float((counts * counts.clamp(min=1) ** power).sum() / counts.sum())
    return n**power / norm


def _suggest(lrs: np.ndarray, losses: np.ndarray) -> LRFinderResult:
    if len(losses) < 3:
        rate = float(lrs[0]) if len(lrs) else float("nan")
        return LRFinderResult(lrs, losses, rate, rate)
    smoothed = pd.Series(losses).ewm(alpha=0.2).mean().to_numpy()
    slopes = np.gradient(smoothed, np.log(lrs))
    usable = slice(0, max(3, int(np.argmin(smoothed)) + 1))
    steepest = int(np.argmin(slopes[usable]))
    return LRFinderResult(
        lrs, losses, float(lrs[steepest]), float(lrs[int(np.argmin(smoothed))] / 10)
    )


def collab_learner(
    train: Ratings,
    valid: Ratings | None = None,
    *,
    model: ModelConfig | str = "dot_bias",
    config: TrainConfig | None = None,
    options: RunOptions | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    **model_changes: Any,
) -> Learner:
    """A learner with a model built for the data (fastai's ``collab_learner``).

    Args:
        train: training ratings.
        valid: validation ratings.
        model: a model kind (``"dot_bias"``, ``"dot"``, ``"nn"``) whose default recipe
            is used, or a full :class:`ModelConfig`.
        config: training recipe (default: the model kind's recipe).
        options: run options.
        on_epoch: see :class:`Learner`.
        model_changes: ModelConfig fields to override (``n_factors=50``,
            ``y_range=(0, 5.5)``, ``layers=(100, 50)``...).
    """
    if isinstance(model, str):
        if model not in RECIPES:
            raise ValueError(f"unknown model {model!r}; known: {sorted(RECIPES)}")
        model_config, recipe = RECIPES[model]
    else:
        model_config, recipe = model, RECIPES[model.kind][1]
    model_config = replace(model_config, **model_changes) if model_changes else model_config
    options = options or RunOptions()
    torch.manual_seed(options.seed)  # initial weights
    module = build_model(model_config, train.n_users, train.n_items, default_y_range(train))
    return Learner(
        module,
        train,
        valid,
        config=config or recipe,
        options=options,
        on_epoch=on_epoch,
        model_config=model_config,
    )
