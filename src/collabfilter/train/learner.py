"""The learner: a model with its training data, and the calls that fit it.

``Learner`` follows fastai's workflow (``fit``, ``fit_one_cycle``, ``lr_find``, a table
of epochs) without its mechanisms: no callback system, no monkey-patching. It is a
:class:`~collabfilter.fitted.FittedModel` (so it predicts, recommends and saves like a
loaded model) that also holds the training and validation ratings. The step forms
live in :mod:`~collabfilter.train.steps`, the loop in :mod:`~collabfilter.train.loop`,
the decay arithmetic in :mod:`~collabfilter.train.regularization`.

Training never changes torch's global state behind the caller's back: seeds go
through explicit generators or a forked random state, and only ``RunOptions.threads``
sets torch's thread count.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from collabfilter.config import (
    NOT_GIVEN,
    RECIPES,
    BayesConfig,
    ModelConfig,
    RunOptions,
    TopNConfig,
    TrainConfig,
    with_changes,
)
from collabfilter.data import Ratings, Split
from collabfilter.data.interactions import Interactions
from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError, DataError
from collabfilter.evaluate import ItemSets, evaluate_top_n
from collabfilter.fitted import EpochRecord, FittedModel
from collabfilter.models import build_model
from collabfilter.persist import save_model
from collabfilter.train import distributed
from collabfilter.train.gibbs import run_gibbs
from collabfilter.train.loop import run_epochs, sweep_rates
from collabfilter.train.progress import EpochReporter, announce
from collabfilter.train.steps import Steps, make_steps
from collabfilter.train.topn import TopNReport, fit_topn
from collabfilter.train.tuning import DecayChoice, choose_decay


@dataclass(frozen=True)
class LRFinderResult:
    """Loss along an exponential sweep of learning rates, and suggested peak rates.

    ``suggestion`` is 1.5 times the rate at the lowest smoothed loss, the single step
    that helps most. One-cycle warms up from a 25th of its peak and anneals to almost
    nothing, so its rates average about half its peak: a peak of 1.5 times that rate
    keeps most steps at or below it, which suits per-rating sgd. fastai's rules are
    beside it: ``steep``, where the smoothed loss falls fastest, and ``minimum``, a
    tenth of the rate at the lowest loss; they suit Adam, which reaches its loss
    minimum at much smaller rates. Rates are in the units of the optimizer swept: per
    rating for ``sgd``, Adam's step size for ``adam``/``adamw``.
    """

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float
    steep: float
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


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for a block (initial weights, dropout masks) and
    give the caller's random state back afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def default_y_range(ratings: Ratings) -> tuple[float, float]:
    """Half a rating step beyond each end of the scale: (0.5, 5.5) for 1-5 stars."""
    step = ratings.scale.step or (ratings.scale.high - ratings.scale.low) / 8
    return (ratings.scale.low - step / 2, ratings.scale.high + step / 2)


class Learner(FittedModel):
    """Holds a model with its training and validation ratings, and fits it.

    Args:
        model: a model from :mod:`collabfilter.models` (or any module taking
            ``(user_idx, item_idx)`` and returning ratings).
        train: training ratings; their vocabularies become the model's.
        valid: validation ratings, matched to the training vocabularies by raw id.
        config: training recipe (default: ``TrainConfig()``).
        options: device, threads, seed, progress, step form.
        on_epoch: called with each :class:`EpochRecord` as training goes.
        model_config: what ``model`` was built from (kept for model files).

    Raises:
        DataError: for empty training data.
        UnknownIdError: for validation users or items the training vocabulary lacks.
    """

    def __init__(
        self,
        model: nn.Module,
        train: Ratings,
        valid: Ratings | None = None,
        *,
        config: Any = None,
        options: RunOptions | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        model_config: ModelConfig | None = None,
    ) -> None:
        if len(train) == 0:
            raise DataError("cannot train on an empty training set")
        self.options = options or RunOptions()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)  # asked for by RunOptions
        self._device = resolve_device(self.options.device)
        super().__init__(
            model.to(self._device),
            train.users,
            train.items,
            Interactions.from_ratings(train),
            model_config,
            config if config is not None else TrainConfig(),
        )
        self.train_ratings = train
        self.valid_ratings = _in_vocabularies(valid, train) if valid is not None else None
        self.train_tensors = RatingTensors(train, self._device)
        self.valid_tensors = (
            RatingTensors(self.valid_ratings, self._device) if self.valid_ratings else None
        )
        self.on_epoch = on_epoch
        self.decay_choice: DecayChoice | None = None
        """What ``fit_recipe`` chose for the decay strength, when the recipe tunes it."""
        self.topn_report: TopNReport | None = None
        """Which ranking model ``fit_recipe`` chose and why (the ``topn`` recipe)."""
        self.best_epoch: int | None = None
        self.kept_best = False
        """Whether the weights are those of an epoch chosen on the validation ratings."""
        prepare = getattr(self.model, "set_data_statistics", None)
        if prepare is not None:
            prepare(
                self.train_tensors.user_counts(),
                self.train_tensors.item_counts(),
                float(self.train_tensors.rating.mean()),
            )

    # ------------------------------------------------------------------ fitting
    def fit(
        self, epochs: int = NOT_GIVEN, lr: float = NOT_GIVEN, **changes: Any
    ) -> list[EpochRecord]:
        """Train at a constant rate (fastai's ``fit``); other config fields by keyword.

        Returns the records of this call's epochs (also appended to ``history``).
        """
        config = with_changes(self._sgd_config("fit"), epochs=epochs, lr=lr, **changes)
        return self._run(replace(config, schedule="constant"))

    def fit_one_cycle(
        self,
        epochs: int = NOT_GIVEN,
        lr_max: float = NOT_GIVEN,
        *,
        wd: float = NOT_GIVEN,
        **changes: Any,
    ) -> list[EpochRecord]:
        """Train with the one-cycle schedule.

        ``wd`` is fastai's weight decay: one strength for every table (user and item
        factors and biases); without it, the recipe's per-table decays apply. Rates are
        in the optimizer's units: per rating under the default ``sgd`` (``lr_find``
        sweeps exactly that); fastai's ``5e-3`` is an Adam step size and means the same
        here with ``optimizer="adamw"`` and its batch size of 64.
        """
        config = with_changes(self._sgd_config("fit_one_cycle"), epochs=epochs, lr=lr_max)
        if wd is not NOT_GIVEN:
            config = replace(config, weight_decay=wd, item_weight_decay=wd, bias_weight_decay=wd)
        config = with_changes(config, **changes)
        return self._run(replace(config, schedule="one_cycle"))

    def fit_recipe(self) -> list[EpochRecord]:
        """Train with this learner's recipe, making its automatic choices first.

        With ``tune_decay`` (the default recipe) the decay strength is chosen on a
        part carved out of the training ratings (:mod:`collabfilter.train.tuning`);
        the chosen config then becomes ``self.config`` and the choice is reported and
        kept in ``decay_choice`` and ``metrics``.
        """
        config = self.config
        if isinstance(config, TrainConfig) and config.tune_decay:
            choice = choose_decay(
                self.train_ratings, copy.deepcopy(self.model), config, self.options, self._trial
            )
            self.config = replace(config.scaled_decay(choice.multiplier), tune_decay=False)
            self.decay_choice = choice
            announce(choice.describe(), self.options.progress)
            records = self._run(self.config)
            self.metrics["decay_multiplier"] = choice.multiplier
            return records
        return self._run(config)

    def _trial(
        self,
        module: nn.Module,
        part: Split,
        config: TrainConfig,
        on_epoch: Callable[[EpochRecord], None],
        scored: frozenset[int] | None,
    ) -> None:
        """Train ``module`` quietly on one part, validating on the other after the
        ``scored`` epochs (None: every epoch; tuning)."""
        quiet = replace(self.options, progress=False)
        trial = Learner(module, part.train, part.valid, config=config, options=quiet,
                        on_epoch=on_epoch)  # fmt: skip
        trial._fit_sgd(config, validate_at=scored)

    def _sgd_config(self, call: str) -> TrainConfig:
        if not isinstance(self.config, TrainConfig):
            raise ConfigError(
                f"{call} trains by gradient steps; this {type(self.model).__name__} learner "
                "is trained by its recipe: call fit_recipe()"
            )
        return self.config

    def _run(self, config: Any) -> list[EpochRecord]:
        fitter = FITTERS.get(type(config))
        if fitter is None:
            raise ConfigError(f"no way to train with a {type(config).__name__}")
        records = fitter(self, config)
        self.history.extend(records)
        last = self.history[-1]
        self.metrics = {} if last.train_loss is None else {"train_mse": last.train_loss}
        if last.valid_rmse is not None:
            self.metrics["valid_rmse"] = _final_valid_rmse(self)
        if isinstance(config, TopNConfig):
            self.metrics.update(self._ranking_metrics(config.relevance))
        return records

    def _fit_sgd(
        self, config: TrainConfig, validate_at: frozenset[int] | None = None
    ) -> list[EpochRecord]:
        data = self.train_tensors
        with seeded(self.options.seed, self._device):  # dropout masks
            steps, n_batches = self._sgd_steps(config)
            with EpochReporter(config.epochs, n_batches, self.options.progress) as reporter:
                result = run_epochs(
                    steps,
                    self.model,
                    config,
                    n_ratings=len(data),
                    n_batches=n_batches,
                    validate=self._validate,
                    reporter=reporter,
                    first_epoch=len(self.history) + 1,
                    on_record=self.on_epoch,
                    validate_at=validate_at,
                )
                if result.restored:
                    reporter.note(
                        f"kept the weights of epoch {result.best_epoch}, chosen on the "
                        "validation ratings (keep_best): its validation figures are optimistic"
                    )
        self.best_epoch = result.best_epoch
        self.kept_best = result.restored
        return result.records

    def _sgd_steps(self, config: TrainConfig) -> tuple[Steps, int]:
        """The steps of ``config`` and their batches per epoch: on all the training
        ratings, or, in a torch.distributed job, on this rank's shard with the ranks'
        changes summed after every step (:mod:`collabfilter.train.distributed`)."""
        data, options = self.train_tensors, self.options
        group = distributed.current()
        if group is None:
            generator = torch.Generator().manual_seed(options.seed)
            steps = make_steps(self.model, data, config, options, generator)
            return steps, data.n_batches(config.batch_for(len(data)))
        rows = distributed.shard_rows(len(data), group, options.seed)
        shard = RatingTensors(self.train_ratings.subset(rows), self._device)
        generator = torch.Generator().manual_seed(options.seed + group.rank)
        local = make_steps(self.model, shard, config, options, generator,
                           shard_of=(data, group.world_size))  # fmt: skip
        batch = max(1, config.batch_for(len(data)) // group.world_size)
        n_batches = distributed.agree_on_batches(shard.n_batches(batch))
        return distributed.SyncedSteps(local, self.model, n_batches), n_batches

    def _fit_gibbs(self, config: BayesConfig) -> list[EpochRecord]:
        """Run the Gibbs chain; each sweep is a row of the table (running-average RMSE of
        the kept samples, squared in the loss columns), and the chain's kept samples
        become the model."""
        if self.model_config is not None and self.model_config.kind == "bayes":
            config = replace(config, n_factors=self.model_config.n_factors)
        data, valid = self.train_tensors, self.valid_tensors
        shard = None
        group = distributed.current()
        if group is not None:  # data-parallel sums of this rank's ratings
            rows = torch.from_numpy(distributed.shard_rows(len(data), group, self.options.seed))
            shard = (data.user_idx[rows], data.item_idx[rows], data.rating[rows])
        records: list[EpochRecord] = []
        first = len(self.history) + 1
        generator = torch.Generator(device=self._device).manual_seed(self.options.seed)
        scale = self.scale
        with EpochReporter(config.sweeps, 1, self.options.progress) as reporter:

            def on_sweep(
                sweep: int, train: float, valid_rmse: float | None, seconds: float
            ) -> None:
                valid_loss = None if valid_rmse is None else valid_rmse**2
                record = EpochRecord(first + sweep - 1, train**2, valid_loss, valid_rmse, seconds)
                records.append(record)
                reporter.advance(1)
                reporter.epoch_done(record)
                if self.on_epoch is not None:
                    self.on_epoch(record)

            self.model = run_gibbs(
                data.user_idx, data.item_idx, data.rating, data.n_users, data.n_items, config,
                generator=generator, device=self._device,
                valid=None if valid is None else (valid.user_idx, valid.item_idx, valid.rating),
                rating_range=(scale.low, scale.high), on_sweep=on_sweep, shard=shard,
            )  # fmt: skip
        self.config = config
        return records

    def _fit_topn(self, config: TopNConfig) -> list[EpochRecord]:
        """Choose a ranking model on ratings carved out of the training part and fit it
        (:mod:`collabfilter.train.topn`); the report says what was chosen and why. With
        validation ratings, their NDCG@10 and recall@20 go into ``metrics``."""
        start = time.perf_counter()
        module, report = fit_topn(self.train_ratings, config)
        self.model = module.to(self._device)
        self.topn_report = report
        announce(str(report), self.options.progress)
        record = EpochRecord(len(self.history) + 1, None, None, None, time.perf_counter() - start)
        if self.on_epoch is not None:
            self.on_epoch(record)
        return [record]

    def _ranking_metrics(self, relevance: float | None) -> dict[str, float]:
        """NDCG@10 and recall@20 on the validation ratings (hits: rated >= relevance,
        or every validation rating for None)."""
        valid = self.valid_ratings
        if valid is None or len(valid) == 0:
            return {}
        n_users, n_items = len(self.users), len(self.items)
        data = self.interactions
        hits = np.ones(len(valid), dtype=bool) if relevance is None else valid.rating >= relevance
        rows = evaluate_top_n(
            self.score_users,
            ItemSets.from_pairs(data.user_idx(), data.item_idx, n_users, n_items),
            ItemSets.from_pairs(valid.user_idx[hits], valid.item_idx[hits], n_users, n_items),
        )
        at = {int(row["k"]): row for row in rows}
        return {"valid_ndcg@10": at[10]["ndcg"], "valid_recall@20": at[20]["recall"]}

    def _validate(self) -> tuple[float | None, float | None]:
        if self.valid_tensors is None or len(self.valid_tensors) == 0 or not self.predicts_ratings:
            return None, None
        valid = self.valid_tensors
        predictions = self.predict_indices(valid.user_idx.long(), valid.item_idx.long())
        mse = float(torch.mean((predictions - valid.rating.cpu()) ** 2))
        return mse, float(np.sqrt(mse))

    def save(self, path: str | Path, *, ranking: FittedModel | None = None) -> Path:
        """Write this model to exactly ``path`` (see :func:`collabfilter.persist.save_model`)."""
        return save_model(path, self, ranking=ranking)

    # ------------------------------------------------------------------ lr finder
    def lr_find(
        self, start_lr: float = 1e-5, end_lr: float = 1.0, num_steps: int = 100
    ) -> LRFinderResult:
        """Train briefly with an exponentially growing rate and record the loss.

        Sweeps the optimizer and step form that :meth:`fit_one_cycle` uses with this
        learner's config, so the suggestion is in the units the fit takes. The model is
        restored afterwards.
        """
        config = replace(self._sgd_config("lr_find"), lr=1.0, schedule="constant")
        saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        generator = torch.Generator().manual_seed(self.options.seed)
        try:
            with seeded(self.options.seed, self._device):
                steps = make_steps(self.model, self.train_tensors, config, self.options, generator)
                lrs, losses = sweep_rates(
                    steps, self.model, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps
                )
        finally:
            self.model.load_state_dict(saved)
        return suggest(lrs, losses)


def _final_valid_rmse(learner: Learner) -> float:
    _, rmse = learner._validate()
    assert rmse is not None
    return rmse


def _in_vocabularies(valid: Ratings, train: Ratings) -> Ratings:
    """``valid`` re-encoded with ``train``'s vocabularies, matched by raw id."""
    if (valid.users is train.users or valid.users == train.users) and (
        valid.items is train.items or valid.items == train.items
    ):
        return valid
    user_idx = train.users.index(valid.users.ids[valid.user_idx])
    item_idx = train.items.index(valid.items.ids[valid.item_idx])
    return Ratings(
        user_idx, item_idx, valid.rating, users=train.users, items=train.items,
        timestamp=valid.timestamp, scale=train.scale, report=valid.report,
    )  # fmt: skip


def suggest(lrs: np.ndarray, losses: np.ndarray) -> LRFinderResult:
    """The suggestions of :class:`LRFinderResult` from a sweep's losses (smoothed by an
    exponential moving average, as fastai's recorder does: one batch's loss is noisy)."""
    if len(losses) < 3:
        rate = float(lrs[0]) if len(lrs) else float("nan")
        return LRFinderResult(lrs, losses, rate, rate, rate)
    smoothed = pd.Series(losses).ewm(alpha=0.1).mean().to_numpy()
    lowest = int(np.argmin(smoothed))
    slopes = np.gradient(smoothed, np.log(lrs))
    steepest = int(np.argmin(slopes[: max(3, lowest + 1)]))
    return LRFinderResult(
        lrs, losses, float(1.5 * lrs[lowest]), float(lrs[steepest]), float(lrs[lowest] / 10)
    )


FITTERS: dict[type, Callable[[Learner, Any], list[EpochRecord]]] = {
    TrainConfig: Learner._fit_sgd,
    BayesConfig: Learner._fit_gibbs,
    TopNConfig: Learner._fit_topn,
}
"""How each kind of training config is fitted: a model family plugs in here."""


def collab_learner(
    train: Ratings,
    valid: Ratings | None = None,
    *,
    model: ModelConfig | str = "dot_bias",
    config: Any = None,
    options: RunOptions | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    **model_changes: Any,
) -> Learner:
    """A learner with a model built for the data (fastai's ``collab_learner``).

    Args:
        train: training ratings.
        valid: validation ratings.
        model: a recipe name (``"dot_bias"``, ``"dot"``, ``"nn"``, ...; see
            :data:`~collabfilter.config.RECIPES`) or a full :class:`ModelConfig`.
        config: training recipe (default: the recipe's).
        options: run options.
        on_epoch: see :class:`Learner`.
        model_changes: ModelConfig fields to override (``n_factors=50``,
            ``y_range=(0, 5.5)``, ``layers=(100, 50)``...).
    """
    if isinstance(model, str):
        if model not in RECIPES:
            raise ConfigError(f"unknown model {model!r}; known: {sorted(RECIPES)}")
        model_config, recipe = RECIPES[model]
    else:
        model_config, recipe = model, RECIPES[model.kind][1]
    model_config = with_changes(model_config, **model_changes) if model_changes else model_config
    options = options or RunOptions()
    with seeded(options.seed, torch.device("cpu")):  # initial weights
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
