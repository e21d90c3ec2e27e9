"""How a model is trained by stochastic gradient steps: the fit config of the dot and
nn families."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from collabfilter.config import FitConfig, require, require_choice

OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["one_cycle", "cosine", "constant"]


def _fallback(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class TrainConfig(FitConfig):
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
    """Learning-rate schedule over the run (see ``collabfilter.sgd.schedule``)."""
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

    def with_length(self, n: int) -> TrainConfig:
        """This recipe with ``n`` epochs."""
        return dataclasses.replace(self, epochs=n)

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
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require_choice(self.schedule, ScheduleName, "schedule")
        require_choice(self.optimizer, OptimizerName, "optimizer")
        require(0.0 < self.pct_start < 1.0, f"pct_start must lie in (0, 1), got {self.pct_start}")
        require(0.0 <= self.momentum < 1.0, f"momentum must lie in [0, 1), got {self.momentum}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        require(
            len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
            f"betas must be two values in [0, 1), got {self.betas}",
        )
        for name in ("weight_decay", "item_weight_decay", "bias_weight_decay"):
            value = getattr(self, name)
            require(value is None or value >= 0, f"{name} must be >= 0, got {value}")
        require(
            0.0 <= self.rate_exponent <= 1.0,
            f"rate_exponent must lie in [0, 1], got {self.rate_exponent}",
        )
        require(
            self.batch_size is None or self.batch_size >= 1,
            f"batch_size must be >= 1 or None, got {self.batch_size}",
        )
        require(self.dense_lr > 0, f"dense_lr must be > 0, got {self.dense_lr}")
        require(
            self.grad_clip is None or self.grad_clip > 0,
            f"grad_clip must be > 0 or None, got {self.grad_clip}",
        )
        require(
            self.early_stopping is None or self.early_stopping >= 1,
            f"early_stopping must be >= 1 or None, got {self.early_stopping}",
        )
