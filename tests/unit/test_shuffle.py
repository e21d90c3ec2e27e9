"""Epoch orders: exact permutations for small data, permuted blocks for large data."""

import numpy as np
import pandas as pd
import pytest
import torch

from collabfilter.data import Ratings
from collabfilter.data.tensors import RatingTensors
from collabfilter.sgd.order import BLOCKED_FROM, EpochOrder, block_size


def tensors(n: int) -> RatingTensors:
    """n ratings whose columns say their own position: user k, item k, rating k."""
    positions = np.arange(n)
    frame = {"user": positions, "item": positions, "rating": positions.astype(np.float32)}
    return RatingTensors(Ratings.from_df(pd.DataFrame(frame), scale=(0, n)))


def test_block_size_rule():
    assert block_size(BLOCKED_FROM - 1, 32_768) == 1  # small data: exact permutations
    assert block_size(10_000_000, 32_768) == 64
    assert block_size(10_000_000, 8_192) == 32  # at least 256 blocks per batch
    assert block_size(10_000_000, 1_000) == 2  # divides the batch: 500 blocks of 2
    assert block_size(10_000_000, 64) == 1
    assert block_size(10_000_000, 9_999) == 1  # odd batches: no block divides them


def test_exact_order_is_torch_randperm():
    order = EpochOrder(1_000, 64, torch.Generator().manual_seed(5))
    data = tensors(1_000)
    assert order.block == 1
    assert all(
        a is b
        for a, b in zip(
            order.stored(data), (data.user_idx, data.item_idx, data.rating), strict=True
        )
    )
    expected = torch.randperm(1_000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(order.draw(torch.Generator().manual_seed(5)), expected)


@pytest.mark.parametrize("n", [1_003, 1_024])  # with and without a tail past the last block
def test_blocked_epochs_visit_every_rating_once_in_runs_of_a_block(n):
    generator = torch.Generator().manual_seed(0)
    order = EpochOrder(n, 128, generator, block=8)
    storage = order.stored(tensors(n))[0].long()
    assert torch.equal(storage.sort().values, torch.arange(n))  # a permutation
    assert not torch.equal(storage, torch.arange(n))  # and not the given order
    epochs = [order.draw(generator) for _ in range(2)]
    for epoch in epochs:
        assert torch.equal(epoch.sort().values, torch.arange(n))
        whole = n // 8 * 8
        runs = epoch[:whole].view(-1, 8)
        assert (runs[:, 0] % 8 == 0).all()
        assert torch.equal(runs - runs[:, :1], torch.arange(8).expand_as(runs))
        assert torch.equal(epoch[whole:], torch.arange(whole, n))  # the tail closes it
    assert not torch.equal(epochs[0], epochs[1])


def test_stored_columns_follow_one_storage_order_taken_once():
    order = EpochOrder(2_000, 256, torch.Generator().manual_seed(1), block=4)
    users, items, rating = order.stored(tensors(2_000))
    assert torch.equal(users, items) and torch.equal(rating, users.float())
    assert users.dtype == torch.int32
    with pytest.raises(RuntimeError, match="taken once"):
        order.stored(tensors(2_000))


def test_blocks_and_tail_make_the_epoch():
    """A step that reads the stored columns itself gets the block starts and the tail:
    together exactly the positions of :meth:`EpochOrder.draw`."""
    for n in (1_000, 1_003):
        order = EpochOrder(n, 64, torch.Generator(), block=8)
        starts = order.draw_blocks(torch.Generator().manual_seed(4))
        runs = (starts.unsqueeze(1) + torch.arange(8)).view(-1)
        whole = torch.cat([runs, torch.tensor(list(order.tail), dtype=torch.int64)])
        assert torch.equal(whole, order.draw(torch.Generator().manual_seed(4)))


def test_same_generator_same_orders():
    orders = [EpochOrder(5_000, 512, torch.Generator().manual_seed(2), block=16) for _ in range(2)]
    data = tensors(5_000)
    assert torch.equal(orders[0].stored(data)[0], orders[1].stored(data)[0])


@pytest.mark.parametrize("block", [3, 6, 12, 48, 7, 100, 0, -4])
def test_block_must_be_a_power_of_two_dividing_the_batch(block):
    with pytest.raises(ValueError, match="power of two dividing the batch size 96"):
        EpochOrder(5_000, 96, torch.Generator(), block=block)
