"""The sgd step, in the form chosen for the model and the data.

Every form offers the same two calls, so the training loop and the learning-rate
finder drive them alike: :meth:`Steps.batches` gives one epoch's batches in a fresh
random order (:class:`~collabfilter.train.shuffle.EpochOrder`, the same for every form),
and :meth:`Steps.step` takes one step at a multiple of the peak rate and returns half
the batch's summed squared error.

- ``autograd``: any model, any optimizer; gradients from autograd as sparse rows,
  applied by :class:`~collabfilter.train.optim.RowOptimizer`.
- ``gather``: dot models under plain sgd, gradients in closed form, tables updated
  with gathers and ``index_add_`` (:mod:`collabfilter.train.fused`); about twice as
  fast as autograd, on any device and at any size.
- ``sparse``: the same arithmetic as sparse matrix products
  (:mod:`collabfilter.train.sparse`); faster still when the tables have no more rows
  than a batch has ratings, on the CPU.
- ``compiled``: the same arithmetic as one compiled loop per batch
  (:mod:`collabfilter.train.compiled`, numba, on the CPU); the fastest while a batch's
  buffered updates fit in a core's cache (ml-100k's batches of 2,048 ratings), where the
  forms above spend most of a step on dispatch and temporaries. Beyond that the forms
  above, which use every core, take over.

``benchmarks/bench_accuracy.py`` times the forms side by side. The form is
:attr:`RunOptions.step <collabfilter.config.RunOptions.step>`; ``"auto"`` applies the
rules above, the compiled form first. The tests check that all forms leave the same
weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from collabfilter.config import RunOptions, StepForm, TrainConfig
from collabfilter.data.tensors import Batch, RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.train import compiled, fused, sparse
from collabfilter.train.optim import RowOptimizer
from collabfilter.train.regularization import Tables, row_decays, side_rates
from collabfilter.train.shuffle import EpochOrder

Form = Literal["compiled", "sparse", "gather", "autograd"]


class Steps(Protocol):
    """One form of the sgd step (see the module docstring)."""

    def batches(self) -> Iterator[Any]:
        """One epoch's batches in a fresh random order."""
        ...

    def step(self, batch: Any, multiplier: float) -> Tensor:
        """One step at ``multiplier`` times the peak rate; half the summed squared error."""
        ...

    def size(self, batch: Any) -> int:
        """Ratings in a batch."""
        ...


class AutogradSteps:
    """Forward, backward, and :class:`RowOptimizer` (any model, any optimizer)."""

    def __init__(
        self,
        model: nn.Module,
        data: RatingTensors,
        optimizer: RowOptimizer,
        *,
        batch_size: int,
        order: EpochOrder,
        generator: torch.Generator,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.batch_size, self.order, self.generator = batch_size, order, generator
        self.users, self.items = order.store(data.user_idx), order.store(data.item_idx)
        self.rating = order.store(data.rating)

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


def choose_form(
    model: nn.Module,
    config: TrainConfig,
    data: RatingTensors,
    requested: StepForm,
    batch_size: int | None = None,
) -> Form:
    """The form that trains ``model``: ``requested``, or by the rule of ``"auto"``.

    Raises:
        ConfigError: for a closed form that cannot train this model or optimizer.
    """
    closed = fused.supports(model, config)
    if requested == "auto":
        if not closed:
            return "autograd"
        batch = batch_size or config.batch_for(len(data))
        if compiled.suits(model, data, batch):  # type: ignore[arg-type]
            return "compiled"
        return "sparse" if sparse.suits(data, batch) else "gather"
    if requested != "autograd" and not closed:
        raise ConfigError(
            f"step={requested!r} trains DotProduct/DotProductBias under plain sgd (no "
            f"momentum, no clipping); this is {type(model).__name__} with optimizer="
            f"{config.optimizer!r}: use step='autograd' or 'auto'"
        )
    if requested in ("compiled", "sparse") and data.device.type != "cpu":
        raise ConfigError(f"step={requested!r} runs on the CPU; use 'gather' on other devices")
    return requested


def make_steps(
    model: nn.Module,
    data: RatingTensors,
    config: TrainConfig,
    options: RunOptions,
    generator: torch.Generator,
    *,
    shard_of: tuple[RatingTensors, int] | None = None,
) -> Steps:
    """The steps that train ``model`` on ``data`` with ``config`` (see the module).

    ``shard_of=(whole, parts)`` says ``data`` is one of ``parts`` shards of ``whole``
    (data-parallel training): decays and rates then follow ``whole``'s counts and batch
    size, and this shard's batches are that batch size divided by ``parts``.
    """
    whole, parts = shard_of if shard_of is not None else (data, 1)
    crowd_batch = config.batch_for(len(whole))
    batch_size = max(1, crowd_batch // parts)
    form = choose_form(model, config, data, options.step, batch_size)
    tables: Tables = getattr(model, "ROW_TABLES", {})
    counts = {"user": whole.user_counts(), "item": whole.item_counts()}
    decays = row_decays(tables, config, counts)
    rates = side_rates(config, counts, crowd_batch)
    order = EpochOrder(len(data), batch_size, generator, options.shuffle_block)
    if form == "autograd":
        optimizer = RowOptimizer(
            model.named_parameters(),
            kind=config.optimizer,
            lr=config.lr,
            row_decay=decays,
            row_rate={name: rates[side] for name, (side, _) in tables.items() if side in rates},
            dense_decay=config.weight_decay if config.optimizer != "sgd" else 0.0,
            momentum=config.momentum,
            betas=config.betas,
            dense_lr=config.dense_lr,
            grad_clip=config.grad_clip,
        )
        return AutogradSteps(
            model, data, optimizer, batch_size=batch_size, order=order, generator=generator
        )
    dense = RowOptimizer(
        [(name, p) for name, p in model.named_parameters() if name not in tables],
        kind="sgd",
        lr=config.lr,
        betas=config.betas,
        dense_lr=config.dense_lr,
    )
    runners: dict[str, type[fused.DotSGD[Any]]] = {
        "compiled": compiled.CompiledDotSGD,
        "sparse": sparse.SparseDotSGD,
    }
    runner = runners.get(form, fused.FusedDotSGD)
    return runner(
        model,  # type: ignore[arg-type]
        data,
        decays,
        rates,
        dense,
        lr=config.lr,
        batch_size=batch_size,
        order=order,
        generator=generator,
    )
