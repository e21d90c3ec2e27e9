"""The learner: a model with its training data, and the calls that fit it.

``Learner`` follows fastai's workflow (``fit``, ``fit_one_cycle``, ``lr_find``, a table
of epochs) without its mechanisms: no callback system, no monkey-patching. It is a
:class:`~collabfilter.fitted.FittedModel` (so it predicts, recommends and saves like a
loaded model) that also holds the training and validation ratings. How a model is
fitted is its family's (:class:`~collabfilter.models.Family`); the learner hands it a
:class:`~collabfilter.models.family.FitJob` and keeps what comes back.

Training never changes torch's global state behind the caller's back: seeds go
through explicit generators or a forked random state, and only ``RunOptions.threads``
sets torch's thread count.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from collabfilter.config import NOT_GIVEN, FitConfig, ModelConfig, RunOptions, with_changes
from collabfilter.data import Ratings, RatingScale, Split
from collabfilter.data.interactions import Interactions
from collabfilter.data.popularity import log_popularity
from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError, DataError, TrainingWarning
from collabfilter.fitted import FittedModel
from collabfilter.models import RECIPES, FamilyModule, build_model, family_of
from collabfilter.models.family import FitJob
from collabfilter.models.side import SideFeatured
from collabfilter.persist import save_model
from collabfilter.progress import EpochRecord, announce
from collabfilter.runtime import resolve_device, seeded
from collabfilter.sgd import RowTrained, TrainConfig, sweep_rates
from collabfilter.sgd.config import ScheduleName
from collabfilter.train.features import FeatureChoice, choose_features
from collabfilter.train.lr_find import LRFinderResult, suggest
from collabfilter.train.tuning import DecayChoice, choose_decay

FASTAI_BATCH_SIZE = 64
"""fastai's default batch size (``CollabDataLoaders``): the lessons' Adam step sizes
were chosen with it, and an Adam step's size means something only with its batch."""


class Learner(FittedModel):
    """Holds a model with its training and validation ratings, and fits it.

    Args:
        model: a module of a registered family (see :mod:`collabfilter.models`).
        train: training ratings; their vocabularies become the model's.
        valid: validation ratings, matched to the training vocabularies by raw id.
        config: how to fit it (default: the family's fit config with its defaults).
        options: device, threads, seed, progress, step form.
        on_epoch: called with each :class:`EpochRecord` as training goes.
        model_config: what ``model`` was built from (kept for model files).
        features: the side features to train with (:mod:`collabfilter.train.features`):
            ``"auto"`` (what the data carries, when the family reads features),
            ``"none"``, or column names; what was used is in ``features_used``.

    Raises:
        DataError: for empty training data.
        UnknownIdError: for validation users or items the training vocabulary lacks.
        ConfigError: for features the data lacks or the family does not read.
    """

    def __init__(
        self,
        model: FamilyModule,
        train: Ratings,
        valid: Ratings | None = None,
        *,
        config: FitConfig | None = None,
        options: RunOptions | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        model_config: ModelConfig | None = None,
        features: FeatureChoice = "auto",
    ) -> None:
        if len(train) == 0:
            raise DataError("cannot train on an empty training set")
        self.family = family_of(model)
        train, self.features_used = choose_features(train, features, self.family)
        if isinstance(model, SideFeatured):
            model.attach_features(train.feature_rows("user"), train.feature_rows("item"))
        self.options = options or RunOptions()
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)  # asked for by RunOptions
        self._device = resolve_device(self.options.device)
        self.train_ratings = train
        self._interactions: Interactions | None = None
        super().__init__(
            model.to(self._device),
            train.users,
            train.items,
            cast(Interactions, None),  # built on first use: see interactions
            model_config,
            config if config is not None else self.family.fit_config(),
        )
        self.columns = dict(train.report.columns)
        self.features = {
            side: table.encoder
            for side in ("user", "item")
            if (table := getattr(train, f"{side}_features")) is not None
        }
        self.item_log_popularity = log_popularity(train)
        self.valid_ratings = _in_vocabularies(valid, train) if valid is not None else None
        self.train_tensors = RatingTensors(train, self._device)
        self.valid_tensors = (
            RatingTensors(self.valid_ratings, self._device) if self.valid_ratings else None
        )
        self.on_epoch = on_epoch
        self.decay_choice: DecayChoice | None = None
        """What ``fit_recipe`` chose for the decay strength, when the recipe tunes it."""
        self.report: object | None = None
        """What the last fit chose and why, when its family reports it (the ranking
        family: which model, with which settings)."""
        self._sgd_sweep: LRFinderResult | None = None
        """The last full ``lr_find`` sweep of sgd: what per-rating sgd needs here."""
        self.best_epoch: int | None = None
        self.kept_best = False
        """Whether the weights are those of an epoch chosen on the validation ratings."""
        self.model.prepare(
            self.train_tensors.user_counts(),
            self.train_tensors.item_counts(),
            float(self.train_tensors.rating.mean()),
        )

    @property
    def interactions(self) -> Interactions:
        """The training ratings in CSR form, built on first use: a fit of many ratings
        never holds them and the sgd step's copy of the ratings at once."""
        if self._interactions is None:
            self._interactions = Interactions.from_ratings(self.train_ratings)
        return self._interactions

    @interactions.setter
    def interactions(self, value: Interactions | None) -> None:
        self._interactions = value

    def training_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Training ratings per user and per item, from the training tensors (a fit
        never builds the CSR copy for them)."""
        tensors = self.train_tensors
        return tensors.user_counts().cpu().numpy(), tensors.item_counts().cpu().numpy()

    @property
    def scale(self) -> RatingScale:
        """The training ratings' scale, read without building the CSR copy (the
        validation of every epoch reads it)."""
        return self.train_ratings.scale

    # ------------------------------------------------------------------ fitting
    def fit(
        self, epochs: int = NOT_GIVEN, lr: float = NOT_GIVEN, **changes: Any
    ) -> list[EpochRecord]:
        """Train at a constant rate (fastai's ``fit``); other config fields by keyword.

        ``lr`` is read as :meth:`fit_one_cycle` reads ``lr_max``. Returns the records of
        this call's epochs (also appended to ``history``).
        """
        config = with_changes(self._sgd_config("fit"), epochs=epochs, **changes)
        return self._fit_scheduled(config, lr, changes, "constant")

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
        factors and biases); without it, the recipe's per-table decays apply.

        Rates are in the optimizer's units: per rating under the default ``sgd``, which
        ``lr_find`` sweeps. The lessons' rates are Adam step sizes (``5e-3``), far below
        what per-rating sgd needs, and taken as such: a ``lr_max`` under the sgd
        sweep's ``minimum`` (a tenth of the rate of its lowest loss) trains with
        ``optimizer="adamw"`` and fastai's batch size of 64, as fastai would, and a note
        says so. Naming ``optimizer=`` keeps the rate as given. With validation
        ratings, a fit that ends worse than the bias baseline warns with the rate to
        use.

        Returns:
            The records of this call's epochs (also appended to ``history``).
        """
        config = with_changes(self._sgd_config("fit_one_cycle"), epochs=epochs)
        if wd is not NOT_GIVEN:
            config = replace(config, weight_decay=wd, item_weight_decay=wd, bias_weight_decay=wd)
        config = with_changes(config, **changes)
        return self._fit_scheduled(config, lr_max, changes, "one_cycle")

    def _fit_scheduled(
        self, config: TrainConfig, lr: float, changes: dict[str, Any], schedule: ScheduleName
    ) -> list[EpochRecord]:
        """Train ``config`` at ``lr`` (read in the caller's units) on ``schedule``,
        warning when the fit ends worse than the bias baseline."""
        config = self._in_optimizer_units(config, lr, changes)
        records = self._run(replace(config, schedule=schedule))
        if (problem := self._below_baseline(records)) is not None:
            warnings.warn(problem, TrainingWarning, stacklevel=3)
        return records

    def _in_optimizer_units(
        self, config: TrainConfig, lr: float, changes: dict[str, Any]
    ) -> TrainConfig:
        """``config`` at the rate given, read in the units the caller meant.

        The one place where a rate far below what per-rating sgd needs is taken as
        the Adam step size of fastai's lessons (see :meth:`fit_one_cycle`). What sgd
        needs comes from this learner's own sweep (``lr_find``'s last, else one run
        now), so the rule follows the data and the model rather than a fixed rate.
        """
        if lr is NOT_GIVEN:
            return config
        config = with_changes(config, lr=lr)
        if "optimizer" in changes or config.optimizer != "sgd":
            return config
        sweep = self._sgd_sweep
        if sweep is None:
            sweep = self._sweep(config)
            if sweep.problem is not None:  # no floor to compare with: the rate as given
                return config
            self._sgd_sweep = sweep
        if lr >= sweep.minimum:
            return config
        batch_size = changes.get("batch_size", FASTAI_BATCH_SIZE)
        announce(
            f"lr_max={lr:g} is below a tenth of the rate at which per-rating sgd's loss "
            f"bottoms out on these ratings (lr_find: {sweep.lowest:.3g}; it suggests "
            f"{sweep.suggestion:.3g}); taken as fastai's Adam step size: training with "
            f"optimizer='adamw' and batch_size={batch_size}, as fastai does. Pass "
            "optimizer='sgd' to train by per-rating sgd at this rate",
            self.options.progress,
        )
        return replace(config, optimizer="adamw", batch_size=batch_size)

    def _below_baseline(self, records: list[EpochRecord]) -> str | None:
        """Why to warn when the validation RMSE ends above the bias baseline's (None
        otherwise): the model then predicts worse than per-user and per-item averages,
        which no caller of ``fit`` wants, and the usual cause is the rate."""
        rmse = self.metrics.get("valid_rmse")
        baseline = self._baseline_rmse()
        if rmse is None or baseline is None or rmse <= baseline:
            return None
        assert isinstance(self.config, TrainConfig)  # set by _run from an sgd config
        config = self.config
        if config.optimizer == "sgd" and self._sgd_sweep is not None:
            hint = f"lr_max={self._sgd_sweep.suggestion:.3g}, this learner's lr_find suggestion"
        else:
            hint = f"the suggestion of lr_find(), which sweeps {config.optimizer}"
        return (
            f"after {len(records)} epochs at lr={config.lr:g} ({config.optimizer}) the "
            f"validation RMSE is {rmse:.4f}, worse than the bias baseline's {baseline:.4f} "
            f"(the mean plus damped user and item biases): train longer or try {hint}"
        )

    def _baseline_rmse(self) -> float | None:
        """The validation RMSE of the damped bias baseline (what unknown pairs get under
        ``unknown="baseline"``), or None without validation ratings."""
        valid = self.valid_ratings
        if valid is None or len(valid) == 0 or not self.predicts_ratings:
            return None
        guess = self.baseline_of(valid.user_idx, valid.item_idx)
        return float(np.sqrt(np.mean((guess - valid.rating) ** 2)))

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
            tuned = replace(config.scaled_decay(choice.multiplier), tune_decay=False)
            self.decay_choice = choice
            announce(choice.describe(), self.options.progress)
            records = self._run(tuned)
            self.metrics["decay_multiplier"] = choice.multiplier
            return records
        assert config is not None  # set in __init__
        return self._run(config)

    def _trial(
        self,
        module: FamilyModule,
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
        trial._run(config, validate_at=scored)

    def _sgd_config(self, call: str) -> TrainConfig:
        if self.family.steps is None or not isinstance(self.config, TrainConfig):
            raise ConfigError(
                f"{call} trains by gradient steps; this {type(self.model).__name__} learner "
                "is trained by its recipe: call fit_recipe()"
            )
        return self.config

    def _run(
        self, config: FitConfig, validate_at: frozenset[int] | None = None
    ) -> list[EpochRecord]:
        """Fit by the family's fit; the config as run becomes ``self.config``."""
        if not isinstance(config, self.family.fit_config):
            raise ConfigError(
                f"the {self.family.name} family is fitted by a {self.family.fit_config.__name__}, "
                f"not a {type(config).__name__}"
            )
        job = FitJob(
            train=self.train_ratings, tensors=self.train_tensors, valid=self.valid_tensors,
            options=self.options, first_epoch=len(self.history) + 1, on_epoch=self.on_epoch,
            validate=self._validate, validate_at=validate_at,
        )  # fmt: skip
        outcome = self.family.fit(self.model, job, config)
        self.model = outcome.module.to(self._device)
        self.cache.clear()  # what was derived from the old weights
        self.config = outcome.config or config
        self.best_epoch, self.kept_best = outcome.best_epoch, outcome.kept_best
        if outcome.report is not None:
            self.report = outcome.report
            announce(str(outcome.report), self.options.progress)
        self.history.extend(outcome.records)
        last = self.history[-1]
        self.metrics = {} if last.train_loss is None else {"train_mse": last.train_loss}
        _, rmse = self._validate()
        if rmse is not None:
            self.metrics["valid_rmse"] = rmse
        self.metrics.update(outcome.metrics)
        return outcome.records

    def _validate(self) -> tuple[float | None, float | None]:
        """The validation MSE and RMSE of the predictions as they stand (on the scale)."""
        valid = self.valid_tensors
        if valid is None or len(valid) == 0 or not self.predicts_ratings:
            return None, None
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
        restored afterwards. Warns (``TrainingWarning``) when the curve gives no
        reliable rate (``problem``).
        """
        config = self._sgd_config("lr_find")
        result = self._sweep(config, start_lr, end_lr, num_steps)
        if result.problem is not None:
            warnings.warn(f"lr_find: {result.problem}", TrainingWarning, stacklevel=2)
        elif config.optimizer == "sgd":
            self._sgd_sweep = result
        return result

    def _sweep(
        self, config: TrainConfig, start_lr: float = 1e-5, end_lr: float = 1.0,
        num_steps: int = 100,
    ) -> LRFinderResult:  # fmt: skip
        """The finder's sweep of ``config``'s optimizer and batches; the model restored."""
        config = replace(config, lr=1.0, schedule="constant")
        steps_of = self.family.steps
        module = self.model
        if steps_of is None or not isinstance(module, RowTrained):
            raise ConfigError(f"{type(module).__name__} is not trained by gradient steps")
        saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        generator = torch.Generator().manual_seed(self.options.seed)
        try:
            with seeded(self.options.seed, self._device):
                steps = steps_of(module, self.train_tensors, config, self.options, generator)
                lrs, losses = sweep_rates(
                    steps, self.model, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps
                )
        finally:
            self.model.load_state_dict(saved)
        return suggest(lrs, losses)


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


def collab_learner(
    train: Ratings,
    valid: Ratings | None = None,
    *,
    model: ModelConfig | str = "dot_bias",
    use_nn: bool = False,
    config: FitConfig | None = None,
    options: RunOptions | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    features: FeatureChoice = "auto",
    **model_changes: Any,
) -> Learner:
    """A learner with a model built for the data (fastai's ``collab_learner``).

    Args:
        train: training ratings.
        valid: validation ratings.
        model: a recipe name (``"dot_bias"``, ``"dot"``, ``"nn"``, ``"bayes"``,
            ``"topn"``...; see :data:`~collabfilter.models.RECIPES`) or a family's model
            config (``DotConfig(n_factors=32)``).
        use_nn: fastai's spelling of ``model="nn"`` (an MLP over concatenated
            embeddings), accepted so that the lessons' calls run as written.
        config: how to fit it (default: the recipe's).
        options: run options.
        on_epoch: see :class:`Learner`.
        features: ``"auto"``, ``"none"`` or column names (see :class:`Learner`).
        model_changes: model config fields to override (``n_factors=50``,
            ``y_range=(0, 5.5)``, ``layers=(100, 50)``...).

    Raises:
        ConfigError: for an unknown recipe, a field its model config lacks, or
            ``use_nn=True`` beside another model than ``"nn"``.
    """
    if use_nn:
        # "dot_bias" is the default, not a choice; an nn config is what use_nn asks for
        nn_config = not isinstance(model, str) and family_of(model).name == "nn"
        if model not in ("dot_bias", "nn") and not nn_config:
            raise ConfigError(
                f"use_nn=True is fastai's model='nn'; it contradicts model={model!r}: "
                "pass one of them"
            )
        model = model if nn_config else "nn"
    if isinstance(model, str):
        if model not in RECIPES:
            raise ConfigError(f"unknown model {model!r}; known: {sorted(RECIPES)}")
        model_config, recipe = RECIPES[model]
    else:
        family = family_of(model)
        model_config, recipe = (
            model,
            next(fit for config_, fit in family.recipes.values() if config_.kind == model.kind),
        )
    model_config = with_changes(model_config, **model_changes) if model_changes else model_config
    options = options or RunOptions()
    with seeded(options.seed, torch.device("cpu")):  # initial weights
        module = build_model(model_config, train.n_users, train.n_items, train.scale)
    return Learner(
        module,
        train,
        valid,
        config=config or recipe,
        options=options,
        on_epoch=on_epoch,
        model_config=model_config,
        features=features,
    )
