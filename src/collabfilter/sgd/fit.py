"""Fitting a module by sgd epochs: the fit of every family trained by gradient steps.

The family says how a step is computed (its :class:`~collabfilter.sgd.steps.StepsFactory`);
everything else is the same for all of them: seeded dropout, the epoch order, the loop
with its table, and, inside a ``torch.distributed`` job, this rank's shard of the
ratings with the ranks' changes summed after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Container

import torch

from collabfilter import distributed
from collabfilter.config import RunOptions
from collabfilter.data import Ratings
from collabfilter.data.tensors import RatingTensors
from collabfilter.progress import EpochRecord, EpochReporter
from collabfilter.runtime import seeded
from collabfilter.sgd.config import TrainConfig
from collabfilter.sgd.loop import LoopResult, Validate, run_epochs
from collabfilter.sgd.steps import RowTrained, Steps, StepsFactory
from collabfilter.sgd.synced import SyncedSteps


def fit_sgd(
    module: RowTrained,
    train: Ratings,
    data: RatingTensors,
    config: TrainConfig,
    options: RunOptions,
    *,
    steps: StepsFactory,
    validate: Validate,
    first_epoch: int = 1,
    on_record: Callable[[EpochRecord], None] | None = None,
    validate_at: Container[int] | None = None,
) -> LoopResult:
    """Train ``module`` for ``config.epochs`` epochs (:func:`~collabfilter.sgd.loop.run_epochs`).

    Args:
        module: the module (trained in place).
        train: the training ratings (a rank's shard is taken from them).
        data: the same ratings as tensors on the training device.
        config: the recipe.
        options: seed, progress, step form, epoch order.
        steps: the family's steps factory.
        validate: the validation ``(loss, rmse)`` of the module as it stands.
        first_epoch: the number of this run's first epoch in the table.
        on_record: called with each epoch's record.
        validate_at: validate only after these epochs of this run (None: all).
    """
    with seeded(options.seed, data.device):  # dropout masks
        runner, n_batches = make_runner(module, train, data, config, options, steps)
        with EpochReporter(config.epochs, n_batches, options.progress) as reporter:
            result = run_epochs(
                runner,
                module,
                config,
                n_ratings=len(data),
                n_batches=n_batches,
                validate=validate,
                reporter=reporter,
                first_epoch=first_epoch,
                on_record=on_record,
                validate_at=validate_at,
            )
            if result.restored:
                reporter.note(
                    f"kept the weights of epoch {result.best_epoch}, chosen on the "
                    "validation ratings (keep_best): its validation figures are optimistic"
                )
    return result


def make_runner(
    module: RowTrained,
    train: Ratings,
    data: RatingTensors,
    config: TrainConfig,
    options: RunOptions,
    steps: StepsFactory,
) -> tuple[Steps, int]:
    """The steps of ``config`` and their batches per epoch: on all the training ratings,
    or, in a torch.distributed job, on this rank's shard with the ranks' changes summed
    after every step."""
    group = distributed.current()
    if group is None:
        generator = torch.Generator().manual_seed(options.seed)
        runner = steps(module, data, config, options, generator)
        return runner, data.n_batches(runner.batch_size)
    rows = distributed.shard_rows(len(data), group, options.seed)
    shard = RatingTensors(train.subset(rows), data.device)
    generator = torch.Generator().manual_seed(options.seed + group.rank)
    local = steps(module, shard, config, options, generator, shard_of=(data, group.world_size))
    n_batches = distributed.agree_on_batches(shard.n_batches(local.batch_size))
    return SyncedSteps(local, module, n_batches), n_batches
