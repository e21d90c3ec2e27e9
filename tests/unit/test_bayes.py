"""Bayesian MF by Gibbs sampling: planted structure, exact draws, samples, fold-in."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from collabfilter import generate_ratings, load_movielens_fold, split_random
from collabfilter.config import config_from_dict, config_to_dict
from collabfilter.errors import ConfigError, DataError, NotFittedError
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.models import BayesConfig, BayesMFConfig
from collabfilter.models.bayes import BayesianMF
from collabfilter.models.bayes.gaussian import ConjugateGradientDraw, SpectralDraw
from collabfilter.models.bayes.gibbs import GibbsSampler, kept_sweeps, run_gibbs

FAST = BayesConfig(sweeps=60, burn_in=10)


def tensors(ratings):
    return (
        torch.from_numpy(ratings.user_idx).long(),
        torch.from_numpy(ratings.item_idx).long(),
        torch.from_numpy(ratings.rating).float(),
    )


def fit(train, config=FAST, seed=0, **options):
    options.setdefault("rating_range", (train.scale.low, train.scale.high))
    generator = torch.Generator().manual_seed(seed)
    return run_gibbs(
        *tensors(train), train.n_users, train.n_items, config, generator=generator, **options
    )


def rmse(model, ratings):
    users, items, truth = tensors(ratings)
    with torch.inference_mode():
        return float(((model(users, items) - truth) ** 2).mean().sqrt())


def baseline_rmse(train, valid):
    predictions = BiasBaseline().fit(train).predict_ratings(valid)
    return float(np.sqrt(np.mean((predictions - valid.rating) ** 2)))


SHAPES = {
    "small dense": dict(n_users=200, n_items=200, n_ratings=9_000, n_factors=4, noise_std=0.5),
    "long-tailed sparse": dict(
        n_users=400, n_items=900, n_ratings=16_000, n_factors=4, noise_std=0.5,
        popularity_exponent=1.2,
    ),
    "half stars": dict(
        n_users=200, n_items=300, n_ratings=12_000, n_factors=4, noise_std=0.5, half_stars=True
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(SHAPES))
def planted(request):
    synthetic = generate_ratings(**SHAPES[request.param], seed=5)
    split = split_random(synthetic.ratings, 0.1, seed=2)
    return synthetic, split, fit(split.train)


def test_learns_the_planted_structure(planted):
    synthetic, (train, valid), model = planted
    achieved = rmse(model, valid)
    reference = synthetic.truth.reference_rmse(train, valid)
    assert achieved < baseline_rmse(train, valid) - 0.08
    assert achieved < reference + 0.045
    popular = train.item_counts() >= 30
    learned = model.item_effect().numpy()[popular]
    assert np.corrcoef(learned, synthetic.truth.item_bias[popular])[0, 1] > 0.8


def test_predictive_intervals_cover_about_their_nominal_share(planted):
    _, (_, valid), model = planted
    users, items, truth = tensors(valid)
    mean, spread, predictive = model.predict_with_uncertainty(users, items)
    assert bool((predictive > spread).all()) and bool((spread > 0).all())
    for nominal in (0.8, 0.9, 0.95):
        z = math.sqrt(2) * torch.special.erfinv(torch.tensor(nominal)).item()
        covered = float(((truth - mean).abs() <= z * predictive).float().mean())
        assert abs(covered - nominal) < 0.04, (nominal, covered)


def test_kept_samples_average_to_the_wide_dot_product():
    synthetic = generate_ratings(**SHAPES["small dense"], seed=1)
    train = synthetic.ratings
    config = BayesConfig(sweeps=12, burn_in=4, thin=2)
    sampler = GibbsSampler(
        *tensors(train), train.n_users, train.n_items, config, torch.Generator().manual_seed(3),
        rating_range=(-100.0, 100.0),
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    # more pairs than one chunk of BayesianMF's forward (2**22 / 52 columns = 80,659)
    users = torch.randint(0, train.n_users, (100_000,), generator=generator)
    items = torch.randint(0, train.n_items, (100_000,), generator=generator)
    per_sample = []
    for sweep in range(1, config.sweeps + 1):
        sampler.sweep()
        if sweep in kept_sweeps(config, train.n_users, train.n_items, 10):
            per_sample.append(sampler.predict(users, items))
    model = fit(train, config, seed=3, rating_range=(-100.0, 100.0))
    assert model.n_samples == len(per_sample) == 4
    expected = torch.stack(per_sample).mean(0)
    assert torch.allclose(model(users, items), expected, atol=1e-5)
    scores = model.score_items(users[:4])
    assert torch.allclose(scores[torch.arange(4), items[:4]], expected[:4], atol=1e-5)
    mean, _, _ = model.predict_with_uncertainty(users, items)
    assert torch.allclose(mean, expected, atol=1e-5)


def test_same_seed_same_samples_other_seed_other_samples():
    train = generate_ratings(**SHAPES["small dense"], seed=2).ratings
    config = BayesConfig(sweeps=8, burn_in=2)
    first, again, other = fit(train, config, 4), fit(train, config, 4), fit(train, config, 5)
    assert torch.equal(first.user_rows, again.user_rows)
    assert torch.equal(first.implicit_item_rows, again.implicit_item_rows)
    assert not torch.equal(first.user_rows, other.user_rows)


def test_runs_report_every_sweep_and_average_kept_samples():
    synthetic = generate_ratings(**SHAPES["small dense"], seed=3)
    train, valid = split_random(synthetic.ratings, 0.1, seed=1)
    records = []
    model = fit(train, BayesConfig(sweeps=30, burn_in=5), valid=tensors(valid),
                on_sweep=lambda *record: records.append(record))  # fmt: skip
    assert [r[0] for r in records] == list(range(1, 31))
    assert records[-1][1] < records[0][1] and records[-1][2] < records[0][2]
    assert records[-1][2] == pytest.approx(rmse(model, valid), abs=1e-5)


def test_fold_in_predicts_a_held_out_user_better_than_the_baseline():
    synthetic = generate_ratings(
        n_users=400, n_items=300, n_ratings=24_000, n_factors=4, noise_std=0.4, seed=8
    )
    ratings = synthetic.ratings
    held_out = np.arange(20)  # 20 users, none of whose ratings are trained on
    mask = np.isin(ratings.user_idx, held_out)
    train = ratings.subset(np.flatnonzero(~mask))
    model = fit(train, BayesConfig(sweeps=40, burn_in=10))
    baseline = BiasBaseline().fit(train)
    errors, baseline_errors = [], []
    for user in held_out:
        rows = np.flatnonzero(ratings.user_idx == user)
        shown, hidden = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        user = model.fold_in(
            torch.from_numpy(ratings.item_idx[shown]).long(),
            torch.from_numpy(ratings.rating[shown]),
            None,  # the Bayesian fold-in needs nothing of the training beyond the samples
        )
        scores = model.score_folded(user)
        predicted = scores[torch.from_numpy(ratings.item_idx[hidden]).long()].numpy()
        errors.append(predicted - ratings.rating[hidden])
        unknown_user = baseline.global_mean_ + baseline.item_bias_[ratings.item_idx[hidden]]
        baseline_errors.append(unknown_user - ratings.rating[hidden])
    ours = np.sqrt(np.mean(np.concatenate(errors) ** 2))
    theirs = np.sqrt(np.mean(np.concatenate(baseline_errors) ** 2))
    assert ours < theirs - 0.1


def test_state_dict_rebuilds_from_shapes_and_config():
    train = generate_ratings(**SHAPES["small dense"], seed=4).ratings
    config = BayesConfig(sweeps=6, burn_in=2)
    model = fit(train, config, n_factors=3)
    data = save(model.state_dict())
    rebuilt = BayesianMF.from_spec(model.spec())
    rebuilt.load_state_dict(load(data), strict=True)
    users, items = torch.tensor([1, 2]), torch.tensor([3, 4])
    assert torch.equal(rebuilt(users, items), model(users, items))
    assert rebuilt.item_vectors().shape == (train.n_items, 3)
    assert rebuilt.user_effect().shape == (train.n_users,)
    assert io.BytesIO(data).getbuffer().nbytes > 4 * model.n_samples * train.n_items * 5


def test_unfitted_model_and_bad_inputs_raise():
    with pytest.raises(NotFittedError):
        BayesianMF(3, 4, 2)(torch.tensor([0]), torch.tensor([0]))
    config = BayesConfig(sweeps=3, burn_in=1)
    generator = torch.Generator().manual_seed(0)
    users, items, rating = torch.tensor([0, 1]), torch.tensor([0, 5]), torch.tensor([1.0, 2.0])
    with pytest.raises(DataError, match="item_idx"):
        run_gibbs(users, items, rating, 2, 3, config, generator=generator)
    with pytest.raises(DataError, match="1-d"):
        run_gibbs(users, items[:1], rating, 2, 6, config, generator=generator)


@pytest.mark.parametrize("n_rows", [12, 5])  # M^T M or M M^T decomposed
def test_draws_of_the_implicit_embeddings_have_the_exact_law(n_rows):
    generator = torch.Generator().manual_seed(0)
    dense = (torch.rand(n_rows, 7, generator=generator) < 0.4).double()
    dense *= torch.rand(n_rows, 1, generator=generator)
    settings = torch.randn(7, 2, generator=generator, dtype=torch.float64)
    copies = 500  # each column setting repeated: one call draws 500 independent samples
    linear = settings.repeat_interleave(copies, 1)
    scale = torch.tensor([2.0, 0.5]).repeat_interleave(copies)
    ridge = torch.tensor([0.3, 4.0]).repeat_interleave(copies)
    with warnings.catch_warnings():  # torch's "CSR support is in beta" notice
        warnings.simplefilter("ignore", UserWarning)
        csr, csr_t = dense.to_sparse_csr(), dense.T.contiguous().to_sparse_csr()
    cg = ConjugateGradientDraw(csr, csr_t, (dense**2).sum(0), tol=1e-8, max_iter=50)
    start = torch.zeros_like(linear)
    spectral = SpectralDraw(dense)
    draws = {
        "spectral": lambda: spectral.draw(linear, scale, ridge, generator),
        "conjugate gradients": lambda: cg.draw(linear, scale, ridge, generator, start),
    }
    for draw in draws.values():
        samples = torch.cat([draw() for _ in range(4)], 1).view(7, 4, 2, copies)
        for d, (lam, kappa) in enumerate([(2.0, 0.3), (0.5, 4.0)]):
            precision = lam * dense.T @ dense + kappa * torch.eye(7, dtype=torch.float64)
            covariance = torch.linalg.inv(precision)
            mean = covariance @ settings[:, d]
            drawn = samples[:, :, d].reshape(7, -1)  # 2000 draws
            scale_of = covariance.diagonal().sqrt()
            error_of_mean = (drawn.mean(1) - mean) / scale_of
            error_of_covariance = (drawn.cov() - covariance) / torch.outer(scale_of, scale_of)
            assert error_of_mean.abs().max() < 0.1  # about 5 standard errors
            assert error_of_covariance.abs().max() < 0.12


def test_both_embedding_draws_run_in_the_sampler():
    synthetic = generate_ratings(**SHAPES["small dense"], seed=6)
    train, valid = split_random(synthetic.ratings, 0.1, seed=1)
    exact = fit(train, BayesConfig(sweeps=30, burn_in=10))
    iterative = fit(train, BayesConfig(sweeps=30, burn_in=10, exact_max_rows=0))
    assert abs(rmse(exact, valid) - rmse(iterative, valid)) < 0.02


def test_byte_budget_thins_the_kept_samples():
    config = BayesConfig(sweeps=100, burn_in=20, max_kept=50)
    assert len(kept_sweeps(config, 10, 10, 10)) == 50
    per_sample = BayesianMF.bytes_per_sample(1000, 2000, 10)
    tight = BayesConfig(sweeps=100, burn_in=20, max_kept_bytes=10 * per_sample)
    schedule = kept_sweeps(tight, 1000, 2000, 10)
    assert len(schedule) == 10 and schedule[-1] == 100 and schedule[0] == 21


@pytest.mark.parametrize(
    "changes",
    [
        {"sweeps": 0}, {"burn_in": 200}, {"thin": 0}, {"max_kept": 0},
        {"burn_in": 199, "thin": 2}, {"noise_shape": 0.0}, {"hyper_rate": -1.0},
        {"cg_tol": 0.0}, {"exact_max_rows": -1},
    ],
)  # fmt: skip
def test_config_refuses_bad_values(changes):
    with pytest.raises(ConfigError):
        BayesConfig(**changes)


def test_config_round_trips_through_dicts():
    config = BayesConfig(burn_in=7, hyper_rate=0.3)
    assert config_from_dict(BayesConfig, config_to_dict(config)) == config
    sizes = BayesMFConfig(n_factors=12, implicit=False)
    assert config_from_dict(BayesMFConfig, config_to_dict(sizes)) == sizes


@pytest.mark.realdata
def test_ml100k_u1_rmse(ml100k_dir):
    split = load_movielens_fold("u1", path=ml100k_dir)
    model = fit(split.train, BayesConfig(sweeps=80, burn_in=10))
    assert rmse(model, split.valid) < 0.897


def test_bayes_is_a_full_member_of_the_library(tmp_path):
    """collab_learner(model="bayes"): sweeps in the epoch table, predictions with
    intervals, recommendations with their spread, fold-in, interpretation."""
    from collabfilter import generate_ratings, split_random
    from collabfilter.config import RunOptions
    from collabfilter.errors import ConfigError
    from collabfilter.interpret import item_biases, similar_items
    from collabfilter.recommend import recommend, recommend_new_user
    from collabfilter.train import collab_learner

    synthetic = generate_ratings(150, 200, 6000, n_factors=3, seed=3)
    train, valid = split_random(synthetic.ratings, 0.1, seed=2)
    learner = collab_learner(train, valid, model="bayes", n_factors=4,
                             config=BayesConfig(sweeps=20, burn_in=3),
                             options=RunOptions(progress=False))  # fmt: skip
    records = learner.fit_recipe()
    assert [r.epoch for r in records] == list(range(1, 21)) and learner.model.n_factors == 4
    assert records[-1].valid_rmse == pytest.approx(learner.metrics["valid_rmse"], rel=1e-4)
    with pytest.raises(ConfigError, match="fit_recipe"):
        learner.fit_one_cycle(1, 0.1)
    users, items = valid.users.ids[valid.user_idx], valid.items.ids[valid.item_idx]
    table = learner.predict_with_uncertainty(users, items, level=0.9)
    assert np.allclose(table.prediction, learner.predict_ratings(valid), atol=1e-5)
    assert ((table.low <= table.prediction) & (table.prediction <= table.high)).all()
    assert (table.predictive_std > table["std"]).all()
    lists = recommend(learner, users[:3], k=5).to_frame(learner)
    assert "+/- std" in lists.columns and (lists["+/- std"] > 0).all()
    assert lists.predicted.max() <= train.scale.high
    picks = recommend_new_user(learner, {1: 5.0, 2: 1.0}, k=4)
    assert len(picks) == 4 and not {1, 2} & set(picks.item.tolist())
    assert len(similar_items(learner, 3, k=4)) == 4
    biases = item_biases(learner, among=None)
    truth = synthetic.truth.item_bias[learner.items.index(biases.item)]
    assert np.corrcoef(biases.bias, truth)[0, 1] > 0.5
