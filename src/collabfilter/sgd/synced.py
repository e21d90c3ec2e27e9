"""Data-parallel sgd: one rank's steps made collective.

After each local step the ranks sum their changes of every parameter with one
``all_reduce``: per-rating SGD adds one step per rating, so the summed change is what
one process would have applied to the whole batch, and every rank applies the same one
(parameters stay identical; :func:`collabfilter.distributed.check_identical` verifies it
at the end of training).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from collabfilter.distributed import all_reduce_sum
from collabfilter.sgd.steps import Steps


class SyncedSteps:
    """The steps of one rank, made collective: after each local step the changes of
    every parameter are summed over the ranks and applied on all of them.

    Args:
        inner: the rank's steps on its shard.
        model: the model they train (its parameters are synchronised).
        n_batches: batches per epoch agreed by all ranks.
    """

    def __init__(self, inner: Steps, model: nn.Module, n_batches: int) -> None:
        self.inner, self.n_batches = inner, n_batches
        self.batch_size = inner.batch_size
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    def batches(self) -> Iterator[Any]:
        count = 0
        for batch in self.inner.batches():
            count += 1
            yield batch
        for _ in range(self.n_batches - count):
            yield None  # this rank's shard ran out: it contributes nothing to the step

    def size(self, batch: Any) -> int:
        return 0 if batch is None else self.inner.size(batch)

    def step(self, batch: Any, multiplier: float) -> Tensor:
        with torch.no_grad():
            before = [p.detach().clone() for p in self.parameters]
        loss = torch.zeros((), dtype=torch.float64)
        if batch is not None:  # the inner step may need autograd: not under no_grad
            loss = self.inner.step(batch, multiplier).detach().double().cpu()
        with torch.no_grad():
            flat = torch.cat([(p - b).reshape(-1) for p, b in zip(self.parameters, before,
                                                                  strict=True)])  # fmt: skip
            all_reduce_sum(flat)
            offset = 0
            for param, old in zip(self.parameters, before, strict=True):
                size = param.numel()
                param.copy_(old + flat[offset : offset + size].view_as(param))
                offset += size
        return all_reduce_sum(loss)
