"""The sgd step of the dot models as one compiled, parallel loop per batch (numba), on
the CPU.

The gather form (:mod:`collabfilter.models.dot.gather`) writes each step as about
twenty whole-batch tensor operations, each streaming a (batch x factors) temporary
through memory and paying torch's dispatch. Here the same arithmetic runs per rating
inside one compiled function, which calls the dot formula's compiled dialect
(:func:`collabfilter.models.dot.formula.compiled`), in two parallel passes:

1. reads only: the batch's ratings, cut into a fixed number of chunks shared out among
   the threads, each rating's prediction, error and updates into per-batch buffers
   (every rating sees the tables as they were before the step);
2. writes: one thread adds the user updates in, another the item updates (the tables
   are disjoint, so no locks), each in the batch's order.

Both passes gather table rows at random, which waits on memory more than it computes:
each asks the CPU for the rows of the rating :data:`AHEAD` places on while it works on
the current one (:func:`collabfilter.runtime.row_prefetch`).

Every row receives its updates in the same order whatever the number of threads, and
the loss is summed chunk by chunk in a fixed order, so a seeded run gives the same
weights on one thread or many. It is the gather form's arithmetic in another summation
order (a rating's logit and error in float64); the tests check that both leave the
same weights, and ``benchmarks/bench_scale.py`` times the forms side by side.

The step reads the ratings in their storage order itself (the epoch order's block
starts, :meth:`~collabfilter.sgd.order.EpochOrder.draw_blocks`), so an epoch copies no
rating; per-row quantities (decay and rate of each row, activity values) are small
per-row arrays, never per-rating columns.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.models.dot.formula import FASTMATH, compiled, unbound
from collabfilter.models.dot.gather import DotSGD
from collabfilter.runtime import compile_parallel, use_threads

if TYPE_CHECKING:
    from collabfilter.models.dot.module import DotProductBias

CHUNKS = 64
"""Pieces a batch's first pass is cut into, whatever the number of threads: the loss is
summed piece by piece in this order, so that it does not depend on the threads."""

AHEAD = 16
"""Both passes fetch the table rows of the rating this many places ahead
(:func:`collabfilter.runtime.row_prefetch`): random row gathers wait on memory."""


def unsuitable(model: DotProductBias, data: RatingTensors) -> str | None:
    """Why the compiled form cannot train ``model`` on ``data``, or None when it can: it
    needs the data and float32 tables on the CPU, with a row per user and per item (the
    compiled loop does not check indices)."""
    if data.device.type != "cpu":
        return "step='compiled' runs on the CPU; use 'gather' on other devices"
    size = {"user": data.n_users, "item": data.n_items}
    for name, (side, _) in model.row_tables().items():
        table: Tensor = getattr(model, name)
        if (
            table.shape[0] < size[side]
            or table.dtype != torch.float32
            or table.device.type != "cpu"
        ):
            return (
                f"step='compiled' needs float32 CPU tables with a row per {side}: "
                f"{name} is {table.dtype} {tuple(table.shape)} on {table.device} "
                f"for {size[side]:,} {side}s; use step='gather'"
            )
    return None


@cache
def _compiled_step() -> Callable[..., None]:
    """The step compiled on first use (:func:`collabfilter.runtime.compile_parallel`)."""
    formula = compiled()
    namespace = {"np": np, "AHEAD": AHEAD, **formula._asdict(), "__name__": __name__}
    step = types.FunctionType(_dot_sgd_step.__code__, namespace, _dot_sgd_step.__name__)
    return compile_parallel(step, fastmath=FASTMATH)  # type: ignore[no-any-return]


class _Batch(NamedTuple):
    """A batch as stored positions: the starts of its blocks, then a run of the tail."""

    starts: np.ndarray  # int64
    tail: range


class CompiledDotSGD(DotSGD[_Batch]):
    """The step as one compiled, parallel pass over the batch's ratings (see the module).

    Raises:
        ConfigError: for tables that are not float32 on the CPU, or have fewer rows
            than the data's users or items (the compiled loop does not check indices).
    """

    def _prepare(self, rating: Tensor) -> None:
        model, data = self.model, self.data
        problem = unsuitable(model, data)
        if problem is not None:
            raise ConfigError(problem)
        size = {"user": data.n_users, "item": data.n_items}
        self.columns = (self.users.numpy(), self.items.numpy(), rating.numpy())
        self.prior = model.activity_prior

        def per_row(values: Tensor | None, side: str, fill: float) -> Tensor:
            if values is None:
                return torch.full((size[side],), fill)
            return values.detach().to(torch.float32).cpu()

        # A side's per-row constants side by side, one row of four floats per user or
        # item: a rating then reads one cache line for them, not four.
        shrink, rate = self.shrink, self.side_rate
        self.constants = [
            torch.stack(
                [
                    per_row(shrink.get(f"{side}_factors"), side, 0.0),
                    per_row(shrink.get(f"{side}_bias"), side, 0.0),
                    per_row(rate.get(side), side, 1.0),
                    per_row(getattr(model, f"{side}_activity") if self.prior else None, side, 0.0),
                ],
                dim=1,
            ).numpy()
            for side in ("user", "item")
        ]
        batch = min(self.batch_size, len(data))
        self.factor_buffers = np.empty((2, batch, model.user_factors.shape[1]), np.float32)
        self.scalar_buffers = np.empty((2, batch), np.float32)
        self.positions = np.empty(batch, np.int64)
        self.partials = np.empty((CHUNKS, 3), np.float64)
        self.no_bias = np.zeros(0, np.float32)
        # loaded (numba's threads started, its cache read for these argument types) by
        # an empty batch here, so that set-up, not the first epoch, pays for it
        self.kernel = _compiled_step()
        use_threads()
        self._run(_Batch(np.empty(0, np.int64), range(0)), 0.0)

    def batches(self) -> Iterator[_Batch]:
        use_threads()  # per epoch: numba's setting is per calling thread
        order, block = self.order, self.order.block
        starts = self.order.draw_blocks(self.generator).numpy()
        per_batch, tail = self.batch_size // block, order.tail
        for first in range(0, order.n_ratings, self.batch_size):
            last = first + self.batch_size
            run = range(max(first, tail.start), min(last, tail.stop))
            yield _Batch(starts[first // block : first // block + per_batch], run)

    def size(self, batch: _Batch) -> int:
        return len(batch.starts) * self.order.block + len(batch.tail)

    def _step(self, batch: _Batch, lr: float, multiplier: float) -> Tensor:
        half_sse, user_grad, item_grad = self._run(batch, lr)
        if self.prior:
            grads = [float(user_grad), float(item_grad)]
            self.dense.step_scalars(self.model.activity_weight, grads, multiplier)
        return torch.tensor(half_sse, dtype=torch.float64)

    def _run(self, batch: _Batch, lr: float) -> np.ndarray:
        """The kernel on one batch: half the summed squared error and the gradients by
        the two activity weights."""
        model = self.model
        user_bias = item_bias = self.no_bias
        offset = 0.0
        if model.biased:
            user_bias = model.user_bias.detach().numpy()
            item_bias = model.item_bias.detach().numpy()
            offset = float(model.offset)
        beta = model.activity_weights()
        self.kernel(
            batch.starts,
            self.order.block.bit_length() - 1,
            batch.tail.start,
            len(batch.tail),
            *self.columns,
            model.user_factors.detach().numpy(),
            model.item_factors.detach().numpy(),
            user_bias,
            item_bias,
            offset,
            beta[0],
            beta[1],
            *self.constants,
            lr,
            self.low,
            self.span,
            self.factor_buffers,
            self.scalar_buffers,
            self.positions,
            self.partials,
        )
        return self.partials.sum(axis=0)  # type: ignore[no-any-return]


# Bound into _dot_sgd_step by _compiled_step: the dot formula's compiled dialect,
# numba's parallel range and the row prefetch (collabfilter.runtime.compile_parallel).
effect = logit = rating = gradient = fetch_row = unbound
prange = range


def _dot_sgd_step(
    starts: np.ndarray,
    block_shift: int,
    tail_start: int,
    tail_length: int,
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
    user_constants: np.ndarray,
    item_constants: np.ndarray,
    lr: float,
    low: float,
    span: float,
    factor_buffers: np.ndarray,
    scalar_buffers: np.ndarray,
    positions: np.ndarray,
    partials: np.ndarray,
) -> None:
    """One step over a batch: updates the tables in place; writes each chunk's half
    summed squared error and gradients by the two activity weights into ``partials``.

    The batch is the stored ratings at ``starts[j] + r`` for each block ``j`` and
    ``r < 2**block_shift``, then ``tail_length`` ratings from ``tail_start``; the kernel
    writes each rating's stored position into ``positions`` first, so that both passes
    can look ahead (:data:`AHEAD`) and fetch the rows they will need. A side's
    constants hold, per row: the factors' decay, the bias's decay, the rate multiplier
    and the activity value.
    ``effect``, ``logit``, ``rating`` and ``gradient`` are the dot formula's compiled
    dialect (:func:`_compiled_step` builds this function with them); ``low`` and
    ``span`` are the output range (span 0: none). Empty bias arrays: a model without
    biases. The logit, error and step of a rating are computed in float64, the updates
    of the float32 tables in float32.
    """
    in_blocks = starts.shape[0] << block_shift
    n, n_factors = in_blocks + tail_length, user_factors.shape[1]
    mask = (1 << block_shift) - 1
    biased = user_bias.shape[0] > 0
    user_updates, item_updates = factor_buffers[0], factor_buffers[1]
    user_bias_updates, item_bias_updates = scalar_buffers[0], scalar_buffers[1]
    n_chunks = partials.shape[0]
    for chunk in prange(n_chunks):  # where each rating of the batch is stored
        for k in range(chunk * n // n_chunks, (chunk + 1) * n // n_chunks):
            if k < in_blocks:
                positions[k] = starts[k >> block_shift] + (k & mask)
            else:
                positions[k] = tail_start + k - in_blocks
    for chunk in prange(n_chunks):  # reads only: every rating sees the tables before the step
        half_sse, user_grad, item_grad = 0.0, 0.0, 0.0
        end = (chunk + 1) * n // n_chunks
        for k in range(chunk * n // n_chunks, end):
            if k + AHEAD < end:
                later = positions[k + AHEAD]
                fetch_row(user_factors, users[later])
                fetch_row(item_factors, items[later])
                fetch_row(user_constants, users[later])
                fetch_row(item_constants, items[later])
            stored = positions[k]
            u, i = users[stored], items[stored]
            user_decay_f, user_decay_b = user_constants[u, 0], user_constants[u, 1]
            user_rate, user_activity = user_constants[u, 2], user_constants[u, 3]
            item_decay_f, item_decay_b = item_constants[i, 0], item_constants[i, 1]
            item_rate, item_activity = item_constants[i, 2], item_constants[i, 3]
            dot = np.float32(0.0)
            for f in range(n_factors):
                dot += user_factors[u, f] * item_factors[i, f]
            x = float(dot)
            if biased:
                user_effect = effect(float(user_bias[u]), beta_user, float(user_activity))
                item_effect = effect(float(item_bias[i]), beta_item, float(item_activity))
                x = logit(x, user_effect, item_effect, offset)
            error = rating(x, low, span) - float(ratings[stored])
            slope = gradient(x, error, span)
            step = -lr * slope
            half_sse += 0.5 * error * error
            user_grad += slope * user_activity
            item_grad += slope * item_activity
            user_step = np.float32(step * user_rate)
            item_step = np.float32(step * item_rate)
            user_decay = np.float32(-lr * user_decay_f)
            item_decay = np.float32(-lr * item_decay_f)
            for f in range(n_factors):
                user_row, item_row = user_factors[u, f], item_factors[i, f]
                item_updates[k, f] = user_row * item_step + item_row * item_decay
                user_updates[k, f] = item_row * user_step + user_row * user_decay
            if biased:
                user_bias_updates[k] = user_step - lr * user_decay_b * user_bias[u]
                item_bias_updates[k] = item_step - lr * item_decay_b * item_bias[i]
        partials[chunk, 0] = half_sse
        partials[chunk, 1] = user_grad
        partials[chunk, 2] = item_grad
    for side in prange(2):  # writes: one side per thread, each row in the batch's order
        rows = users if side == 0 else items
        table = user_factors if side == 0 else item_factors
        bias = user_bias if side == 0 else item_bias
        updates, bias_updates = factor_buffers[side], scalar_buffers[side]
        for k in range(n):
            if k + AHEAD < n:
                fetch_row(table, rows[positions[k + AHEAD]])
            row = rows[positions[k]]
            for f in range(n_factors):
                table[row, f] += updates[k, f]
            if biased:
                bias[row] += bias_updates[k]
