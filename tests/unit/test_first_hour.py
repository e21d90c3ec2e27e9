"""The fastai user's first hour: the lessons' calls run as written and never end
silently worse than the bias baseline."""

from dataclasses import replace

import numpy as np
import pytest

from collabfilter import generate_ratings, split_random
from collabfilter.config import RunOptions
from collabfilter.errors import CollabFilterWarning, ConfigError
from collabfilter.models import DotConfig, NNConfig
from collabfilter.train import collab_learner
from collabfilter.train.learner import FASTAI_BATCH_SIZE

QUIET = RunOptions(progress=False, seed=3)


@pytest.fixture(scope="module")
def split():
    synthetic = generate_ratings(300, 400, 24_000, n_factors=4, noise_std=0.5, seed=11)
    return split_random(synthetic.ratings, 0.1, seed=1)


def test_an_adam_step_size_is_taken_as_fastai_means_it(split, capsys, monkeypatch):
    """fastai's ``fit_one_cycle(5, 5e-3, wd=0.1)`` is an Adam step size: far below
    what per-rating sgd needs, so the learner trains as fastai would, and says so."""
    train, _ = split
    monkeypatch.delenv("COLLABFILTER_PROGRESS")  # notes and table as a script shows them
    learner = collab_learner(train, options=replace(QUIET, progress=None))
    records = learner.fit_one_cycle(1, 1e-3, wd=0.1)
    assert learner.config.optimizer == "adamw" and learner.config.lr == 1e-3
    assert learner.config.batch_size == FASTAI_BATCH_SIZE and learner.config.weight_decay == 0.1
    assert records[0].train_loss < float(np.var(train.rating))  # it learned something
    sweep = learner._sgd_sweep
    assert sweep is not None and 1e-3 < sweep.minimum  # the rule the note states
    note = capsys.readouterr().err
    assert "taken as fastai's Adam step size" in note and "optimizer='sgd'" in note
    assert f"{sweep.suggestion:.3g}" in note  # the rate per-rating sgd would take
    # later calls keep the units the learner trains in
    learner.fit_one_cycle(1, 1e-3)
    assert learner.config.optimizer == "adamw"


def test_fit_reads_its_rate_as_fit_one_cycle_does(split):
    train, _ = split
    learner = collab_learner(train, options=QUIET)
    learner.fit(1, 1e-3, batch_size=256)
    assert learner.config.optimizer == "adamw" and learner.config.batch_size == 256


def test_rates_in_sgd_units_or_a_named_optimizer_are_kept(split):
    train, _ = split
    learner = collab_learner(train, options=QUIET)
    learner.lr_find()  # the sweep the rule reads, kept from the caller's own call
    sweep = learner._sgd_sweep
    assert sweep is not None
    learner.fit_one_cycle(1, sweep.suggestion)
    assert learner.config.optimizer == "sgd" and learner.config.lr == sweep.suggestion
    assert learner._sgd_sweep is sweep  # not swept again
    kept = collab_learner(train, options=QUIET)
    kept.fit_one_cycle(1, 1e-3, optimizer="sgd")
    assert kept.config.optimizer == "sgd" and kept._sgd_sweep is None  # nothing to decide


def test_a_fit_worse_than_the_bias_baseline_warns_with_the_rate_to_use(split):
    train, valid = split
    learner = collab_learner(train, valid, options=QUIET)
    with pytest.warns(CollabFilterWarning, match="worse than the bias baseline") as caught:
        learner.fit_one_cycle(1, 1e-5, optimizer="sgd")
    assert learner.metrics["valid_rmse"] > learner._baseline_rmse()
    assert caught[0].filename == __file__  # it points at the caller's line
    learner.lr_find()
    with pytest.warns(CollabFilterWarning, match="this learner's lr_find suggestion"):
        learner.fit(1, 1e-5, optimizer="sgd")
    good = collab_learner(train, valid, options=QUIET)
    good.fit_one_cycle(4)  # the recipe's rate: better than the baseline, no warning
    assert good.metrics["valid_rmse"] < good._baseline_rmse()


def test_use_nn_is_fastais_name_for_the_nn_model(split):
    train, _ = split
    learner = collab_learner(train, use_nn=True, layers=(100, 50), y_range=(0, 5.5),
                             options=QUIET)  # fmt: skip
    assert isinstance(learner.model_config, NNConfig)
    assert learner.model_config.layers == (100, 50)
    assert learner.model_config.y_range == (0.0, 5.5)
    assert isinstance(collab_learner(train, model="nn", use_nn=True).model_config, NNConfig)
    custom = collab_learner(train, model=NNConfig(layers=(8,)), use_nn=True)
    assert custom.model_config.layers == (8,)
    with pytest.raises(ConfigError, match="use_nn=True is fastai's model='nn'"):
        collab_learner(train, model="bayes", use_nn=True)
    with pytest.raises(ConfigError, match="contradicts model=DotConfig"):
        collab_learner(train, model=DotConfig(), use_nn=True)


def test_the_lessons_spelling_of_the_dot_model_works(split):
    train, _ = split
    learner = collab_learner(train, n_factors=50, y_range=(0, 5.5), options=QUIET)
    assert learner.model_config.n_factors == 50 and learner.model_config.y_range == (0.0, 5.5)
