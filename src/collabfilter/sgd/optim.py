"""One optimizer for embedding tables (row-wise, sparse) and dense layers (Adam).

Embedding gradients arrive as uncoalesced sparse tensors, one row of values per
rating (see :mod:`collabfilter.models.rows`). ``sgd`` adds them straight into the table
with one ``index_add_``, so every rating acts as in per-sample SGD (Funk SVD), yet
vectorised; ``adam``/``adamw`` sum them per distinct row first and keep lazy moments,
updated only where a batch touched (``torch.optim.SparseAdam`` semantics). Weight
decay is applied per touching rating, scaled per row (see ``TrainConfig``); AdamW's
dense decay would rewrite all 10M entries of a large table at every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from collabfilter.sgd.config import OptimizerName


@dataclass
class _Slot:
    name: str
    param: nn.Parameter
    decay: Tensor | float  # per-row coefficients (sparse tables) or one value (dense)
    rate: Tensor | None = None  # per-row rate multipliers (sparse tables)
    first: Tensor | None = None  # momentum / Adam first moment
    second: Tensor | None = None  # Adam second moment


class RowOptimizer:
    """Sparse row-wise updates for tables, Adam(W) for dense parameters.

    Args:
        params: ``(name, parameter)`` pairs to optimise.
        kind: ``"sgd"``, ``"adam"`` (L2 in the gradient) or ``"adamw"`` (decoupled).
        lr: peak step size; :meth:`step` multiplies it by the schedule's factor.
        row_decay: per-row decay coefficients for table parameters, by name.
        row_rate: per-row multipliers of the step size for table parameters, by name.
        dense_decay: decay of dense matrices (1-D dense parameters are not decayed).
        momentum: sgd momentum (0: none).
        betas: Adam moment decay rates.
        dense_lr: Adam step size for dense parameters under sgd (None: ``lr``).
        grad_clip: clip each rating's gradient row (tables) or the tensor (dense)
            to this norm.
    """

    def __init__(
        self,
        params: Iterable[tuple[str, nn.Parameter]],
        *,
        kind: OptimizerName = "sgd",
        lr: float,
        row_decay: dict[str, Tensor] | None = None,
        row_rate: dict[str, Tensor] | None = None,
        dense_decay: float = 0.0,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        dense_lr: float | None = None,
        grad_clip: float | None = None,
    ) -> None:
        row_decay, row_rate = row_decay or {}, row_rate or {}
        self.kind = kind
        self.lr = lr
        self.dense_lr = lr if dense_lr is None or kind != "sgd" else dense_lr
        self.momentum = momentum
        self.betas = betas
        self.eps = eps
        self.grad_clip = grad_clip
        self.steps = 0
        self._scalar_moments: dict[str, tuple[list[float], list[float]]] = {}
        self.slots = []
        for name, param in params:
            if not param.requires_grad:
                continue
            decay: Tensor | float = row_decay.get(name, dense_decay if param.dim() > 1 else 0.0)
            self.slots.append(_Slot(name, param, decay, row_rate.get(name)))

    def zero_grad(self) -> None:
        """Drop the gradients of the last step."""
        for slot in self.slots:
            slot.param.grad = None

    @torch.no_grad()
    def step(self, multiplier: float = 1.0) -> None:
        """Apply the gradients at ``multiplier`` times the peak rate."""
        self.steps += 1
        for slot in self.slots:
            grad = slot.param.grad
            if grad is None:
                continue
            if grad.is_sparse:
                self._sparse_step(slot, grad, self.lr * multiplier)
            else:
                self._dense_step(slot, grad, self.dense_lr * multiplier)
        self.zero_grad()

    def step_scalars(self, param: nn.Parameter, grad: list[float], multiplier: float) -> None:
        """The step :meth:`step` makes for a dense 1-D parameter of a few scalars (the
        activity prior's two weights) under plain Adam, its gradient given as floats:
        in Python arithmetic, since torch's cost per operation would exceed the whole
        of a compiled step on a small batch. A parameter this optimizer does not train
        (frozen) is left alone, as :meth:`step` leaves it.

        Raises:
            ValueError: for a parameter with decay or clipping, not 1-D, or a gradient
                of another length.
        """
        slot = next((s for s in self.slots if s.param is param), None)
        if slot is None:
            return
        if (
            self.grad_clip is not None
            or isinstance(slot.decay, Tensor)
            or slot.decay != 0.0
            or param.dim() != 1
            or len(grad) != param.numel()
        ):
            raise ValueError(
                f"step_scalars takes plain Adam steps of 1-D parameters with one gradient "
                f"per value; {slot.name} is {tuple(param.shape)} with decay {slot.decay}, "
                f"clipping {self.grad_clip}, and {len(grad)} gradients"
            )
        self.steps += 1
        if slot.name not in self._scalar_moments:
            self._scalar_moments[slot.name] = ([0.0] * len(grad), [0.0] * len(grad))
        first, second = self._scalar_moments[slot.name]
        beta1, beta2 = self.betas
        scale = -self.dense_lr * multiplier / (1 - beta1**self.steps)
        correction = 1 - beta2**self.steps
        values = param.detach().cpu().numpy()  # shares the parameter's memory on the CPU
        for k, g in enumerate(grad):
            first[k] = beta1 * first[k] + (1 - beta1) * g
            second[k] = beta2 * second[k] + (1 - beta2) * g * g
            values[k] += scale * first[k] / (math.sqrt(second[k] / correction) + self.eps)
        if param.device.type != "cpu":
            with torch.no_grad():
                param.copy_(torch.from_numpy(values))

    # -------------------------------------------------------------- tables
    def _sparse_step(self, slot: _Slot, grad: Tensor, lr: float) -> None:
        param = slot.param
        rows = grad._indices()[0]
        values = grad._values()
        if self.grad_clip is not None:
            values = _clip_rows(values, self.grad_clip)
        decay = slot.decay
        if self.kind == "sgd" and self.momentum == 0.0:
            # The hot path: row -= lr * (grad + decay_row * row), once per rating, as
            # two in-place passes over the gathered rows and one index_add_ (whose own
            # alpha= argument is slower than scaling first).
            if isinstance(decay, Tensor):
                update = param.index_select(0, rows)
                update.mul_(_expand(decay.index_select(0, rows), values).mul(-lr))
                update.add_(values, alpha=-lr)
            else:
                update = values.mul_(-lr)
            param.index_add_(0, rows, _scaled(update, slot.rate, rows))
            return
        if isinstance(decay, Tensor) and self.kind != "adamw":
            # L2 per touching rating: d/dp (decay/2 * |p|^2) = decay * p
            rows_decay = _expand(decay.index_select(0, rows), values)
            values = values + rows_decay * param.index_select(0, rows)
        if isinstance(decay, Tensor) and self.kind == "adamw":
            shrink = _expand(decay.index_select(0, rows), values) * param.index_select(0, rows)
            param.index_add_(0, rows, _scaled(shrink.mul_(-lr), slot.rate, rows))
        unique, summed = _coalesce(rows, values)
        if self.kind == "sgd":
            slot.first = slot.first if slot.first is not None else torch.zeros_like(param)
            velocity = slot.first.index_select(0, unique).mul_(self.momentum).add_(summed)
            slot.first.index_copy_(0, unique, velocity)
            param.index_add_(0, unique, _scaled(velocity.mul(-lr), slot.rate, unique))
            return
        update = self._adam_direction(slot, param, unique, summed)
        param.index_add_(0, unique, _scaled(update.mul_(-lr), slot.rate, unique))

    def _adam_direction(self, slot: _Slot, param: Tensor, rows: Tensor, grad: Tensor) -> Tensor:
        beta1, beta2 = self.betas
        if slot.first is None or slot.second is None:
            slot.first, slot.second = torch.zeros_like(param), torch.zeros_like(param)
        first = slot.first.index_select(0, rows).mul_(beta1).add_(grad, alpha=1 - beta1)
        second = slot.second.index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        slot.first.index_copy_(0, rows, first)
        slot.second.index_copy_(0, rows, second)
        first_correction = 1 - beta1**self.steps
        second_correction = 1 - beta2**self.steps
        denominator = (second / second_correction).sqrt_().add_(self.eps)
        return first.div_(first_correction).div_(denominator)

    # -------------------------------------------------------------- dense
    def _dense_step(self, slot: _Slot, grad: Tensor, lr: float) -> None:
        param = slot.param
        if self.grad_clip is not None:
            norm = float(grad.norm())
            if norm > self.grad_clip:
                grad = grad * (self.grad_clip / norm)
        decay = 0.0 if isinstance(slot.decay, Tensor) else float(slot.decay)
        if decay and self.kind == "adamw":
            param.mul_(1 - lr * decay)
        elif decay:
            grad = grad + decay * param
        beta1, beta2 = self.betas
        if slot.first is None or slot.second is None:
            slot.first, slot.second = torch.zeros_like(param), torch.zeros_like(param)
        slot.first.mul_(beta1).add_(grad, alpha=1 - beta1)
        slot.second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = (slot.second / (1 - beta2**self.steps)).sqrt_().add_(self.eps)
        param.addcdiv_(slot.first, denominator, value=-lr / (1 - beta1**self.steps))


def _expand(per_row: Tensor, values: Tensor) -> Tensor:
    return per_row.reshape(-1, *([1] * (values.dim() - 1)))


def _scaled(update: Tensor, rate: Tensor | None, rows: Tensor) -> Tensor:
    """``update`` with each row multiplied by its rate (in place), if rates are set."""
    return update if rate is None else update.mul_(_expand(rate.index_select(0, rows), update))


def _clip_rows(values: Tensor, max_norm: float) -> Tensor:
    flat = values.reshape(values.shape[0], -1)
    norms = flat.norm(dim=1, keepdim=True).clamp(min=1e-12)
    clipped: Tensor = flat * (max_norm / norms).clamp(max=1.0)
    return clipped.reshape(values.shape)


def _coalesce(rows: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows and the sum of their values."""
    unique, inverse = torch.unique(rows, return_inverse=True)
    summed = torch.zeros(
        (unique.shape[0], *values.shape[1:]), dtype=values.dtype, device=values.device
    )
    summed.index_add_(0, inverse, values)
    return unique, summed
