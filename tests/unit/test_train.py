"""Training on planted structure: the engine learns what was planted, reproducibly."""

import contextlib
import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from collabfilter import generate_ratings, split_random
from collabfilter.config import RunOptions
from collabfilter.data.interactions import Interactions
from collabfilter.errors import (
    CollabFilterWarning,
    ConfigError,
    DataWarning,
    TrainingDivergedError,
    UnknownIdError,
)
from collabfilter.models import RECIPES, DotProduct, DotProductBias, TrainConfig
from collabfilter.models.dot.steps import choose_form
from collabfilter.sgd import order as shuffle
from collabfilter.sgd.decay import side_rates
from collabfilter.sgd.optim import RowOptimizer
from collabfilter.train import Learner, collab_learner
from collabfilter.train.lr_find import suggest
from collabfilter.train.tuning import choose_decay

QUIET = RunOptions(progress=False, seed=3)


@pytest.fixture(scope="module")
def planted():
    synthetic = generate_ratings(300, 400, 24_000, n_factors=4, noise_std=0.5, seed=11)
    split = split_random(synthetic.ratings, 0.1, seed=1)
    return synthetic, split


def rmse(learner, ratings):
    return float(np.sqrt(np.mean((learner.predict_ratings(ratings) - ratings.rating) ** 2)))


def test_default_recipe_learns_the_planted_structure(planted):
    synthetic, (train, valid) = planted
    learner = collab_learner(train, valid, options=QUIET)
    records = learner.fit_recipe()
    assert records[-1].train_loss < records[0].train_loss
    truth = synthetic.truth
    floor = truth.noise_floor(valid.user_idx, valid.item_idx)
    baseline = float(np.sqrt(np.mean((train.rating.mean() - valid.rating) ** 2)))
    achieved = rmse(learner, valid)
    assert achieved < floor + 0.12 and achieved < 0.8 * baseline
    learned = learner.model.item_bias.detach().numpy()
    popular = train.item_counts() >= 20
    assert np.corrcoef(learned[popular], truth.item_bias[popular])[0, 1] > 0.7


@pytest.mark.parametrize("rate_exponent", [0.0, 0.5])
@pytest.mark.parametrize("form", ["compiled", "gather"])
def test_closed_form_steps_match_the_autograd_step(planted, rate_exponent, form):
    _, (train, valid) = planted
    config = replace(RECIPES["dot_bias"][1], epochs=2, rate_exponent=rate_exponent)
    models = []
    for step in (form, "autograd"):
        torch.manual_seed(0)
        model = DotProductBias(train.n_users, train.n_items, 8)
        Learner(model, train, config=config, options=replace(QUIET, step=step)).fit_recipe()
        models.append(model)
    for name, value in models[0].state_dict().items():
        assert torch.allclose(value, models[1].state_dict()[name], atol=1e-5), name


DOT_CASES = {
    "dot, no range": lambda n, m: DotProduct(n, m, 8, init_std=0.1),
    "dot in a range": lambda n, m: DotProduct(n, m, 8, y_range=(0.5, 5.5), init_std=0.1),
    "biases, no prior": lambda n, m: DotProductBias(n, m, 8, activity_prior=False),
    "biases and prior": lambda n, m: DotProductBias(n, m, 8),
}


@pytest.mark.parametrize(
    ("rate_exponent", "block"), [(0.0, 1), (0.5, 1), (0.5, 8)], ids=["exact", "rates", "blocked"]
)
@pytest.mark.parametrize("case", sorted(DOT_CASES))
@pytest.mark.parametrize("threads", [1, 2])
def test_the_compiled_step_matches_the_gather_scatter_step(planted, threads, case, rate_exponent,
                                                          block):  # fmt: skip
    """The compiled loop, on one thread or two, and the gather/index_add form draw the
    same batches and must leave the same weights, in exact and in blocked epoch orders,
    for every dot model."""
    _, (train, valid) = planted
    lr = 0.04 if case.startswith("biases") else 0.005  # no sigmoid: smaller steps
    config = replace(
        RECIPES["dot_bias"][1], epochs=2, lr=lr, rate_exponent=rate_exponent, batch_size=2048
    )
    models = []
    for step in ("compiled", "gather"):
        torch.manual_seed(0)
        model = DOT_CASES[case](train.n_users, train.n_items)
        with torch.no_grad():  # biases away from zero so that their decay matters
            for name, param in model.named_parameters():
                if name.endswith("bias"):
                    param.normal_(0, 0.3)
        options = replace(QUIET, step=step, shuffle_block=block)
        learner = Learner(model, train, valid, config=config, options=options)
        with torch_threads(threads):
            history = learner.fit_recipe()
        assert history[-1].train_loss < history[0].train_loss
        models.append(model)
    for name, value in models[0].state_dict().items():
        assert torch.allclose(value, models[1].state_dict()[name], atol=2e-5), name


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


THREADS_SCRIPT = """
import torch
torch.set_num_threads(1)
from collabfilter import generate_ratings
from collabfilter.config import RunOptions
from collabfilter.train import collab_learner
import numba
ratings = generate_ratings(200, 100, 4000, seed=0).ratings
collab_learner(ratings, options=RunOptions(progress=False, step="compiled")).fit(1)
print(torch.get_num_threads(), numba.get_num_threads())
"""


def test_the_compiled_step_keeps_the_callers_thread_setting():
    """numba's OpenMP threads start on the first compiled step and reset the runtime's
    thread count, which torch shares: the caller's ``torch.set_num_threads`` must hold
    (a fresh process: the reset happens once per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "1"]


def test_a_fit_never_builds_the_csr_copy_of_the_ratings(planted, monkeypatch):
    """The step holds its own copy of the ratings: the CSR form is built on first use
    only (recommending, saving), not to read the scale in each epoch's validation."""
    _, (train, valid) = planted
    built = []
    monkeypatch.setattr(Interactions, "from_ratings",
                        classmethod(lambda cls, ratings: built.append(len(ratings))))  # fmt: skip
    learner = collab_learner(train, valid, options=QUIET)
    learner.fit_recipe()
    assert built == []
    monkeypatch.undo()
    assert learner.interactions.n_users == train.n_users


LAYER_SCRIPT = """
import numba
from collabfilter import generate_ratings
from collabfilter.data.interactions import Interactions
Interactions.from_ratings(generate_ratings(200, 100, 4000, seed=0).ratings)
print(numba.threading_layer())
"""


def test_numba_runs_on_a_thread_safe_layer_whichever_compiled_call_comes_first():
    """The layer must be chosen before numba's threads start: a run that first sets the
    thread count, then compiles, would silently keep the first layer of the priority."""
    env = {**os.environ, "NUMBA_THREADING_LAYER_PRIORITY": "workqueue omp tbb"}
    done = subprocess.run([sys.executable, "-c", LAYER_SCRIPT], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() in (["omp"], ["tbb"])


@pytest.mark.parametrize("block", [1, 16])
def test_the_compiled_step_gives_the_same_weights_on_any_number_of_threads(planted, block):
    """Each row takes its updates in the batch's order and the loss is summed in fixed
    chunks, so a seeded run is reproducible bit for bit whatever the threads."""
    _, (train, _) = planted
    config = replace(RECIPES["dot_bias"][1], epochs=2, batch_size=1024, tune_decay=False)
    runs = []
    for threads in (1, 2, 1):
        options = replace(QUIET, step="compiled", shuffle_block=block)
        learner = collab_learner(train, None, config=config, options=options)
        with torch_threads(threads):
            history = learner.fit_recipe()
        runs.append((learner.model.state_dict(), [r.train_loss for r in history]))
    for state, losses in runs[1:]:
        assert losses == runs[0][1]
        for name, value in state.items():
            assert torch.equal(value, runs[0][0][name]), name


def test_blocked_epoch_orders_learn_as_well(planted):
    """Large data is visited in permuted blocks of ratings; here asked for on small
    data, the default recipe must reach the same accuracy as with exact permutations."""
    _, (train, valid) = planted
    achieved = {}
    for block in (1, 32):
        learner = collab_learner(train, valid, options=replace(QUIET, shuffle_block=block))
        learner.fit_recipe()
        achieved[block] = rmse(learner, valid)
    assert shuffle.block_size(2**20, 8192) == 32
    exact, blocked = achieved.values()
    assert blocked != exact and abs(blocked - exact) < 0.01


def test_the_step_form_is_an_explicit_choice(planted):
    _, (train, _) = planted
    learner = Learner(DotProduct(train.n_users, train.n_items, 4), train)
    tensors, config = learner.train_tensors, TrainConfig()
    assert choose_form(learner.model, config, tensors, "auto") == "compiled"
    double = DotProduct(train.n_users, train.n_items, 4).double()
    assert choose_form(double, config, tensors, "auto") == "gather"  # not float32
    with pytest.raises(ConfigError, match="float32 CPU tables"):
        Learner(double, train, options=replace(QUIET, step="compiled")).fit(1)
    adam = replace(config, optimizer="adam")
    assert choose_form(learner.model, adam, tensors, "auto") == "autograd"
    with pytest.raises(ConfigError, match="step='gather' trains by plain sgd"):
        choose_form(learner.model, adam, tensors, "gather")
    for retired in ("fast", "sparse"):
        with pytest.raises(ConfigError, match="step must be one of"):
            RunOptions(step=retired)  # type: ignore[arg-type]


def test_row_rates_fall_with_crowding_in_a_batch(planted):
    _, (train, _) = planted
    config = TrainConfig(rate_exponent=0.5, batch_size=len(train) // 4)
    counts = {
        "user": torch.from_numpy(train.user_counts()),
        "item": torch.from_numpy(train.item_counts()),
    }
    rates = side_rates(config, counts, len(train) // 4)
    for side, side_counts in counts.items():
        expected_in_batch = side_counts.numpy() * (len(train) // 4) / len(train)
        assert np.allclose(rates[side].numpy() * np.sqrt(1 + expected_in_batch), 1.0)
    assert side_rates(TrainConfig(rate_exponent=0.0), counts, 100) == {}


def test_same_seed_same_numbers(planted):
    _, (train, valid) = planted
    config = replace(RECIPES["dot_bias"][1], epochs=3)
    runs = [collab_learner(train, valid, config=config, options=QUIET) for _ in range(2)]
    histories = [[(r.train_loss, r.valid_loss) for r in run.fit_recipe()] for run in runs]
    assert histories[0] == histories[1]
    other = collab_learner(train, valid, config=config, options=replace(QUIET, seed=4))
    assert [(r.train_loss, r.valid_loss) for r in other.fit_recipe()] != histories[0]


def test_best_epoch_is_kept_and_early_stopping_stops(planted):
    _, (train, valid) = planted
    # no regularisation and a constant rate: validation loss turns up after ~9 epochs
    overfit = TrainConfig(epochs=15, lr=0.02, weight_decay=0.0, item_weight_decay=0.0,
                          bias_weight_decay=0.0, schedule="constant", batch_size=1024)  # fmt: skip
    honest = collab_learner(train, valid, config=overfit, n_factors=64, init_std=0.1, options=QUIET)
    history = honest.fit_recipe()
    losses = [r.valid_loss for r in history]
    best = int(np.argmin(losses))
    assert best < len(losses) - 1, "the run should overfit"
    # by default nothing is chosen on the validation ratings: the last epoch stays
    assert not honest.kept_best
    assert rmse(honest, valid) == pytest.approx(np.sqrt(losses[-1]), rel=1e-4)
    learner = collab_learner(
        train, valid, config=replace(overfit, keep_best=True), n_factors=64, init_std=0.1,
        options=QUIET,
    )  # fmt: skip
    assert [r.valid_loss for r in learner.fit_recipe()] == losses
    assert learner.best_epoch == history[best].epoch and learner.kept_best
    assert rmse(learner, valid) == pytest.approx(np.sqrt(losses[best]), rel=1e-4)
    stopping = collab_learner(
        train, valid, config=replace(overfit, early_stopping=2), n_factors=64, init_std=0.1,
        options=QUIET,
    )  # fmt: skip
    assert len(stopping.fit_recipe()) == best + 3


def test_divergence_raises_a_named_error(planted):
    _, (train, _) = planted
    torch.manual_seed(0)
    model = DotProduct(train.n_users, train.n_items, 8)  # no sigmoid to save it
    learner = Learner(model, train, config=TrainConfig(epochs=2, lr=50.0), options=QUIET)
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        learner.fit_recipe()


def test_lr_find_suggests_a_rate_and_restores_the_model(planted):
    _, (train, _) = planted
    learner = collab_learner(train, options=QUIET)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    result = learner.lr_find(num_steps=40)
    assert len(result.lrs) == len(result.losses) >= 3
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    for name, value in learner.model.state_dict().items():
        assert torch.equal(value, before[name])


SHAPES = {
    "ml-100k's shape": {},
    "long tail, half stars": {"n_users": 300, "n_items": 2000, "n_ratings": 20_000,
                              "half_stars": True, "popularity_exponent": 1.1,
                              "activity_exponent": 0.9},
    "noisy": {"n_users": 600, "n_items": 300, "n_ratings": 30_000, "noise_std": 1.0},
    "small": {"n_users": 60, "n_items": 200, "n_ratings": 3_000},
}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_lr_find_suggests_a_rate_where_the_loss_still_falls_near_its_minimum(shape):
    synthetic = generate_ratings(seed=8, **shape)
    train, _ = split_random(synthetic.ratings, 0.1, seed=1)
    result = collab_learner(train, options=QUIET).lr_find()
    assert result.problem is None
    smoothed, lrs = result.smoothed, result.lrs
    lowest = int(np.argmin(smoothed))
    at = int(np.flatnonzero(lrs == result.suggestion)[0])
    assert result.lowest == lrs[lowest] and result.minimum == pytest.approx(lrs[lowest] / 10)
    # before the minimum, never on the rising part; the first rate only if the curve
    # said so, and it does not here
    assert 0 < at <= lowest and smoothed[at] < smoothed[0]
    assert smoothed[at - 1] >= smoothed[at]  # the loss still falls there
    fall = smoothed[:lowest].max() - smoothed[lowest]
    assert smoothed[at] - smoothed[lowest] < 0.2 * fall  # near the bottom of the valley
    raw_rising = lrs[np.flatnonzero(result.losses > 2 * result.losses[: lowest + 1].min())]
    assert result.suggestion < raw_rising.min()
    steep = int(np.flatnonzero(lrs == result.steep)[0])
    assert 5 <= steep <= lowest  # not one of the first points, not past the minimum


def valley(rng, n=100, noise=0.05, low=-1.5, spikes=()):
    """A finder curve with a known shape: flat, falling to a minimum at 10^low, then
    rising steeply; Gaussian noise and optional spikes (single bad batches)."""
    lrs = np.logspace(-5, 0, n)
    x = np.log10(lrs)
    falling = 1.0 - 0.4 / (1 + np.exp(-(x - (low - 1)) * 3))
    losses = falling + np.where(x > low, 2.0 * (x - low) ** 2, 0.0) + rng.normal(0, noise, n)
    for position in spikes:
        losses[position] += 3.0
    return lrs, losses


def test_suggestions_are_robust_to_noise_and_single_bad_batches(rng):
    """Whatever the noise, the suggestion lands before the planted minimum (10^-1.5)
    and within a decade of it; a spike in the first batches never makes the first
    rate the steepest."""
    for seed in range(5):
        noise_rng = np.random.default_rng(seed)
        lrs, losses = valley(noise_rng, noise=0.05, spikes=(1, 40, 70))
        result = suggest(lrs, losses)
        assert 10**-2.5 <= result.suggestion <= 10**-1.3, seed
        assert result.steep > lrs[5] and result.steep <= result.lowest
        assert result.problem is None


def test_suggest_reports_curves_that_give_no_rate(rng):
    lrs = np.logspace(-5, 0, 100)
    rising = suggest(lrs, np.linspace(1.0, 3.0, 100) + rng.normal(0, 0.01, 100))
    assert rising.problem is not None and "start_lr" in rising.problem
    assert rising.suggestion == lrs[0]  # the curve says so
    still_falling = suggest(lrs, np.linspace(2.0, 1.0, 100) + rng.normal(0, 0.01, 100))
    assert still_falling.problem is not None and "end_lr" in still_falling.problem
    short = suggest(lrs[:5], np.ones(5))
    assert short.problem is None  # too few points to judge


def test_lr_find_warns_when_its_curve_gives_no_rate(planted):
    _, (train, _) = planted
    learner = collab_learner(train, options=QUIET)
    with pytest.warns(CollabFilterWarning, match="lowest among the first rates"):
        result = learner.lr_find(start_lr=0.5, end_lr=20.0, num_steps=60)
    assert result.problem is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "adam", "lr": 3e-3},
        {"optimizer": "adamw", "lr": 3e-3},
        {"optimizer": "sgd", "momentum": 0.5, "lr": 0.01},
        {"grad_clip": 1.0},
        {"schedule": "cosine"},
        {"rate_exponent": 1.0},
        {"optimizer": "adam", "lr": 3e-3, "rate_exponent": 0.5},
    ],
)
def test_every_optimizer_and_option_reduces_the_loss(planted, changes):
    _, (train, valid) = planted
    config = replace(RECIPES["dot_bias"][1], epochs=4, **changes)
    history = collab_learner(train, valid, config=config, options=QUIET).fit_recipe()
    assert history[-1].valid_loss < history[0].valid_loss


def test_neural_recipe_beats_the_mean(planted):
    _, (train, valid) = planted
    learner = collab_learner(train, valid, model="nn", options=QUIET)
    learner.fit_one_cycle(6)  # warns (an error here) if it ends below the bias baseline
    baseline = float(np.sqrt(np.mean((train.rating.mean() - valid.rating) ** 2)))
    assert rmse(learner, valid) < 0.9 * baseline
    assert list(learner.history_frame().columns) == [
        "epoch", "train_loss", "valid_loss", "valid_rmse", "seconds"
    ]  # fmt: skip


def test_predict_by_ids_and_titles_with_an_unknown_policy(planted):
    _, (train, valid) = planted
    titled = train.with_titles({1: "First", 2: "Second"})
    learner = collab_learner(
        titled, config=replace(RECIPES["dot_bias"][1], epochs=2), options=QUIET
    )
    by_id = learner.predict([5, 5], [1, 2])
    assert by_id.shape == (2,) and np.isfinite(by_id).all()
    assert np.allclose(learner.predict(5, ["First", "Second"]), by_id)
    with pytest.raises(UnknownIdError, match="unknown user"):
        learner.predict([99999], [1])
    with pytest.warns(DataWarning, match="1 of 2 pairs have an unknown user"):
        flagged = learner.predict([5, 99999], [1, 1], unknown="nan")
    assert np.isfinite(flagged[0]) and np.isnan(flagged[1])


@pytest.mark.parametrize(
    "shape",
    [
        {"n_users": 300, "n_items": 2000, "n_ratings": 20_000, "half_stars": True,
         "popularity_exponent": 1.1, "activity_exponent": 0.9},  # long tail, heavy users
        {"n_users": 600, "n_items": 300, "n_ratings": 30_000, "noise_std": 1.0},  # noisy
    ],
    ids=["long-tail", "noisy"],
)  # fmt: skip
def test_the_default_recipe_adapts_its_batch_and_decay_to_the_data(shape):
    synthetic = generate_ratings(n_factors=4, seed=8, **shape)
    train, valid = split_random(synthetic.ratings, 0.1, seed=1)
    learner = collab_learner(train, valid, options=QUIET)
    learner.fit_recipe()
    choice = learner.decay_choice
    assert choice is not None and {0.5, 1.0, 2.0} <= set(choice.scores)
    assert choice.scores[choice.multiplier] == min(
        r for m, r in choice.scores.items() if m not in choice.abandoned
    )
    assert learner.config.weight_decay == pytest.approx(0.1 * choice.multiplier)
    assert (
        not learner.config.tune_decay and learner.metrics["decay_multiplier"] == choice.multiplier
    )
    expected_batch = max(256, 2 ** round(np.log2(len(train) / 40)))  # ~40 steps per epoch
    assert RECIPES["dot_bias"][1].batch_for(len(train)) == expected_batch
    floor = synthetic.truth.noise_floor(valid.user_idx, valid.item_idx)
    reference = synthetic.truth.reference_rmse(train, valid)
    achieved = rmse(learner, valid)
    assert achieved < reference + 0.5 * (reference - floor) + 0.03


def test_adam_on_scalars_matches_the_tensor_step():
    """The compiled step moves the activity prior's two weights with ``step_scalars``;
    it must be the same Adam as the tensor path, and refuse what it does not do."""
    weights = [torch.nn.Parameter(torch.tensor([0.3, -0.2])) for _ in range(2)]
    tensor_path = RowOptimizer([("w", weights[0])], kind="sgd", lr=0.1, dense_lr=0.01)
    scalar_path = RowOptimizer([("w", weights[1])], kind="sgd", lr=0.1, dense_lr=0.01)
    for k in range(5):
        grad = [0.5 - 0.3 * k, 0.1 * k**2]
        weights[0].grad = torch.tensor(grad)
        tensor_path.step(0.5 + 0.1 * k)
        scalar_path.step_scalars(weights[1], grad, 0.5 + 0.1 * k)
    assert torch.allclose(weights[0], weights[1], atol=1e-7)
    square = torch.nn.Parameter(torch.zeros(2, 2))
    for optimizer, param, grad in [
        (RowOptimizer([("d", square)], lr=0.1, dense_decay=0.1), square, [0.0] * 4),
        (RowOptimizer([("c", weights[1])], lr=0.1, grad_clip=1.0), weights[1], [0.0] * 2),
        (RowOptimizer([("w", weights[1])], lr=0.1), weights[1], [0.0]),
    ]:
        with pytest.raises(ValueError, match="plain Adam steps of 1-D parameters"):
            optimizer.step_scalars(param, grad, 1.0)
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    RowOptimizer([("f", frozen)], lr=0.1).step_scalars(frozen, [1.0, 1.0], 1.0)
    assert torch.equal(frozen, torch.ones(2))


def test_the_decay_search_chooses_alike_when_it_scores_only_the_epochs_it_reads(planted):
    """Trials validate only at the checkpoints and the last epoch; validating after
    every epoch must give the very same choice and scores."""
    _, (train, _) = planted
    config = replace(RECIPES["dot_bias"][1], epochs=8)
    learner = collab_learner(train, options=QUIET)
    seen: list[frozenset[int] | None] = []
    choices = []
    for every in (False, True):

        def trial(module, part, trial_config, watch, scored, every=every):
            seen.append(scored)
            learner._trial(module, part, trial_config, watch, None if every else scored)

        model = copy.deepcopy(learner.model)
        choices.append(choose_decay(train, model, config, QUIET, trial))
    assert choices[0] == choices[1] and len(choices[0].scores) >= 3
    assert seen[0] == frozenset({5, 6, 8})  # 60% and 75% of 8 epochs, and the last
    early = replace(config, early_stopping=2)
    choose_decay(train, copy.deepcopy(learner.model), early, QUIET, trial)
    assert seen[-1] is None  # early stopping reads every epoch's score
