"""The training loop and the learning-rate sweep, over any form of the sgd step.

:func:`run_epochs` is ``fit``: epochs of scheduled steps, a record per epoch, the
best epoch's weights when asked, early stopping and a divergence check.
:func:`sweep_rates` is ``lr_find``'s loop: the same steps at exponentially growing
rates, so the finder measures the optimizer and step form the fit will use.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Container
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from collabfilter.errors import TrainingDivergedError
from collabfilter.progress import EpochRecord, EpochReporter
from collabfilter.sgd.config import TrainConfig
from collabfilter.sgd.schedule import exponential_sweep, get_schedule
from collabfilter.sgd.steps import Steps

Validate = Callable[[], tuple[float | None, float | None]]
"""Returns the validation ``(loss, rmse)``, or ``(None, None)`` without validation data."""


@dataclass
class LoopResult:
    """What a run of epochs produced."""

    records: list[EpochRecord]
    best_epoch: int | None
    restored: bool
    """Whether the best epoch's weights were put back at the end (``keep_best``)."""


def run_epochs(
    steps: Steps,
    model: nn.Module,
    config: TrainConfig,
    *,
    n_ratings: int,
    n_batches: int,
    validate: Validate,
    reporter: EpochReporter,
    first_epoch: int = 1,
    on_record: Callable[[EpochRecord], None] | None = None,
    validate_at: Container[int] | None = None,
) -> LoopResult:
    """Train for ``config.epochs`` epochs on the schedule ``config`` names, validating
    after every epoch, or only after the epochs of this run in ``validate_at`` (1 is
    this run's first; the others' records have no validation figures).

    Raises:
        ValueError: for ``validate_at`` with early stopping or ``keep_best``, which
            compare every epoch's validation loss.
    """
    if validate_at is not None and (config.early_stopping is not None or config.keep_best):
        raise ValueError("early stopping and keep_best need every epoch validated")
    schedule = get_schedule(config.schedule, pct_start=config.pct_start)
    total_steps = config.epochs * n_batches
    best_loss, best_epoch, best_state, stale = float("inf"), None, None, 0
    records: list[EpochRecord] = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        model.train()
        half_sse = torch.zeros((), dtype=torch.float64)
        for k, batch in enumerate(steps.batches()):
            half_sse += steps.step(batch, schedule((epoch * n_batches + k) / total_steps)).cpu()
            reporter.advance(1)
        train_loss = _finite_mse(2 * float(half_sse) / n_ratings, config)
        scored = validate_at is None or epoch + 1 in validate_at
        valid_loss, valid_rmse = validate() if scored else (None, None)
        seconds = time.perf_counter() - start
        record = EpochRecord(first_epoch + epoch, train_loss, valid_loss, valid_rmse, seconds)
        records.append(record)
        reporter.epoch_done(record)
        if on_record is not None:
            on_record(record)
        monitored = valid_loss if valid_loss is not None else train_loss
        if monitored < best_loss:
            best_loss, stale, best_epoch = monitored, 0, record.epoch
            if config.keep_best and valid_loss is not None:
                best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if config.early_stopping is not None and stale >= config.early_stopping:
                break
    restored = best_state is not None and records[-1].epoch != best_epoch
    if restored and best_state is not None:
        model.load_state_dict(best_state)
    return LoopResult(records, best_epoch, restored)


def _finite_mse(mse: float, config: TrainConfig) -> float:
    if not np.isfinite(mse):
        raise TrainingDivergedError(
            f"training loss became {mse} (lr={config.lr:g}, optimizer={config.optimizer}); "
            "lower the learning rate (lr_max) or raise weight decay"
        )
    return mse


def sweep_rates(
    steps: Steps, model: nn.Module, *, start_lr: float, end_lr: float, num_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Losses (MSE per batch) of steps at rates growing from ``start_lr`` to ``end_lr``.

    ``steps`` must have a peak rate of 1, so a step's multiplier is its rate. Stops
    early once the loss exceeds four times its minimum (the rate is then clearly too
    high) or is not finite.
    """
    lrs: list[float] = []
    losses: list[float] = []
    model.train()
    while len(lrs) < num_steps:
        for batch in steps.batches():
            lr = exponential_sweep(len(lrs) / max(1, num_steps - 1), start_lr, end_lr)
            loss = 2 * float(steps.step(batch, lr)) / steps.size(batch)
            lrs.append(lr)
            losses.append(loss)
            if len(lrs) >= num_steps or not np.isfinite(loss) or loss > 4 * min(losses):
                return np.asarray(lrs), np.asarray(losses)
    return np.asarray(lrs), np.asarray(losses)
