"""Epoch orders: exact permutations for small data, permuted blocks for large data."""

import pytest
import torch

from collabfilter.sgd.order import BLOCKED_FROM, EpochOrder, block_size


def test_block_size_rule():
    assert block_size(BLOCKED_FROM - 1, 32_768) == 1  # small data: exact permutations
    assert block_size(10_000_000, 32_768) == 64
    assert block_size(10_000_000, 8_192) == 32  # at least 256 blocks per batch
    assert block_size(10_000_000, 1_000) == 2  # divides the batch: 500 blocks of 2
    assert block_size(10_000_000, 64) == 1
    assert block_size(10_000_000, 9_999) == 1  # odd batches: no block divides them


def test_exact_order_is_torch_randperm():
    order = EpochOrder(1_000, 64, torch.Generator().manual_seed(5))
    assert order.block == 1 and order.storage is None
    column = torch.arange(1_000.0)
    assert order.store(column) is column
    expected = torch.randperm(1_000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(order.draw(torch.Generator().manual_seed(5)), expected)


@pytest.mark.parametrize("n", [1_003, 1_024])  # with and without a tail past the last block
def test_blocked_epochs_visit_every_rating_once_in_runs_of_a_block(n):
    generator = torch.Generator().manual_seed(0)
    order = EpochOrder(n, 128, generator, block=8)
    assert torch.equal(order.storage.sort().values, torch.arange(n))  # a permutation
    assert not torch.equal(order.storage, torch.arange(n))  # and not the given order
    epochs = [order.draw(generator) for _ in range(2)]
    for epoch in epochs:
        assert torch.equal(epoch.sort().values, torch.arange(n))
        whole = n // 8 * 8
        runs = epoch[:whole].view(-1, 8)
        assert (runs[:, 0] % 8 == 0).all()
        assert torch.equal(runs - runs[:, :1], torch.arange(8).expand_as(runs))
        assert torch.equal(epoch[whole:], torch.arange(whole, n))  # the tail closes it
    assert not torch.equal(epochs[0], epochs[1])


def test_stored_columns_follow_the_storage_order():
    order = EpochOrder(2_000, 256, torch.Generator().manual_seed(1), block=4)
    column = torch.arange(2_000) * 10
    assert torch.equal(order.store(column), order.storage * 10)


def test_same_generator_same_orders():
    orders = [EpochOrder(5_000, 512, torch.Generator().manual_seed(2), block=16) for _ in range(2)]
    assert torch.equal(orders[0].storage, orders[1].storage)


def test_block_must_divide_the_batch():
    with pytest.raises(ValueError, match="divide the batch size 100"):
        EpochOrder(5_000, 100, torch.Generator(), block=8)
