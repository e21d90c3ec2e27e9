"""The sgd step of the dot models as one compiled loop per batch (numba), on the CPU.

The gather form (:mod:`collabfilter.train.fused`) writes each step as about twenty
whole-batch tensor operations, each streaming a (batch x factors) temporary through
memory and paying torch's dispatch; at the default recipe's batches (about a fortieth
of the data: 2,048 ratings on ml-100k) that is most of a step's time. Here the same
arithmetic runs per rating inside one compiled function: a first pass reads the
tables as they were before the step (prediction, error, each rating's updates into
per-batch buffers), a second adds the updates in. It is the gather form's arithmetic in
another summation order (and a rating's logit and error in float64); the tests check
that both leave the same weights, and ``benchmarks/bench_accuracy.py`` times the forms
side by side.

Per-row quantities (decay and rate of each row, activity values) are read from small
per-row arrays instead of per-rating columns, and every epoch gathers the ratings into
visiting order once, so that a step reads its ratings as one run of memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.models import DotProduct, DotProductBias
from collabfilter.train.fused import DotSGD

MAX_BUFFERED = 1 << 18
"""Most ratings x factors a step buffers per side (1 MiB of float32): beyond a core's
cache, the sparse products or the gathers (which use every core) are faster."""

# Reassociation lets the compiler vectorise the dot products; the flags that assume no
# NaN or infinity are left out, so that a diverging run still shows a non-finite loss.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def suits(model: DotProduct | DotProductBias, data: RatingTensors, batch_size: int) -> bool:
    """Whether the compiled form pays and applies: on the CPU, float32 tables, and
    batches whose buffered updates stay in cache (:data:`MAX_BUFFERED`)."""
    factors = model.user_factors
    return (
        data.device.type == "cpu"
        and factors.dtype == torch.float32
        and batch_size * factors.shape[1] <= MAX_BUFFERED
    )


@cache
def _compiled_step() -> Callable[..., tuple[float, float, float]]:
    """The step compiled by numba, on first use (and cached on disk by numba, so
    later processes load it instead of compiling); importing numba is deferred to here
    so that the package's other entry points do not pay for it."""
    import numba

    compiled: Any = numba.njit(cache=True, fastmath=_FASTMATH)(_dot_sgd_step)
    return compiled  # type: ignore[no-any-return]


class _Batch(NamedTuple):
    """Ratings in visiting order: an epoch's, or a batch's slice of them."""

    users: np.ndarray  # int64
    items: np.ndarray
    target: np.ndarray  # float32: low - rating under a range, else -rating


class CompiledDotSGD(DotSGD[_Batch]):
    """The step as one compiled pass over the batch's ratings (see the module).

    Raises:
        ConfigError: for tables that are not float32 on the CPU, or have fewer rows
            than the data's users or items (the compiled loop does not check indices).
    """

    def _prepare(self, target: Tensor) -> None:
        model, data = self.model, self.data
        size = {"user": data.n_users, "item": data.n_items}
        for name, (side, _) in type(model).ROW_TABLES.items():
            table: Tensor = getattr(model, name)
            if (
                table.shape[0] < size[side]
                or table.dtype != torch.float32
                or table.device.type != "cpu"
            ):
                raise ConfigError(
                    f"step='compiled' needs float32 CPU tables with a row per {side}: "
                    f"{name} is {table.dtype} {tuple(table.shape)} on {table.device} "
                    f"for {size[side]:,} {side}s; use step='gather'"
                )
        self.target = target
        self.span = 0.0 if model.y_range is None else model.y_range[1] - model.y_range[0]
        self.prior = isinstance(model, DotProductBias) and model.activity_prior

        def per_row(values: Tensor | None, side: str, fill: float) -> np.ndarray:
            if values is None:
                return np.full(size[side], fill, np.float32)
            return values.detach().to(torch.float32).cpu().numpy().copy()

        shrink = self.shrink
        self.shrink_rows = [
            per_row(shrink.get("user_factors"), "user", 0.0),
            per_row(shrink.get("item_factors"), "item", 0.0),
            per_row(shrink.get("user_bias"), "user", 0.0),
            per_row(shrink.get("item_bias"), "item", 0.0),
        ]
        self.rate_rows = [
            per_row(self.side_rate.get("user"), "user", 1.0),
            per_row(self.side_rate.get("item"), "item", 1.0),
        ]
        self.activity_rows = [
            per_row(getattr(model, "user_activity", None) if self.prior else None, "user", 0.0),
            per_row(getattr(model, "item_activity", None) if self.prior else None, "item", 0.0),
        ]
        self.factor_buffers = np.empty(
            (2, self.batch_size, model.user_factors.shape[1]), np.float32
        )
        self.scalar_buffers = np.empty((2, self.batch_size), np.float32)
        self.no_bias = np.zeros(0, np.float32)

    def _batches(self, order: Tensor) -> Iterator[_Batch]:
        epoch = _Batch(
            self.users.index_select(0, order).long().numpy(),
            self.items.index_select(0, order).long().numpy(),
            self.target.index_select(0, order).numpy(),
        )
        for start in range(0, len(order), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield _Batch(epoch.users[part], epoch.items[part], epoch.target[part])

    def _step(self, batch: _Batch, lr: float, multiplier: float) -> Tensor:
        model = self.model
        user_bias = item_bias = self.no_bias
        offset, beta = 0.0, [0.0, 0.0]
        if isinstance(model, DotProductBias):
            user_bias = model.user_bias.detach().numpy()
            item_bias = model.item_bias.detach().numpy()
            offset = float(model.offset)
            if self.prior:
                beta = model.activity_weight.tolist()
        half_sse, user_grad, item_grad = _compiled_step()(
            batch.users,
            batch.items,
            batch.target,
            model.user_factors.detach().numpy(),
            model.item_factors.detach().numpy(),
            user_bias,
            item_bias,
            offset,
            beta[0],
            beta[1],
            *self.activity_rows,
            *self.shrink_rows,
            *self.rate_rows,
            lr,
            self.span,
            self.factor_buffers,
            self.scalar_buffers,
        )
        if self.prior and isinstance(model, DotProductBias):
            self.dense.step_scalars(model.activity_weight, [user_grad, item_grad], multiplier)
        return torch.tensor(half_sse, dtype=torch.float64)


def _dot_sgd_step(
    users: np.ndarray,
    items: np.ndarray,
    target: np.ndarray,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    offset: float,
    beta_user: float,
    beta_item: float,
    user_activity: np.ndarray,
    item_activity: np.ndarray,
    user_factor_shrink: np.ndarray,
    item_factor_shrink: np.ndarray,
    user_bias_shrink: np.ndarray,
    item_bias_shrink: np.ndarray,
    user_rate: np.ndarray,
    item_rate: np.ndarray,
    lr: float,
    span: float,
    factor_buffers: np.ndarray,
    scalar_buffers: np.ndarray,
) -> tuple[float, float, float]:
    """One step over a batch: updates the tables in place; returns half the summed
    squared error and the gradient of the loss by each activity weight.

    ``span`` is the width of the sigmoid range (0: no range); ``target`` is then
    ``low - rating`` (else ``-rating``). Empty bias arrays: a model without biases.
    The logit, error and step of a rating are computed in float64, the updates of the
    float32 tables in float32.
    """
    n, n_factors = users.shape[0], user_factors.shape[1]
    biased = user_bias.shape[0] > 0
    user_updates, item_updates = factor_buffers[0], factor_buffers[1]
    user_bias_updates, item_bias_updates = scalar_buffers[0], scalar_buffers[1]
    half_sse, user_grad, item_grad = 0.0, 0.0, 0.0
    for k in range(n):  # reads only: every rating sees the tables before the step
        u, i = users[k], items[k]
        dot = np.float32(0.0)
        for f in range(n_factors):
            dot += user_factors[u, f] * item_factors[i, f]
        x = float(dot)
        if biased:
            x += user_bias[u] + item_bias[i] + offset
            x += beta_user * user_activity[u] + beta_item * item_activity[i]
        if span > 0.0:
            squashed = 1.0 / (1.0 + np.exp(-x))
            error = target[k] + squashed * span
            slope = squashed * (1.0 - squashed) * error * span  # d(error^2 / 2) / dx
        else:
            error = x + target[k]
            slope = error
        step = -lr * slope
        half_sse += 0.5 * error * error
        user_grad += slope * user_activity[u]
        item_grad += slope * item_activity[i]
        user_step = np.float32(step * user_rate[u])
        item_step = np.float32(step * item_rate[i])
        user_decay = np.float32(-lr * user_factor_shrink[u])
        item_decay = np.float32(-lr * item_factor_shrink[i])
        for f in range(n_factors):
            user_row, item_row = user_factors[u, f], item_factors[i, f]
            item_updates[k, f] = user_row * item_step + item_row * item_decay
            user_updates[k, f] = item_row * user_step + user_row * user_decay
        if biased:
            user_bias_updates[k] = user_step - lr * user_bias_shrink[u] * user_bias[u]
            item_bias_updates[k] = item_step - lr * item_bias_shrink[i] * item_bias[i]
    for k in range(n):
        u, i = users[k], items[k]
        for f in range(n_factors):
            user_factors[u, f] += user_updates[k, f]
            item_factors[i, f] += item_updates[k, f]
        if biased:
            user_bias[u] += user_bias_updates[k]
            item_bias[i] += item_bias_updates[k]
    return half_sse, user_grad, item_grad
