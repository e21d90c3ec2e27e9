"""Typed, validated configuration: what model to build and how to train it.

Hyper-parameters (``ModelConfig``, ``TrainConfig``) are kept apart from run options
(``RunOptions``: device, threads, seed, progress), as in LensKit: the first decide the
result, the second only how it is computed. Every config is frozen, validates itself
on creation and round-trips through plain dicts (JSON) for model files and the CLI.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar, get_args

from collabfilter.errors import ConfigError

ModelKind = Literal["dot", "dot_bias", "nn", "bayes", "topn"]
OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["one_cycle", "cosine", "constant"]
StepForm = Literal["auto", "compiled", "sparse", "gather", "autograd"]


class _NotGiven:
    """The type of :data:`NOT_GIVEN`."""

    _instance: _NotGiven | None = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Any = _NotGiven()
"""Default of optional keyword arguments whose ``None`` is a meaningful value: "not
given" leaves a config field as it is, an explicit ``None`` sets it to ``None``."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _fallback(value: float | None, default: float) -> float:
    return default if value is None else value


def _choice(value: str, allowed: Any, name: str) -> None:
    options = get_args(allowed)
    _require(value in options, f"{name} must be one of {options}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which model, and its sizes. Fields that do not apply to ``kind`` are ignored."""

    kind: ModelKind = "dot_bias"
    """``"dot"`` (factors only), ``"dot_bias"`` (factors + biases), ``"nn"`` (MLP) or
    ``"bayes"`` (Bayesian factorisation by Gibbs sampling, :class:`BayesConfig`) or
    ``"topn"`` (a ranking model chosen and fitted for top-N lists, :class:`TopNConfig`)."""
    n_factors: int = 64
    """Length of the user and item factor vectors (dot models)."""
    y_range: tuple[float, float] | None = None
    """Predictions are squashed into this range; None derives it from the rating scale
    (half a step beyond each end: (0.5, 5.5) for 1-5 stars)."""
    init_std: float = 0.01
    """Standard deviation of the normal initial factors/embeddings."""
    activity_prior: bool = True
    """dot_bias, nn: centre biases on a learned function of log activity."""
    biases: bool = True
    """nn: add user/item bias terms to the MLP output (False: fastai's EmbeddingNN)."""
    layers: tuple[int, ...] = (100, 50)
    """nn: hidden layer widths."""
    dropout: float = 0.0
    """nn: dropout after each hidden layer."""
    embedding_dropout: float = 0.0
    """nn: dropout on the concatenated embeddings."""
    batch_norm: bool = False
    """nn: batch normalisation in hidden layers (fastai: True)."""
    user_size: int | None = None
    """nn: user embedding width (None: fastai's rule of thumb)."""
    item_size: int | None = None
    """nn: item embedding width (None: fastai's rule of thumb)."""

    def __post_init__(self) -> None:
        _choice(self.kind, ModelKind, "kind")
        _require(self.n_factors >= 1, f"n_factors must be >= 1, got {self.n_factors}")
        if self.y_range is not None:
            object.__setattr__(self, "y_range", tuple(float(v) for v in self.y_range))
            low, high = self.y_range
            _require(low < high, f"y_range must be (low, high) with low < high, got {self.y_range}")
        _require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))
        _require(all(w >= 1 for w in self.layers), f"layers must be >= 1, got {self.layers}")
        for name in ("dropout", "embedding_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"{name} must lie in [0, 1), got {value}")
        for name in ("user_size", "item_size"):
            value = getattr(self, name)
            _require(value is None or value >= 1, f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: epochs, schedule, optimizer, regularisation, batches.

    Weight decay on embedding rows is applied each time a training rating touches the
    row, scaled by ``n_row ** (exponent - 1)`` (normalised to a mean of 1 over ratings),
    where ``n_row`` is the row's number of training ratings. Exponent 1 is the classic
    per-rating L2 of Funk SVD and Surprise; exponent 0 gives every row the same total
    decay per epoch, as dense weight decay does; values between let rarely seen rows
    shrink relatively more.

    Under row-wise sgd one batch can touch a popular row thousands of times and a rare
    row once, so a single rate is either unstable for the first or slow for the second.
    ``rate_exponent`` divides each row's rate by ``(1 + c_row) ** rate_exponent``, where
    ``c_row`` is the row's expected number of ratings in one batch: rare rows keep
    ``lr`` per rating, and at exponent 1 a crowded row moves by about ``lr`` times its
    mean gradient per step, whatever the batch size. A diagonal preconditioner: it
    changes the path to the minimum, not the minimum.

    Dense parameters (MLP layers, the activity prior) use Adam with ``dense_lr`` under
    ``optimizer="sgd"``.
    """

    epochs: int = 20
    """Passes over the training ratings."""
    lr: float = 0.06
    """Peak learning rate (per rating for sgd, before the crowding scale of
    ``rate_exponent``; Adam's step size otherwise)."""
    schedule: ScheduleName = "one_cycle"
    """Learning-rate schedule over the run (see ``collabfilter.train.schedule``)."""
    pct_start: float = 0.25
    """one_cycle: share of the run spent warming up."""
    optimizer: OptimizerName = "sgd"
    """Row-wise sparse ``"sgd"``, or lazy row-wise ``"adam"``/``"adamw"``."""
    momentum: float = 0.0
    """sgd: momentum (rows keep their own, updated when touched)."""
    betas: tuple[float, float] = (0.9, 0.99)
    """adam/adamw: moment decay rates."""
    weight_decay: float = 0.1
    """Decay of user factors (and of all rows unless overridden below)."""
    item_weight_decay: float | None = None
    """Decay of item factors (None: ``weight_decay``)."""
    bias_weight_decay: float | None = None
    """Decay of user and item biases (None: ``weight_decay``)."""
    user_decay_exponent: float = 0.5
    """Frequency exponent of user-row decay (see the class docstring)."""
    item_decay_exponent: float = 0.5
    """Frequency exponent of item-row decay."""
    bias_decay_exponent: float = 0.0
    """Frequency exponent of bias decay."""
    rate_exponent: float = 0.25
    """Exponent of the per-row rate reduction for crowded rows (see the class docstring);
    0: one rate for every row."""
    batch_size: int | None = None
    """Ratings per step. None: about a fortieth of the training ratings (a power of two
    in [256, 32768]), so that every epoch takes ~40 steps whatever the data size."""
    dense_lr: float = 3e-3
    """Adam step size of dense parameters under ``optimizer="sgd"``."""
    grad_clip: float | None = None
    """Clip each step's gradient to this norm per table row (None: no clipping)."""
    early_stopping: int | None = None
    """Stop after this many epochs without a better validation loss (None: never)."""
    keep_best: bool = False
    """Restore the weights of the epoch with the lowest validation loss at the end
    (fastai's ``SaveModelCallback``). The epoch is then chosen on the validation
    ratings, so their RMSE is no longer an honest estimate; the epoch table says so."""
    tune_decay: bool = False
    """``fit_recipe`` first chooses the decay strength for the data: it scales every
    table's decay by the multiple (1/2, 1, 2, stepping outwards while the best is at an
    edge) that scores best on a tenth of the training ratings carved out for it (see
    :mod:`collabfilter.train.tuning`). Explicit calls (``fit``, ``fit_one_cycle``) use
    the decays as given."""

    def batch_for(self, n_ratings: int) -> int:
        """The batch size for ``n_ratings`` training ratings (see ``batch_size``)."""
        if self.batch_size is not None:
            return self.batch_size
        return int(min(max(2 ** round(math.log2(max(n_ratings, 1) / 40)), 256), 32768))

    def scaled_decay(self, multiplier: float) -> TrainConfig:
        """This config with every table's decay strength multiplied by ``multiplier``."""
        return dataclasses.replace(
            self,
            weight_decay=self.weight_decay * multiplier,
            item_weight_decay=_fallback(self.item_weight_decay, self.weight_decay) * multiplier,
            bias_weight_decay=_fallback(self.bias_weight_decay, self.weight_decay) * multiplier,
        )

    def decay_for(self, side: str, role: str) -> tuple[float, float]:
        """``(strength, exponent)`` of the decay of a ``"user"``/``"item"`` table of
        ``"factors"`` or ``"bias"`` (the fallbacks documented on the fields)."""
        if role == "bias":
            strength = self.bias_weight_decay
            return _fallback(strength, self.weight_decay), self.bias_decay_exponent
        if side == "item":
            return _fallback(self.item_weight_decay, self.weight_decay), self.item_decay_exponent
        return self.weight_decay, self.user_decay_exponent

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _choice(self.schedule, ScheduleName, "schedule")
        _choice(self.optimizer, OptimizerName, "optimizer")
        _require(0.0 < self.pct_start < 1.0, f"pct_start must lie in (0, 1), got {self.pct_start}")
        _require(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _require(
            len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
            f"betas must be two values in [0, 1), got {self.betas}",
        )
        for name in ("weight_decay", "item_weight_decay", "bias_weight_decay"):
            value = getattr(self, name)
            _require(value is None or value >= 0, f"{name} must be >= 0, got {value}")
        _require(
            0.0 <= self.rate_exponent <= 1.0,
            f"rate_exponent must lie in [0, 1], got {self.rate_exponent}",
        )
        _require(
            self.batch_size is None or self.batch_size >= 1,
            f"batch_size must be >= 1 or None, got {self.batch_size}",
        )
        _require(self.dense_lr > 0, f"dense_lr must be > 0, got {self.dense_lr}")
        _require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be > 0 or None, got {self.grad_clip}",
        )
        _require(
            self.early_stopping is None or self.early_stopping >= 1,
            f"early_stopping must be >= 1 or None, got {self.early_stopping}",
        )


@dataclass(frozen=True)
class RunOptions:
    """How to run, without changing what is learned (beyond floating-point order)."""

    device: str = "auto"
    """``"auto"`` (CUDA, then MPS, then CPU), or a torch device such as ``"cpu"``."""
    threads: int | None = None
    """CPU threads for torch (None: leave torch's setting)."""
    seed: int = 42
    """Seeds initialisation, shuffling and dropout."""
    progress: bool | None = None
    """Progress bar and epoch table: None shows them when stderr is a terminal."""
    step: StepForm = "auto"
    """How a dot model's sgd step is computed: ``"compiled"`` (one compiled loop per
    batch, numba, CPU; pays while a batch's updates fit in a core's cache),
    ``"sparse"`` (the batch as a sparse users x items matrix; pays when the tables have
    no more rows than a batch has ratings), ``"gather"`` (gathers and ``index_add_``),
    ``"autograd"`` (the generic path every model and optimizer takes). ``"auto"``:
    compiled for small batches on the CPU, then sparse for small tables on the CPU,
    gather for other dot models under plain sgd, autograd otherwise (see
    :mod:`collabfilter.train.steps`). The forms do the same arithmetic in another order
    (the tests check they agree)."""
    shuffle_block: int | None = None
    """Ratings per block of an epoch's order: 1 visits the ratings in an exact random
    permutation; larger blocks are faster on millions of ratings (see
    :mod:`collabfilter.train.shuffle`). None: 1 below 2^20 ratings, else up to 64."""

    def __post_init__(self) -> None:
        _require(
            self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"
        )
        _choice(self.step, StepForm, "step")
        _require(
            self.shuffle_block is None or self.shuffle_block >= 1,
            f"shuffle_block must be >= 1 or None, got {self.shuffle_block}",
        )


@dataclass(frozen=True)
class BayesConfig:
    """Bayesian matrix factorisation with implicit feedback, fitted by Gibbs sampling
    (:mod:`collabfilter.train.gibbs`, :class:`collabfilter.models.BayesianMF`).

    There is no learning rate and no weight decay: the noise precision and every
    group's prior mean and precision are sampled too. The constants below only set
    the weak hyper-priors over those; with thousands of ratings the data outweigh them.
    """

    n_factors: int = 10
    """Length of the user and item factor vectors (the bias is one more dimension)."""
    sweeps: int = 200
    """Gibbs sweeps in all, burn-in included."""
    burn_in: int = 5
    """Sweeps whose samples are discarded: the chain starts from small random factors.
    Chosen on validation parts carved out of ml-100k's training files (90/10, u1; two
    seeds each): burn-in 20 lost 0.0005 RMSE to burn-in 0 or 5 at 200 sweeps (the
    early, still shrunk samples help a little); 5 spares short runs the very first."""
    thin: int = 1
    """Keep every ``thin``-th sample after burn-in (consecutive samples are correlated,
    but keeping them all still lowers the variance of the averaged prediction)."""
    max_kept: int = 200
    """Most samples kept; past this, thinning grows to spread them over the run."""
    max_kept_bytes: int = 2**30
    """Most bytes the kept samples may take (see ``BayesianMF`` for the cost per
    sample); past this, thinning grows as for ``max_kept``."""
    implicit: bool = True
    """Add each user's rated items (and each item's raters), normalised by
    ``1/sqrt(count)``, to its prior mean (SVD++ on both sides, "flipped SVD++")."""
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
    On the carved validation parts (see ``burn_in``) shape and rate 0.5 scored 0.8789
    against 0.8815 for 1 and 1, rate 0.1 0.8786, rate 0.01 0.8901: the rate bounds how
    far an unneeded dimension may shrink, and too small a rate lets dimensions collapse."""
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
    use preconditioned conjugate gradients each sweep. The decomposition grows with the
    cube: 0.5 s at 1,000 rows, 5.7 s at 2,000, 38 s at 4,000 (one thread)."""
    cg_tol: float = 1e-2
    """Relative residual at which conjugate gradients stop (large data only)."""
    cg_max_iter: int = 50
    """Conjugate-gradient iterations per draw at most (large data only)."""
    monitor_ratings: int = 100_000
    """Training ratings (a fixed random subset past this) whose running-average
    prediction gives the training RMSE reported each sweep."""

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
            "n_factors",
            "sweeps",
            "thin",
            "max_kept",
            "max_kept_bytes",
            "cg_max_iter",
            "monitor_ratings",
        ):
            value = getattr(self, name)
            _require(value >= 1, f"{name} must be >= 1, got {value}")
        _require(
            0 <= self.burn_in < self.sweeps,
            f"burn_in must lie in [0, sweeps={self.sweeps}), got {self.burn_in}",
        )
        _require(
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
            _require(value > 0, f"{name} must be > 0, got {value}")
        _require(
            self.exact_max_rows >= 0, f"exact_max_rows must be >= 0, got {self.exact_max_rows}"
        )


TopNKind = Literal["ease", "ials", "item_knn"]


def _grid(value: tuple[Any, ...], name: str, low: float, high: float | None = None) -> None:
    _require(len(value) >= 1, f"{name} needs at least one value")
    inside = all(v >= low and (high is None or v <= high) for v in value)
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    _require(inside, f"{name} values must lie in {bounds}, got {value}")


@dataclass(frozen=True)
class TopNConfig:
    """How ``collabfilter.train.topn`` picks, tunes and fits a top-N model.

    Settings are chosen on a per-user hold-out carved out of the *training* ratings
    (never the test part), by NDCG@``k``; the winner is refitted on all training
    ratings. Grids are relative to the data where the right scale depends on it (EASE's
    penalty on the number of raters per item, iALS's unobserved weight on the ratings
    per user), so the defaults carry from ml-100k to ml-25m. Each model's grid is
    searched one setting at a time (start at each grid's middle value, sweep the
    settings in turn, keep the best): the cost is the sum of the grid sizes, not their
    product.
    """

    candidates: tuple[TopNKind, ...] = ("ease", "ials", "item_knn")
    """Models to consider."""
    relevance: float | None = 4.0
    """Carved ratings at least this count as hits, and training ratings below it get a
    ``low_rating_weights`` weight; None: every rating is a hit with weight 1."""
    low_rating_weights: tuple[float, ...] = (1.0, 0.3)
    """Interaction weights tried for ratings below ``relevance`` (in (0, 1])."""
    ease_l2_scales: tuple[float, ...] = (2.5, 5.0, 10.0, 20.0)
    """EASE penalties, as multiples of the mean of ``diag(X'X)`` (weighted raters per
    item) on the carved training part."""
    ials_factors: tuple[int, ...] = (64, 128)
    """iALS factor counts."""
    ials_l2: tuple[float, ...] = (0.01, 0.03, 0.1)
    """iALS frequency-scaled penalties."""
    ials_unobserved_scales: tuple[float, ...] = (1.0, 3.0, 10.0)
    """iALS unobserved weights ``a0``, as multiples of (mean weighted ratings per user)
    / items: at 1, the unobserved pairs of a typical user weigh as much in total as
    their ratings."""
    ials_sweeps: int = 10
    """iALS alternations."""
    knn_neighbours: tuple[int, ...] = (50, 100, 200, 400)
    """Item-kNN neighbours per item."""
    carve_fraction: float = 0.2
    """Share of each user's training ratings held out for the choice."""
    k: int = 10
    """The choice maximises NDCG at this list length."""
    memory_budget: int = 4 * 2**30
    """Bytes a fit may take; candidates estimated above it are skipped (EASE's items x
    items matrices: 59,047 items need 42 GB)."""
    max_select_users: int = 20_000
    """The choice looks at the ratings of at most this many users (a seeded sample),
    so its cost stays bounded at any scale; the refit uses every user."""
    seed: int = 42
    """Seeds the carve, the user sample and the iALS initialisation."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        _require(len(self.candidates) >= 1, "candidates needs at least one model")
        for kind in self.candidates:
            _choice(kind, TopNKind, "candidates")
        grids = {
            "low_rating_weights": (1e-6, 1.0), "ease_l2_scales": (1e-9, None),
            "ials_factors": (1, None), "ials_l2": (1e-12, None),
            "ials_unobserved_scales": (0.0, None), "knn_neighbours": (1, None),
        }  # fmt: skip
        for name, (low, high) in grids.items():
            object.__setattr__(self, name, tuple(getattr(self, name)))
            _grid(getattr(self, name), name, low, high)
        _require(self.ials_sweeps >= 1, f"ials_sweeps must be >= 1, got {self.ials_sweeps}")
        _require(
            0.0 < self.carve_fraction < 1.0,
            f"carve_fraction must lie in (0, 1), got {self.carve_fraction}",
        )
        _require(self.k >= 1, f"k must be >= 1, got {self.k}")
        _require(self.memory_budget > 0, f"memory_budget must be > 0, got {self.memory_budget}")
        _require(
            self.max_select_users >= 1,
            f"max_select_users must be >= 1, got {self.max_select_users}",
        )


_TUNED_ON_ML100K = TrainConfig(
    lr=0.04, rate_exponent=0.0, batch_size=8192, weight_decay=0.09, item_weight_decay=0.12,
    bias_weight_decay=0.06, user_decay_exponent=0.75, item_decay_exponent=0.4,
)  # fmt: skip
"""The first default recipe, chosen on validation carved from ml-100k's training files;
kept as the base of the ``nn`` and ``dot`` recipes, whose results it fixes."""

FitConfig = TrainConfig | BayesConfig | TopNConfig
"""How a model is trained: sgd epochs (:class:`TrainConfig`), Gibbs sweeps
(:class:`BayesConfig`), or the choice and closed-form fit of a ranking model
(:class:`TopNConfig`)."""

RECIPES: dict[str, tuple[ModelConfig, FitConfig]] = {
    "dot_bias": (ModelConfig(kind="dot_bias"), TrainConfig(tune_decay=True)),
    "nn": (
        ModelConfig(kind="nn", layers=(64,), dropout=0.3),
        dataclasses.replace(
            _TUNED_ON_ML100K, batch_size=4096, weight_decay=0.12, item_weight_decay=0.16
        ),
    ),
    "dot": (ModelConfig(kind="dot", n_factors=50, init_std=0.1), _TUNED_ON_ML100K),
    "dot_bias_large": (
        ModelConfig(kind="dot_bias"),
        TrainConfig(
            epochs=8, batch_size=32_768, lr=0.2, rate_exponent=1.0, weight_decay=0.06,
            item_weight_decay=0.08, bias_weight_decay=0.06, user_decay_exponent=0.75,
            item_decay_exponent=0.4,
        ),
    ),
    "bayes": (ModelConfig(kind="bayes", n_factors=10), BayesConfig()),
    "topn": (ModelConfig(kind="topn"), TopNConfig()),
}  # fmt: skip
"""Model and training recipes by name.

``dot_bias``, the default, adapts to the data: batches of about a fortieth of the
ratings (a row then appears in a batch about a fortieth as often as in the data),
rates of rows crowded in a batch divided by the fourth root of their crowding (tamer
at the one-cycle peak for rows seen many times per batch), one decay strength for every table
with rarely seen rows shrunk relatively more (frequency exponents 0.5), and that
strength chosen by ``fit_recipe`` on a part carved out of the training ratings
(``tune_decay``). ``bayes`` samples its hyper-parameters (no rate, no decay to tune) and is the most
accurate: see :class:`BayesConfig`. ``topn`` is for top-N lists, not ratings: it
chooses among EASE, implicit ALS and item-kNN on ratings carved out of the training
data (:class:`TopNConfig`). ``nn`` and ``dot`` keep settings chosen on
validation carved out of
ml-100k's training files (``benchmarks/tune_recipe.py``); ``dot_bias_large`` was chosen
on validation carved out of 10M synthetic ratings in ml-25m's shape
(``benchmarks/bench_scale.py``): larger batches and fewer epochs."""

C = TypeVar("C", ModelConfig, TrainConfig, BayesConfig, TopNConfig, RunOptions)


def config_to_dict(
    config: ModelConfig | TrainConfig | BayesConfig | TopNConfig | RunOptions,
) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples become lists)."""
    return {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
        for f in fields(config)
    }


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config from :func:`config_to_dict` output, refusing unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    _require(not unknown, f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


def with_changes(config: C, **changes: Any) -> C:
    """A copy of ``config`` with some fields changed (validated again).

    A change whose value is :data:`NOT_GIVEN` is skipped; ``None`` is a value like any
    other (``early_stopping=None`` turns early stopping off).
    """
    known = {f.name for f in fields(config)}
    unknown = sorted(set(changes) - known)
    _require(not unknown, f"unknown {type(config).__name__} field(s) {unknown}")
    given = {k: v for k, v in changes.items() if v is not NOT_GIVEN}
    return dataclasses.replace(config, **given)


__all__ = [
    "NOT_GIVEN",
    "RECIPES",
    "BayesConfig",
    "FitConfig",
    "TopNConfig",
    "TopNKind",
    "ModelConfig",
    "RunOptions",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "with_changes",
]


# ----------------------------------------------------------------------------- top-N
