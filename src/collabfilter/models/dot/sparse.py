"""Per-rating SGD for the dot models as sparse matrix products, for small tables.

When the factor tables have no more rows than a batch has ratings, gathering a user row
and an item row per rating and adding the updates back with ``index_add_``
(:mod:`collabfilter.models.dot.gather`) streams (batch x factors) temporaries through
memory a dozen times a step. The same step,
written with the batch as a sparse users x items matrix ``A`` of its ratings:

- predictions are ``U @ I.T`` sampled at ``A``'s entries (``sampled_addmm``);
- the factor gradients are ``A_step @ I`` and ``A_step.T @ U``, ``A_step`` holding each
  rating's step (sparse-dense products that read the small tables in place);
- a row's per-rating weight decay, summed over the batch, is its decay times its
  number of ratings in the batch: one multiply of each table.

Epochs draw the same permutation and cut the same batches as the other paths; each
batch is sorted by user, and by item for the transposed product, which is all CSR
needs. The arithmetic is the gather form's, by the same formula, in another summation
order (the tests check both leave the same weights; ``benchmarks/bench_accuracy.py``
times the forms side by side).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from collabfilter.data.tensors import RatingTensors
from collabfilter.models.dot.formula import TORCH
from collabfilter.models.dot.gather import DotSGD
from collabfilter.runtime import quiet_csr


def suits(data: RatingTensors, batch_size: int) -> bool:
    """Whether the sparse form pays: data on the CPU and tables of at most one batch
    of rows (every step rewrites whole tables, which must cost less than the batch)."""
    return data.device.type == "cpu" and data.n_users + data.n_items <= batch_size


class SparseDotSGD(DotSGD["_Batch"]):
    """The step as sparse matrix products, for tables of at most a batch's rows."""

    def _prepare(self, rating: Tensor) -> None:
        self.rating = rating
        self.batch_ids = torch.arange(len(self.data), dtype=torch.int32) // self.batch_size
        self.zeros = torch.zeros(self.batch_size)
        quiet_csr()

    def _batches(self, order: Tensor) -> Iterator[_Batch]:
        plan = _EpochPlan.draw(self, order)
        return (plan.batch(k) for k in range(plan.n_batches))

    def _step(self, batch: _Batch, lr: float, multiplier: float) -> Tensor:
        model, data = self.model, self.data
        shape = (data.n_users, data.n_items)
        users, items = batch.users, batch.items
        pattern = torch.sparse_csr_tensor(
            batch.user_crow, items, self.zeros[: users.shape[0]], size=shape,
            check_invariants=False,
        )  # fmt: skip
        user_factors, item_factors = model.user_factors, model.item_factors
        x = torch.sparse.sampled_addmm(pattern, user_factors, item_factors.t()).values()
        if model.biased:
            user_effect, item_effect = model.user_effect(), model.item_effect()
            x = TORCH.logit(
                x, user_effect.index_select(0, users), item_effect.index_select(0, items),
                model.offset,
            )  # fmt: skip
        error, step = self.error_and_step(x, batch.rating, lr)
        by_user = torch.sparse_csr_tensor(
            batch.user_crow, items, step, size=shape, check_invariants=False
        )
        by_item = torch.sparse_csr_tensor(
            batch.item_crow, batch.users_by_item, step.index_select(0, batch.to_item_order),
            size=shape[::-1], check_invariants=False,
        )  # fmt: skip
        # both products read the tables as they were before this step
        user_grad, item_grad = by_user @ item_factors, by_item @ user_factors
        decay = batch.decay_counts
        self._shrink_and_add(user_factors, "user", decay["user_factors"], user_grad, lr)
        self._shrink_and_add(item_factors, "item", decay["item_factors"], item_grad, lr)
        if model.biased:
            user_sum = torch.zeros(data.n_users).index_add_(0, users, step)
            item_sum = torch.zeros(data.n_items).index_add_(0, items, step)
            if model.activity_prior:
                self.step_prior(user_sum, model.user_activity, item_sum, model.item_activity,
                                lr, multiplier)  # fmt: skip
            self._shrink_and_add(model.user_bias, "user", decay["user_bias"], user_sum, lr)
            self._shrink_and_add(model.item_bias, "item", decay["item_bias"], item_sum, lr)
        return torch.dot(error, error) * 0.5

    def _shrink_and_add(
        self, table: Tensor, side: str, decay_counts: Tensor, summed_steps: Tensor, lr: float
    ) -> None:
        """``row * (1 - lr * shrink * count) + rate * summed steps``, every row at once
        (a row without ratings in the batch keeps its value: its count is 0).
        Overwrites ``summed_steps``."""
        factor = torch.rsub(decay_counts, 1.0, alpha=lr)
        rate = self.side_rate.get(side)
        if table.dim() == 2:
            factor = factor.unsqueeze(1)
            rate = None if rate is None else rate.unsqueeze(1)
        if rate is not None:
            summed_steps.mul_(rate)
        torch.addcmul(summed_steps, table, factor, out=table)


@dataclass(frozen=True)
class _EpochPlan:
    """One epoch's ratings, batch by batch, each batch sorted by user: the arrays the
    CSR matrices of the batches are views of."""

    batch_size: int
    n_batches: int
    users: Tensor  # int32, in batch order; the items are the by-user CSR columns
    items: Tensor
    rating: Tensor
    user_crow: Tensor  # (batches, users + 1) int32
    item_crow: Tensor  # (batches, items + 1) int32
    users_by_item: Tensor  # int32, each batch sorted by item
    item_order: Tensor  # int64 positions in the epoch of each batch's ratings by item
    decay_counts: dict[str, Tensor]  # per table, (batches, rows): shrink x ratings in batch

    @classmethod
    def draw(cls, runner: SparseDotSGD, order: Tensor) -> _EpochPlan:
        """The plan of an epoch visiting the runner's stored ratings in ``order``."""
        data, batch_ids = runner.data, runner.batch_ids
        n_batches = int(batch_ids[-1]) + 1
        user_keys = batch_ids * data.n_users + runner.users.index_select(0, order)
        by_user = torch.sort(user_keys, stable=True)
        rows = order.index_select(0, by_user.indices)
        users, items = runner.users.index_select(0, rows), runner.items.index_select(0, rows)
        by_item = torch.sort(batch_ids * data.n_items + items, stable=True)
        user_crow, user_counts = _crow(by_user.values, n_batches, data.n_users)
        item_crow, item_counts = _crow(by_item.values, n_batches, data.n_items)
        counts = {"user": user_counts, "item": item_counts}
        tables = runner.model.row_tables()
        return cls(
            batch_size=runner.batch_size,
            n_batches=n_batches,
            users=users,
            items=items,
            rating=runner.rating.index_select(0, rows),
            user_crow=user_crow,
            item_crow=item_crow,
            users_by_item=users.index_select(0, by_item.indices),
            item_order=by_item.indices,
            decay_counts={
                name: counts[side] * runner.shrink[name] for name, (side, _) in tables.items()
            },
        )

    def batch(self, k: int) -> _Batch:
        """Views of batch ``k``'s parts."""
        part = slice(k * self.batch_size, (k + 1) * self.batch_size)
        return _Batch(
            self.users[part], self.items[part], self.rating[part], self.user_crow[k],
            self.item_crow[k], self.users_by_item[part],
            self.item_order[part] - k * self.batch_size,
            {name: counts[k] for name, counts in self.decay_counts.items()},
        )  # fmt: skip


class _Batch(NamedTuple):
    users: Tensor
    items: Tensor
    rating: Tensor
    user_crow: Tensor
    item_crow: Tensor
    users_by_item: Tensor
    to_item_order: Tensor
    decay_counts: dict[str, Tensor]  # per table: shrink x the row's ratings in the batch


def _crow(sorted_keys: Tensor, n_batches: int, n_rows: int) -> tuple[Tensor, Tensor]:
    """CSR row pointers (int32) and float counts per (batch, row) from ``batch * n_rows
    + row`` keys in sorted order."""
    counts = torch.bincount(sorted_keys, minlength=n_batches * n_rows).view(n_batches, n_rows)
    crow = torch.zeros(n_batches, n_rows + 1, dtype=torch.int32)
    torch.cumsum(counts, 1, dtype=torch.int32, out=crow[:, 1:])
    return crow, counts.float()
