"""Typed, validated configuration: what model to build and how to train it.

Hyper-parameters (``ModelConfig``, ``TrainConfig``) are kept apart from run options
(``RunOptions``: device, threads, seed, progress), as in LensKit: the first decide the
result, the second only how it is computed. Every config is frozen, validates itself
on creation and round-trips through plain dicts (JSON) for model files and the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar, get_args

from collabfilter.errors import ConfigError

ModelKind = Literal["dot", "dot_bias", "nn"]
OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["one_cycle", "cosine", "constant"]


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
    """``"dot"`` (factors only), ``"dot_bias"`` (factors + biases) or ``"nn"`` (MLP)."""
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
    lr: float = 0.04
    """Peak learning rate (per rating for sgd; Adam's step size otherwise)."""
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
    weight_decay: float = 0.09
    """Decay of user factors (and of all rows unless overridden below)."""
    item_weight_decay: float | None = 0.12
    """Decay of item factors (None: ``weight_decay``)."""
    bias_weight_decay: float | None = 0.06
    """Decay of user and item biases (None: ``weight_decay``)."""
    user_decay_exponent: float = 0.75
    """Frequency exponent of user-row decay (see the class docstring)."""
    item_decay_exponent: float = 0.4
    """Frequency exponent of item-row decay."""
    bias_decay_exponent: float = 0.0
    """Frequency exponent of bias decay."""
    rate_exponent: float = 0.0
    """Exponent of the per-row rate reduction for crowded rows (see the class docstring);
    0: one rate for every row."""
    batch_size: int = 8192
    """Ratings per step."""
    dense_lr: float = 3e-3
    """Adam step size of dense parameters under ``optimizer="sgd"``."""
    grad_clip: float | None = None
    """Clip each step's gradient to this norm per table row (None: no clipping)."""
    early_stopping: int | None = None
    """Stop after this many epochs without a better validation loss (None: never)."""
    keep_best: bool = True
    """Restore the weights of the epoch with the lowest validation loss at the end."""

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
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
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

    def __post_init__(self) -> None:
        _require(
            self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"
        )


RECIPES: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "dot_bias": (ModelConfig(kind="dot_bias"), TrainConfig()),
    "nn": (
        ModelConfig(kind="nn", layers=(64,), dropout=0.3),
        TrainConfig(batch_size=4096, dense_lr=3e-3, weight_decay=0.12, item_weight_decay=0.16),
    ),
    "dot": (ModelConfig(kind="dot", n_factors=50, init_std=0.1), TrainConfig()),
    "dot_bias_large": (
        ModelConfig(kind="dot_bias"),
        TrainConfig(
            epochs=8,
            batch_size=32_768,
            lr=0.2,
            rate_exponent=1.0,
            weight_decay=0.06,
            item_weight_decay=0.08,
        ),
    ),  # fmt: skip
}
"""Model and training recipes by name: the default per model kind, chosen on validation
data carved out of ml-100k's training files (``benchmarks/tune_recipe.py``), and
``dot_bias_large`` for millions of ratings, chosen on validation carved out of 10M
synthetic ratings in ml-25m's shape (``benchmarks/bench_scale.py``): larger batches,
fewer epochs, and rates of rows crowded in a batch divided by their crowding, because
one batch of 32,768 can touch a blockbuster a thousand times and a rare film once."""

C = TypeVar("C", ModelConfig, TrainConfig, RunOptions)


def config_to_dict(config: ModelConfig | TrainConfig | RunOptions) -> dict[str, Any]:
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
    """A copy of ``config`` with some fields changed (validated again)."""
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})


__all__ = [
    "RECIPES",
    "ModelConfig",
    "RunOptions",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "with_changes",
]


# ----------------------------------------------------------------------------- top-N
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


__all__ += ["TopNConfig", "TopNKind"]
