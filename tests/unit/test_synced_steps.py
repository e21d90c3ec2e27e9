"""Data-parallel steps on a one-rank gloo group: the sum over one rank is the rank's own
change, so every step form, autograd included, must train exactly as unsynced."""

import copy

import pytest
import torch
import torch.distributed as dist

from collabfilter.config import RunOptions
from collabfilter.data.synthetic import generate_ratings
from collabfilter.data.tensors import RatingTensors
from collabfilter.models.dot import DotProductBias
from collabfilter.models.dot.steps import dot_steps
from collabfilter.models.nn import EmbeddingNN
from collabfilter.sgd import TrainConfig, autograd_steps
from collabfilter.sgd.synced import SyncedSteps


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory):
    store = dist.FileStore(str(tmp_path_factory.mktemp("store") / "rendezvous"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def nn_module(n_users, n_items):
    return EmbeddingNN(n_users, n_items, user_size=4, item_size=4, layers=(8,),
                       y_range=(0.5, 5.5))  # fmt: skip


def dot_module(n_users, n_items):
    return DotProductBias(n_users, n_items, 4, y_range=(0.5, 5.5))


@pytest.mark.parametrize(
    ("build", "factory", "step"),
    [
        (nn_module, autograd_steps, "auto"),
        (dot_module, dot_steps, "autograd"),
        (dot_module, dot_steps, "gather"),
    ],
)
def test_one_rank_synced_steps_train_as_the_steps_alone(one_rank, build, factory, step):
    ratings = generate_ratings(100, 200, 2000, min_per_user=5, seed=1).ratings
    data = RatingTensors(ratings, "cpu")
    config, options = TrainConfig(batch_size=256), RunOptions(progress=False, step=step)
    torch.manual_seed(0)
    alone = build(ratings.n_users, ratings.n_items)
    synced = copy.deepcopy(alone)
    plain = factory(alone, data, config, options, torch.Generator().manual_seed(3))
    inner = factory(synced, data, config, options, torch.Generator().manual_seed(3))
    wrapped = SyncedSteps(inner, synced, n_batches=data.n_batches(256) + 1)
    losses = [plain.step(batch, 0.5) for batch in plain.batches()]
    synced_losses = [wrapped.step(batch, 0.5) for batch in wrapped.batches()]
    assert len(synced_losses) == len(losses) + 1 and synced_losses[-1] == 0  # an empty step
    assert torch.allclose(torch.stack(synced_losses[:-1]).float(), torch.stack(losses).float())
    for (name, mine), theirs in zip(synced.state_dict().items(), alone.state_dict().values(),
                                    strict=True):  # fmt: skip
        assert torch.allclose(mine, theirs, atol=1e-6), name
