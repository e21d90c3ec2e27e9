"""The sgd step of the dot models as one compiled loop per batch (numba), on the CPU.

The gather form (:mod:`collabfilter.train.fused`) writes each step as about twenty
whole-batch tensor operations, each streaming a (batch x factors) temporary through
memory and paying torch's dispatch; at the default recipe's batches (about a fortieth
of the data: 2,048 ratings on ml-100k) that is most of a step's time. Here the same
arithmetic runs per rating inside one compiled function: a first pass reads the
tables as they were before the step (prediction, error, each rating's updates into
per-batch buffers), a second adds the updates in. It is the gather form's arithmetic in
another summation order; the tests check that both leave the same weights, and
``benchmarks/bench_accuracy.py`` times the forms side by side.

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
from collabfilter.models import DotProductBias
from collabfilter.train.fused import DotSGD

MAX_BUFFERED = 1 << 18
"""Most ratings x factors a step buffers per side (1 MiB of float32): beyond a core's
cache, the sparse products or the gathers (which use every core) are faster."""

# Reassociation lets the compiler vectorise the dot products; the flags that assume no
# NaN or infinity are left out, so that a diverging run still shows a non-finite loss.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def suits(data: RatingTensors, batch_size: int, n_factors: int) -> bool:
    """Whether the compiled form pays: on the CPU, for batches whose buffered updates
    stay in cache (:data:`MAX_BUFFERED`)."""
    return data.device.type == "cpu" and batch_size * n_factors <= MAX_BUFFERED


@cache
def _compiled_step() -> Callable[..., tuple[float, float, float]]:
    """The step compiled by numba, on first use (and cached on disk by numba, so
    later processes load it instead of compiling); importing numba is deferred to here
    so that the package's other entry points do not pay for it."""
    import numba

    compiled: Any = numba.njit(cache=True, fastmath=_FASTMATH)(_dot_sgd_step)
    return compiled  # type: ignore[no-any-return]


class _Epoch(NamedTuple):
    users: np.ndarray  # int64, visiting order
    items: np.ndarray
    target: np.ndarray  # float32: low - rating under a range, else -rating


class _Batch(NamedTuple):
    users: np.ndarray
    items: np.ndarray
    target: np.ndarray


class CompiledDotSGD(DotSGD[_Batch]):
    """The step as one compiled pass over the batch's ratings (see the module)."""

    def _prepare(self, rating: Tensor) -> None:
        model, n_factors = self.model, self.model.user_factors.shape[1]
        low = 0.0 if model.y_range is None else model.y_range[0]
        self.target = (low - rating).float()
        self.span = 0.0 if model.y_range is None else model.y_range[1] - model.y_range[0]
        n = {"user": self.data.n_users, "item": self.data.n_items}
        self.prior = isinstance(model, DotProductBias) and model.activity_prior

        def rows(values: Tensor | None, side: str, fill: float) -> np.ndarray:
            if values is None:
                return np.full(n[side], fill, np.float32)
            return values.detach().to(torch.float32).cpu().numpy().copy()

        self.shrink_rows = [
            rows(self.shrink.get(f"{side}_{role}"), side, 0.0)
            for role in ("factors", "bias")
            for side in ("user", "item")
        ]
        self.rate_rows = [rows(self.side_rate.get(side), side, 1.0) for side in ("user", "item")]
        activity = [getattr(model, f"{side}_activity", None) for side in ("user", "item")]
        self.activity_rows = [
            rows(a if self.prior else None, side, 0.0)
            for a, side in zip(activity, ("user", "item"), strict=True)
        ]
        self.factor_buffers = np.empty((2, self.batch_size, n_factors), np.float32)
        self.scalar_buffers = np.empty((2, self.batch_size), np.float32)
        self.no_bias = np.zeros(0, np.float32)

    def _batches(self, order: Tensor) -> Iterator[_Batch]:
        epoch = _Epoch(
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
            # d loss / d beta = sum(dL/dx * activity) = -sum(step * activity) / lr
            grad = [user_grad / -lr, item_grad / -lr]
            self.dense.step_scalars(model.activity_weight, grad, multiplier)
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
    squared error and the sums of ``step * activity`` per side (the prior's gradient).

    ``span`` is the width of the sigmoid range (0: no range); ``target`` is then
    ``low - rating`` (else ``-rating``). Empty bias arrays: a model without biases.
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
            step = squashed * (1.0 - squashed) * error * (-lr * span)
        else:
            error = x + target[k]
            step = -lr * error
        half_sse += 0.5 * error * error
        user_grad += step * user_activity[u]
        item_grad += step * item_activity[i]
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
