"""The fast path: per-rating SGD for the dot-product models, gradients in closed form.

For ``DotProduct`` and ``DotProductBias`` trained with plain ``sgd`` (the default
recipe), every step is a handful of whole-batch tensor operations: gather the factor
rows, form the predictions, write the gradients of the squared error and of the
per-rating weight decay directly (no autograd graph), and add them into the tables
with ``index_add_``. Per-rating constants (decay weights, activity values) sit in one
matrix, gathered once per batch; at millions of ratings, epochs visit them in permuted
blocks (:mod:`collabfilter.train.shuffle`), so that gathering them reads runs of
memory instead of a cache miss per rating. This path serves large tables and
devices other than the CPU; on the CPU, small batches take the same arithmetic as one
compiled loop (:mod:`collabfilter.train.compiled`) and small tables as sparse matrix
products (:mod:`collabfilter.train.sparse`). The generic autograd path does the same
arithmetic about twice as slowly; the tests check that all forms leave the same
weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, NamedTuple, TypeVar

import torch
from torch import Tensor, nn

from collabfilter.config import TrainConfig
from collabfilter.data.tensors import RatingTensors
from collabfilter.models import DotProduct, DotProductBias
from collabfilter.train.optim import RowOptimizer
from collabfilter.train.shuffle import EpochOrder

BatchT = TypeVar("BatchT")


def supports(model: nn.Module, config: TrainConfig) -> bool:
    """Whether the fused path can train ``model`` with ``config`` exactly."""
    return (
        type(model) in (DotProduct, DotProductBias)
        and config.optimizer == "sgd"
        and config.momentum == 0.0
        and config.grad_clip is None
    )


class DotSGD(Generic[BatchT]):
    """Closed-form per-rating SGD steps for a dot-product model: what the closed forms
    of the step share. A subclass cuts an epoch into batches and takes one step per batch.

    Args:
        model: a ``DotProduct`` or ``DotProductBias``.
        data: the training tensors.
        row_decay: per-row decay coefficients by parameter name (as for
            :class:`RowOptimizer`); a table without one is not decayed.
        side_rate: per-row rate multipliers of the ``"user"`` and ``"item"`` tables
            (factors and bias alike); empty for one rate everywhere.
        dense: the optimizer of the model's dense parameters (the activity prior).
        lr: the peak rate; :meth:`step` takes a multiple of it.
        batch_size: ratings per step.
        order: the epochs' order of the ratings.
        generator: draws the epochs' orders.
    """

    def __init__(
        self,
        model: DotProduct | DotProductBias,
        data: RatingTensors,
        row_decay: dict[str, Tensor],
        side_rate: dict[str, Tensor],
        dense: RowOptimizer,
        *,
        lr: float,
        batch_size: int,
        order: EpochOrder,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.data = data
        self.dense = dense
        self.side_rate = side_rate
        self.lr = lr
        self.batch_size = batch_size
        self.generator = generator
        self.order = order
        # the per-rating indices in the order's storage order (the ratings are only
        # needed to set up the steps: see _prepare)
        self.users, self.items = self.order.store(data.user_idx), self.order.store(data.item_idx)
        sizes = {"user": data.n_users, "item": data.n_items}
        # each table's per-rating decay coefficient times the row's rate (both scale the
        # same step); zero for a table without decay
        self.shrink = {}
        for name, (side, _) in type(model).ROW_TABLES.items():
            decay = row_decay.get(name, torch.zeros(sizes[side], device=data.device))
            rate = side_rate.get(side)
            self.shrink[name] = decay if rate is None else decay * rate
        low = 0.0 if model.y_range is None else model.y_range[0]
        self._prepare(self.order.store(low - data.rating))

    def _prepare(self, target: Tensor) -> None:
        """Set up what the subclass's steps need, from each rating's target term in
        storage order (called once, at construction): ``low - rating`` under a sigmoid
        range, else ``-rating``, so that the error is the output (the sigmoid times the
        range's span under a range) plus this term."""

    def batches(self) -> Iterator[BatchT]:
        """One epoch's batches, in a fresh random order."""
        return self._batches(self.order.draw(self.generator).to(self.data.device))

    @torch.no_grad()
    def step(self, batch: BatchT, multiplier: float) -> Tensor:
        """One step at ``multiplier`` times the peak rate; returns half the SSE."""
        return self._step(batch, self.lr * multiplier, multiplier)

    def size(self, batch: BatchT) -> int:
        """Ratings in a batch."""
        return int(batch.users.shape[0])  # type: ignore[attr-defined]

    def _batches(self, order: Tensor) -> Iterator[BatchT]:
        """The epoch's batches, from its stored positions in visiting order."""
        raise NotImplementedError

    def _step(self, batch: BatchT, lr: float, multiplier: float) -> Tensor:
        raise NotImplementedError


class _Gathered(NamedTuple):
    users: Tensor  # int64
    items: Tensor
    columns: dict[str, Tensor]  # the per-rating constants by name


class FusedDotSGD(DotSGD[_Gathered]):
    """The step as gathers, whole-batch tensor operations and ``index_add_``."""

    def _prepare(self, target: Tensor) -> None:
        self.names, self.constants = self._constants(target)
        factors = self.model.user_factors
        self.buffers = [factors.new_empty(self.batch_size, factors.shape[1]) for _ in range(3)]

    def _constants(self, target: Tensor) -> tuple[list[str], Tensor]:
        """Per-rating constants in storage order, as one (ratings x c) matrix: a
        batch's constants are then a single ``index_select``."""
        model = self.model
        names, columns = [], []
        index = {"user": self.users, "item": self.items}
        for name, (side, _) in type(model).ROW_TABLES.items():
            names.append(name)
            columns.append(self.shrink[name].index_select(0, index[side]))
        for side, rate in self.side_rate.items():
            names.append(f"{side}_rate")
            columns.append(rate.index_select(0, index[side]))
        if isinstance(model, DotProductBias) and model.activity_prior:
            names += ["user_activity", "item_activity"]
            columns += [
                model.user_activity.index_select(0, self.users),
                model.item_activity.index_select(0, self.items),
            ]
        names.append("target")
        columns.append(target)
        return names, torch.stack(columns, dim=1)

    def _batches(self, order: Tensor) -> Iterator[_Gathered]:
        batch_size = self.batch_size
        for start in range(0, len(order), batch_size):
            # gathered per batch: the extra memory is one batch, whatever the data size
            rows = order[start : start + batch_size]
            block = self.constants.index_select(0, rows)
            columns = dict(zip(self.names, block.unbind(1), strict=True))
            # int64: a 2-D index_add_ with int32 indices is 4-5x slower in torch 2.13
            users = self.users.index_select(0, rows).long()
            items = self.items.index_select(0, rows).long()
            yield _Gathered(users, items, columns)

    def _step(self, gathered: _Gathered, lr: float, multiplier: float) -> Tensor:
        model, (users, items, batch) = self.model, gathered
        # Written into buffers reused across steps: fresh (batch x factors) tensors
        # cost page faults that make a gather three times slower on CPU.
        size = users.shape[0]
        user_rows = torch.index_select(model.user_factors, 0, users, out=self.buffers[0][:size])
        item_rows = torch.index_select(model.item_factors, 0, items, out=self.buffers[1][:size])
        x = torch.mul(user_rows, item_rows, out=self.buffers[2][:size]).sum(1)
        if isinstance(model, DotProductBias):
            user_bias = model.user_bias.index_select(0, users)
            item_bias = model.item_bias.index_select(0, items)
            x.add_(user_bias).add_(item_bias).add_(model.offset)
            if model.activity_prior:
                beta_user, beta_item = model.activity_weight.tolist()
                x.add_(batch["user_activity"], alpha=beta_user)
                x.add_(batch["item_activity"], alpha=beta_item)
        error, step = error_and_step(x, batch["target"], model.y_range, lr)
        user_step = step.mul(batch["user_rate"]) if "user_rate" in batch else step
        item_step = step.mul(batch["item_rate"]) if "item_rate" in batch else step
        # the item update reads the user rows before they turn into the user update
        item_update = torch.mul(user_rows, item_step.unsqueeze(1), out=self.buffers[2][:size])
        item_update.addcmul_(item_rows, batch["item_factors"].unsqueeze(1), value=-lr)
        user_rows.mul_(batch["user_factors"].mul(-lr).unsqueeze(1))
        user_rows.addcmul_(item_rows, user_step.unsqueeze(1))
        model.item_factors.index_add_(0, items, item_update)
        model.user_factors.index_add_(0, users, user_rows)
        if isinstance(model, DotProductBias):
            model.user_bias.index_add_(
                0, users, torch.addcmul(user_step, batch["user_bias"], user_bias, value=-lr)
            )
            model.item_bias.index_add_(
                0, items, torch.addcmul(item_step, batch["item_bias"], item_bias, value=-lr)
            )
            if model.activity_prior:
                # d loss / d beta = sum(dL/dx * activity) = -sum(step * activity) / lr
                # (two dots: a matrix product with the strided columns is 3x slower)
                grad = [torch.dot(step, batch[f"{side}_activity"]) for side in ("user", "item")]
                model.activity_weight.grad = torch.stack(grad).div_(-lr)
                self.dense.step(multiplier)
        return torch.dot(error, error) * 0.5


def error_and_step(
    x: Tensor, target: Tensor, y_range: tuple[float, float] | None, lr: float
) -> tuple[Tensor, Tensor]:
    """Each rating's error (prediction - rating) and step ``-lr * d(err^2 / 2)/dx``.

    ``x`` is the model's output before the sigmoid range (overwritten when there is
    none); ``target`` is ``low - rating`` under a range, else ``-rating``.
    """
    if y_range is None:
        error = x.add_(target)
        return error, error.mul(-lr)
    low, high = y_range
    squashed = torch.sigmoid(x)
    error = torch.add(target, squashed, alpha=high - low)
    slope = torch.addcmul(squashed, squashed, squashed, value=-1.0)  # s(1 - s)
    return error, slope.mul_(error).mul_(-lr * (high - low))
