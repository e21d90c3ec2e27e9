"""The sgd step of the dot models as one compiled loop per batch (numba), on the CPU.

The gather form (:mod:`collabfilter.models.dot.gather`) writes each step as about
twenty whole-batch tensor operations, each streaming a (batch x factors) temporary
through memory and paying torch's dispatch; at small batches that is most of a step's
time. Here the same arithmetic runs per rating inside one compiled function, which calls
the dot formula's compiled dialect (:func:`collabfilter.models.dot.formula.compiled`): a
first pass reads the tables as they were before the step (prediction, error, each
rating's updates into per-batch buffers), a second adds the updates in. It is the gather
form's arithmetic in another summation order (and a rating's logit and error in
float64); the tests check that both leave the same weights, and
``benchmarks/bench_accuracy.py`` times the forms side by side.

Per-row quantities (decay and rate of each row, activity values) are read from small
per-row arrays instead of per-rating columns, and every epoch gathers the ratings into
visiting order once, so that a step reads its ratings as one run of memory.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.models.dot.formula import FASTMATH, compiled, unbound
from collabfilter.models.dot.gather import DotSGD

if TYPE_CHECKING:
    from collabfilter.models.dot.module import DotProductBias

MAX_BUFFERED = 1 << 18
"""Most ratings x factors a step buffers per side (1 MiB of float32): beyond a core's
cache, the sparse products or the gathers (which use every core) are faster."""


def suits(model: DotProductBias, data: RatingTensors, batch_size: int) -> bool:
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

    formula = compiled()
    namespace = {"np": np, **formula._asdict(), "__name__": __name__}
    step = types.FunctionType(_dot_sgd_step.__code__, namespace, _dot_sgd_step.__name__)
    kernel: Any = numba.njit(cache=True, fastmath=FASTMATH)(step)
    return kernel  # type: ignore[no-any-return]


class _Batch(NamedTuple):
    """Ratings in visiting order: an epoch's, or a batch's slice of them."""

    users: np.ndarray  # int64
    items: np.ndarray
    rating: np.ndarray  # float32


class CompiledDotSGD(DotSGD[_Batch]):
    """The step as one compiled pass over the batch's ratings (see the module).

    Raises:
        ConfigError: for tables that are not float32 on the CPU, or have fewer rows
            than the data's users or items (the compiled loop does not check indices).
    """

    def _prepare(self, rating: Tensor) -> None:
        model, data = self.model, self.data
        size = {"user": data.n_users, "item": data.n_items}
        for name, (side, _) in model.row_tables().items():
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
        self.rating = rating
        self.prior = model.activity_prior

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
            per_row(model.user_activity if self.prior else None, "user", 0.0),
            per_row(model.item_activity if self.prior else None, "item", 0.0),
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
            self.rating.index_select(0, order).numpy(),
        )
        for start in range(0, len(order), self.batch_size):
            part = slice(start, start + self.batch_size)
            yield _Batch(epoch.users[part], epoch.items[part], epoch.rating[part])

    def _step(self, batch: _Batch, lr: float, multiplier: float) -> Tensor:
        model = self.model
        user_bias = item_bias = self.no_bias
        offset = 0.0
        if model.biased:
            user_bias = model.user_bias.detach().numpy()
            item_bias = model.item_bias.detach().numpy()
            offset = float(model.offset)
        beta = model.activity_weights()
        half_sse, user_grad, item_grad = _compiled_step()(
            batch.users,
            batch.items,
            batch.rating,
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
            self.low,
            self.span,
            self.factor_buffers,
            self.scalar_buffers,
        )
        if self.prior:
            self.dense.step_scalars(model.activity_weight, [user_grad, item_grad], multiplier)
        return torch.tensor(half_sse, dtype=torch.float64)


# The dot formula's compiled dialect, bound into _dot_sgd_step by _compiled_step.
effect = logit = rating = gradient = unbound


def _dot_sgd_step(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
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
    low: float,
    span: float,
    factor_buffers: np.ndarray,
    scalar_buffers: np.ndarray,
) -> tuple[float, float, float]:
    """One step over a batch: updates the tables in place; returns half the summed
    squared error and the gradient of the loss by each activity weight.

    ``effect``, ``logit``, ``rating`` and ``gradient`` are the dot formula's compiled
    dialect (:func:`_compiled_step` builds this function with them); ``low`` and
    ``span`` are the output range (span 0: none). Empty bias arrays: a model without
    biases. The logit, error and step of a rating are computed in float64, the updates
    of the float32 tables in float32.
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
            user_effect = effect(float(user_bias[u]), beta_user, float(user_activity[u]))
            item_effect = effect(float(item_bias[i]), beta_item, float(item_activity[i]))
            x = logit(x, user_effect, item_effect, offset)
        error = rating(x, low, span) - float(ratings[k])
        slope = gradient(x, error, span)
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
