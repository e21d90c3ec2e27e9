"""The sgd step as the loop drives it, and its generic form (autograd).

Every form of the step offers the same calls, so the training loop and the
learning-rate finder drive them alike: :meth:`Steps.batches` gives one epoch's batches
in a fresh random order (:class:`~collabfilter.sgd.order.EpochOrder`, the same for every
form), and :meth:`Steps.step` takes one step at a multiple of the peak rate and returns
half the batch's summed squared error. :class:`AutogradSteps` trains any module of a
family with row tables, under any optimizer; a family may add closed forms of its own
(the dot family's, in :mod:`collabfilter.models.dot.steps`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from collabfilter.config import RunOptions
from collabfilter.data.tensors import Batch, RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.sgd.config import TrainConfig
from collabfilter.sgd.decay import Tables, row_decays, side_rates
from collabfilter.sgd.optim import RowOptimizer
from collabfilter.sgd.order import EpochOrder


class RowTrained(nn.Module):
    """Base of the modules trained by sgd: they name their row tables, the parameters
    indexed by user or item that are updated row-wise and decayed per rating."""

    def row_tables(self) -> Tables:
        """Parameter name -> (``"user"``/``"item"``, ``"factors"``/``"bias"``)."""
        raise NotImplementedError


class Steps(Protocol):
    """One form of the sgd step (see the module docstring)."""

    batch_size: int
    """Ratings in a full batch (this rank's share in data-parallel training)."""

    def batches(self) -> Iterator[Any]:
        """One epoch's batches in a fresh random order."""
        ...

    def step(self, batch: Any, multiplier: float) -> Tensor:
        """One step at ``multiplier`` times the peak rate; half the summed squared error."""
        ...

    def size(self, batch: Any) -> int:
        """Ratings in a batch."""
        ...


class StepsFactory(Protocol):
    """Builds the steps that train ``module`` on ``data`` (a family's choice of form).

    ``shard_of=(whole, parts)`` says ``data`` is one of ``parts`` shards of ``whole``
    (data-parallel training): decays and rates then follow ``whole``'s counts and batch
    size, and this shard's batches are that batch size divided by ``parts``."""

    def __call__(
        self,
        module: RowTrained,
        data: RatingTensors,
        config: TrainConfig,
        options: RunOptions,
        generator: torch.Generator,
        *,
        shard_of: tuple[RatingTensors, int] | None = None,
    ) -> Steps: ...


class StepPlan:
    """What every form derives alike from a module, the data and a config: the batch
    size, the per-row decays and rates of the module's row tables, and the epoch order.

    Args:
        tables: the module's row tables (parameter name -> side, role).
        data: the training tensors (this shard's, in data-parallel training).
        config: decays, rates, batch size.
        options: the epoch order's blocking.
        generator: draws the epochs' orders.
        shard_of: see :class:`StepsFactory`.
    """

    def __init__(
        self,
        tables: Tables,
        data: RatingTensors,
        config: TrainConfig,
        options: RunOptions,
        generator: torch.Generator,
        shard_of: tuple[RatingTensors, int] | None = None,
    ) -> None:
        whole, parts = shard_of if shard_of is not None else (data, 1)
        self.crowd_batch = config.batch_for(len(whole))
        self.batch_size = max(1, self.crowd_batch // parts)
        self.tables = tables
        counts = {"user": whole.user_counts(), "item": whole.item_counts()}
        self.decays = row_decays(tables, config, counts)
        self.rates = side_rates(config, counts, self.crowd_batch)
        self.order = EpochOrder(len(data), self.batch_size, generator, options.shuffle_block)
        self.generator = generator

    def row_rates(self) -> dict[str, Tensor]:
        """Per-row rate multipliers by parameter name (tables of a side with rates)."""
        return {
            name: self.rates[side] for name, (side, _) in self.tables.items() if side in self.rates
        }


class AutogradSteps:
    """Forward, backward, and :class:`RowOptimizer` (any module, any optimizer)."""

    def __init__(self, model: RowTrained, data: RatingTensors, plan: StepPlan, config: TrainConfig):
        self.model = model
        self.optimizer = RowOptimizer(
            model.named_parameters(),
            kind=config.optimizer,
            lr=config.lr,
            row_decay=plan.decays,
            row_rate=plan.row_rates(),
            dense_decay=config.weight_decay if config.optimizer != "sgd" else 0.0,
            momentum=config.momentum,
            betas=config.betas,
            dense_lr=config.dense_lr,
            grad_clip=config.grad_clip,
        )
        self.batch_size, self.order, self.generator = plan.batch_size, plan.order, plan.generator
        self.users, self.items, self.rating = plan.order.stored(data)

    def batches(self) -> Iterator[Batch]:
        order = self.order.draw(self.generator).to(self.rating.device)
        for start in range(0, len(order), self.batch_size):
            # gathered per batch: the extra memory is one batch, whatever the data size
            rows = order[start : start + self.batch_size]
            yield Batch(
                self.users.index_select(0, rows).long(),
                self.items.index_select(0, rows).long(),
                self.rating.index_select(0, rows),
            )

    def size(self, batch: Batch) -> int:
        return len(batch)

    def step(self, batch: Batch, multiplier: float) -> Tensor:
        loss = squared_error(self.model, batch)
        loss.backward()  # type: ignore[no-untyped-call]
        self.optimizer.step(multiplier)
        return loss.detach()


def squared_error(model: nn.Module, batch: Batch) -> Tensor:
    """Half the summed squared error: each rating's gradient is its own, as in
    per-rating SGD (Funk SVD), whatever the batch size; Adam ignores the scale."""
    prediction = model(batch.user_idx, batch.item_idx)
    return 0.5 * torch.sum((prediction - batch.rating) ** 2)


def autograd_steps(
    module: RowTrained,
    data: RatingTensors,
    config: TrainConfig,
    options: RunOptions,
    generator: torch.Generator,
    *,
    shard_of: tuple[RatingTensors, int] | None = None,
) -> Steps:
    """The generic :class:`StepsFactory`: autograd steps over the module's row tables.

    Raises:
        ConfigError: for a closed step form asked of a family that has none.
    """
    if options.step not in ("auto", "autograd"):
        raise ConfigError(
            f"step={options.step!r} is a form of the dot family's step; "
            f"{type(module).__name__} trains by autograd: use step='auto' or 'autograd'"
        )
    plan = StepPlan(module.row_tables(), data, config, options, generator, shard_of)
    return AutogradSteps(module, data, plan, config)
