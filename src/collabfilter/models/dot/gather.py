"""Per-rating SGD for the dot models with gradients in closed form: what the closed
forms share, and the form written as gathers and ``index_add_``.

For a dot model trained with plain ``sgd`` (the default recipe) every step is a handful
of whole-batch tensor operations: gather the factor rows, form the logits and the
gradient of the squared error by the dot formula (:mod:`~collabfilter.models.dot.formula`),
write the per-rating weight decay directly (no autograd graph), and add the updates
into the tables with ``index_add_``. Per-rating constants (decay weights, rates,
activity values) sit in one matrix, gathered once per batch; at millions of ratings
epochs visit them in permuted blocks (:mod:`collabfilter.sgd.order`), so that gathering
them reads runs of memory instead of a cache miss per rating. This form serves large
tables and devices other than the CPU; the tests check that every form leaves the same
weights as autograd.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.models.dot.formula import TORCH
from collabfilter.sgd.optim import RowOptimizer
from collabfilter.sgd.steps import StepPlan

if TYPE_CHECKING:
    from collabfilter.models.dot.module import DotProductBias

BatchT = TypeVar("BatchT")


class DotSGD(ABC, Generic[BatchT]):
    """Closed-form per-rating SGD steps for a dot model: what the closed forms share.
    A subclass cuts an epoch into batches and takes one step per batch.

    Args:
        model: the dot model.
        data: the training tensors.
        plan: batch size, per-row decays and rates, epoch order.
        lr: the peak rate; :meth:`step` takes a multiple of it.
        dense_lr: Adam's step size for the activity prior's two weights.
        betas: Adam's moment decay rates.
    """

    def __init__(
        self,
        model: DotProductBias,
        data: RatingTensors,
        plan: StepPlan,
        *,
        lr: float,
        dense_lr: float,
        betas: tuple[float, float],
    ) -> None:
        self.model = model
        self.data = data
        self.dense = RowOptimizer(
            [(name, p) for name, p in model.named_parameters() if name not in plan.tables],
            kind="sgd", lr=lr, betas=betas, dense_lr=dense_lr,
        )  # fmt: skip
        self.side_rate = plan.rates
        self.lr = lr
        self.batch_size = plan.batch_size
        self.generator = plan.generator
        self.order = plan.order
        self.users, self.items, rating = self.order.stored(data)
        sizes = {"user": data.n_users, "item": data.n_items}
        # each table's per-rating decay coefficient times the row's rate (both scale the
        # same step); zero for a table without decay
        self.shrink = {}
        for name, (side, _) in model.row_tables().items():
            decay = plan.decays.get(name, torch.zeros(sizes[side], device=data.device))
            rate = plan.rates.get(side)
            self.shrink[name] = decay if rate is None else decay * rate
        self.low, self.span = model.low_span
        self._prepare(rating)

    def _prepare(self, rating: Tensor) -> None:
        """Set up what the subclass's steps need from the ratings in storage order
        (called once, at construction)."""

    @torch.no_grad()
    def step(self, batch: BatchT, multiplier: float) -> Tensor:
        """One step at ``multiplier`` times the peak rate; returns half the SSE."""
        return self._step(batch, self.lr * multiplier, multiplier)

    @abstractmethod
    def batches(self) -> Iterator[BatchT]:
        """One epoch's batches, in a fresh random order."""

    @abstractmethod
    def size(self, batch: BatchT) -> int:
        """Ratings in a batch."""

    @abstractmethod
    def _step(self, batch: BatchT, lr: float, multiplier: float) -> Tensor:
        """One step at the rate ``lr``; returns half the summed squared error."""


class _Gathered(NamedTuple):
    users: Tensor  # int64
    items: Tensor
    columns: dict[str, Tensor]  # the per-rating constants by name


class GatherDotSGD(DotSGD[_Gathered]):
    """The step as gathers, whole-batch tensor operations and ``index_add_``."""

    def _prepare(self, rating: Tensor) -> None:
        self.names, self.constants = self._constants(rating)
        factors = self.model.user_factors
        self.buffers = [factors.new_empty(self.batch_size, factors.shape[1]) for _ in range(3)]

    def _constants(self, rating: Tensor) -> tuple[list[str], Tensor]:
        """Per-rating constants in storage order, as one (ratings x c) matrix: a
        batch's constants are then a single ``index_select``."""
        model = self.model
        names, columns = [], []
        index = {"user": self.users, "item": self.items}
        for name, (side, _) in model.row_tables().items():
            names.append(name)
            columns.append(self.shrink[name].index_select(0, index[side]))
        for side, rate in self.side_rate.items():
            names.append(f"{side}_rate")
            columns.append(rate.index_select(0, index[side]))
        if model.activity_prior:
            names += ["user_activity", "item_activity"]
            columns += [
                model.user_activity.index_select(0, self.users),
                model.item_activity.index_select(0, self.items),
            ]
        names.append("rating")
        columns.append(rating)
        return names, torch.stack(columns, dim=1)

    def batches(self) -> Iterator[_Gathered]:
        """One epoch's batches, in a fresh random order."""
        order = self.order.draw(self.generator).to(self.data.device)
        batch_size = self.batch_size
        for start in range(0, len(order), batch_size):
            # gathered per batch: the extra memory is one batch, whatever the data size
            rows = order[start : start + batch_size]
            block = self.constants.index_select(0, rows)
            columns = dict(zip(self.names, block.unbind(1), strict=True))
            # int64: a 2-D index_add_ with int32 indices takes a slower path in torch
            users = self.users.index_select(0, rows).long()
            items = self.items.index_select(0, rows).long()
            yield _Gathered(users, items, columns)

    def size(self, batch: _Gathered) -> int:
        """Ratings in a batch."""
        return int(batch.users.shape[0])

    def _step(self, gathered: _Gathered, lr: float, multiplier: float) -> Tensor:
        model, (users, items, batch) = self.model, gathered
        # Written into buffers reused across steps: fresh (batch x factors) tensors
        # cost page faults on every step.
        size = users.shape[0]
        user_rows = torch.index_select(model.user_factors, 0, users, out=self.buffers[0][:size])
        item_rows = torch.index_select(model.item_factors, 0, items, out=self.buffers[1][:size])
        x = torch.mul(user_rows, item_rows, out=self.buffers[2][:size]).sum(1)
        if model.biased:
            user_bias = model.user_bias.index_select(0, users)
            item_bias = model.item_bias.index_select(0, items)
            user_effect, item_effect = user_bias, item_bias
            if model.activity_prior:
                beta_user, beta_item = model.activity_weights()
                user_effect = TORCH.effect(user_bias, beta_user, batch["user_activity"])
                item_effect = TORCH.effect(item_bias, beta_item, batch["item_activity"])
            x = TORCH.logit(x, user_effect, item_effect, model.offset)
        error, step = self.error_and_step(x, batch["rating"], lr)
        user_step = step.mul(batch["user_rate"]) if "user_rate" in batch else step
        item_step = step.mul(batch["item_rate"]) if "item_rate" in batch else step
        # the item update reads the user rows before they turn into the user update
        item_update = torch.mul(user_rows, item_step.unsqueeze(1), out=self.buffers[2][:size])
        item_update.addcmul_(item_rows, batch["item_factors"].unsqueeze(1), value=-lr)
        user_rows.mul_(batch["user_factors"].mul(-lr).unsqueeze(1))
        user_rows.addcmul_(item_rows, user_step.unsqueeze(1))
        model.item_factors.index_add_(0, items, item_update)
        model.user_factors.index_add_(0, users, user_rows)
        if model.biased:
            model.user_bias.index_add_(
                0, users, torch.addcmul(user_step, batch["user_bias"], user_bias, value=-lr)
            )
            model.item_bias.index_add_(
                0, items, torch.addcmul(item_step, batch["item_bias"], item_bias, value=-lr)
            )
            if model.activity_prior:
                self.step_prior(step, batch["user_activity"], batch["item_activity"], lr,
                                multiplier)  # fmt: skip
        return torch.dot(error, error) * 0.5

    def error_and_step(self, x: Tensor, rating: Tensor, lr: float) -> tuple[Tensor, Tensor]:
        """Each rating's error (prediction - rating) and step ``-lr * d(err^2 / 2)/dx``
        from the logits ``x``, by the dot formula."""
        error = TORCH.rating(x, self.low, self.span) - rating
        return error, TORCH.gradient(x, error, self.span).mul_(-lr)

    def step_prior(
        self, steps: Tensor, user_activity: Tensor, item_activity: Tensor, lr: float,
        multiplier: float,
    ) -> None:  # fmt: skip
        """Adam's step of the activity prior's two weights from the ratings' steps and
        their activity values: ``d loss / d beta = sum(dL/dx * activity) = -sum(step *
        activity) / lr``."""
        grads = [
            float(torch.dot(steps, user_activity)) / -lr,
            float(torch.dot(steps, item_activity)) / -lr,
        ]
        self.dense.step_scalars(self.model.activity_weight, grads, multiplier)
