"""Training throughput and memory at scale: 10M synthetic ratings, ml-25m's shape.

Usage: python benchmarks/bench_scale.py [--ratings N] [--epochs E]

The data (162,541 users, 59,047 items, planted rank-8 structure, long-tailed
popularity) is generated once into benchmarks/.work. A fresh process then loads it,
holds out 5% at random, and trains DotProductBias with 64 factors (the
``dot_bias_large`` recipe), printing per-epoch time and ratings/s, the process's peak
memory, and the validation RMSE beside two figures the generator knows: the noise floor
(the RMSE of the true parameters) and a Bayesian reference that has to learn each
side's parameters from these training ratings, knowing the generator's priors and the
other side's true parameters (``SyntheticTruth.reference_rmse``): the gap between
these two is the price of learning from ~60 ratings per user, which no model avoids.
Also printed: the same on the items with at least 50 training ratings.

The recipe was chosen on a 5% validation part carved out of the training part
(``--tune`` prints that table); the validation part scored here is never used for it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from collabfilter import Ratings, generate_ratings, split_random
from collabfilter.config import RECIPES, RunOptions
from collabfilter.data.synthetic import ML25M_SHAPE, SyntheticTruth
from collabfilter.train import collab_learner
from common import WORK, gib, machine_header, run_isolated


def prepare(n_ratings: int) -> tuple[Path, Path]:
    """Generate the ratings (parquet) and the truth (npz) unless already there."""
    path = WORK / f"scale-{n_ratings}.parquet"
    truth_path = path.with_suffix(".truth.npz")
    if not (path.exists() and truth_path.exists()):
        WORK.mkdir(parents=True, exist_ok=True)
        shape = dict(ML25M_SHAPE, n_ratings=n_ratings)
        synthetic = generate_ratings(**shape, seed=0)
        synthetic.ratings.to_parquet(path)
        truth = synthetic.truth
        np.savez(
            truth_path, global_mean=truth.global_mean, user_bias=truth.user_bias,
            item_bias=truth.item_bias, user_factors=truth.user_factors,
            item_factors=truth.item_factors, noise_std=truth.noise_std,
        )  # fmt: skip
    return path, truth_path


def load_truth(truth_path: Path, ratings: Ratings) -> SyntheticTruth:
    stored = np.load(truth_path)
    return SyntheticTruth(
        float(stored["global_mean"]), stored["user_bias"], stored["item_bias"],
        stored["user_factors"], stored["item_factors"], float(stored["noise_std"]),
        ratings.scale,
    )  # fmt: skip


def train(path: Path, truth_path: Path, epochs: int | None) -> dict[str, object]:
    ratings = Ratings.from_parquet(path, scale=(1, 5))
    split = split_random(ratings, 0.05, seed=1, keep_known=False)
    del ratings
    model_config, recipe = RECIPES["dot_bias_large"]
    config = replace(recipe, epochs=epochs or recipe.epochs)
    learner = collab_learner(
        split.train, None, model=model_config, config=config, options=RunOptions(progress=False)
    )
    start = time.perf_counter()
    history = learner.fit_recipe()
    seconds = time.perf_counter() - start
    predictions = learner.predict_ratings(split.valid)
    truth = load_truth(truth_path, split.train)
    valid = split.valid
    sampled = split.train.item_counts()[valid.item_idx] >= 50
    errors = (predictions - valid.rating) ** 2
    return {
        "rmse_sampled": float(np.sqrt(np.mean(errors[sampled]))),
        "floor_sampled": truth.noise_floor(valid.user_idx[sampled], valid.item_idx[sampled]),
        "share_sampled": float(sampled.mean()),
        "n_train": len(split.train),
        "epoch_seconds": [r.seconds for r in history],
        "train_loss": [r.train_loss for r in history],
        "seconds": seconds,
        "rmse": float(np.sqrt(np.mean((predictions - valid.rating) ** 2))),
        "floor": truth.noise_floor(valid.user_idx, valid.item_idx),
        "reference": truth.reference_rmse(split.train, valid),
        "n_factors": model_config.n_factors,
        "mean_baseline": float(np.sqrt(np.mean((split.train.rating.mean() - valid.rating) ** 2))),
        "batch_size": config.batch_size,
    }


TUNING: dict[str, dict[str, object]] = {
    "dot_bias_large": {},
    "one rate for all rows (rate_exponent 0)": {"rate_exponent": 0.0},
    "one rate, lr 0.08, decay 0.03/0.04": {
        "rate_exponent": 0.0, "lr": 0.08, "weight_decay": 0.03, "item_weight_decay": 0.04,
    },
    "one rate, batch 8192, lr 0.04": {"rate_exponent": 0.0, "batch_size": 8192, "lr": 0.04},
    "rate_exponent 0.7": {"rate_exponent": 0.7},
    "lr 0.14": {"lr": 0.14},
    "lr 0.28": {"lr": 0.28},
    "decay 0.08/0.10": {"weight_decay": 0.08, "item_weight_decay": 0.1},
    "decay 0.045/0.06": {"weight_decay": 0.045, "item_weight_decay": 0.06},
    "10 epochs": {"epochs": 10},
}  # fmt: skip


def tune(path: Path, truth_path: Path) -> None:
    """Each candidate's RMSE on 5% carved out of the training part (validation unused)."""
    ratings = Ratings.from_parquet(path, scale=(1, 5))
    outer = split_random(ratings, 0.05, seed=1, keep_known=False)
    del ratings
    train, carved = split_random(outer.train, 0.05, seed=7, keep_known=False)
    del outer
    truth = load_truth(truth_path, train)
    print(f"{'noise floor':44s} {truth.noise_floor(carved.user_idx, carved.item_idx):.4f}")
    print(f"{'Bayesian reference':44s} {truth.reference_rmse(train, carved):.4f}", flush=True)
    model_config, recipe = RECIPES["dot_bias_large"]
    for label, changes in TUNING.items():
        learner = collab_learner(
            train, None, model=model_config, config=replace(recipe, **changes),  # type: ignore[arg-type]
            options=RunOptions(progress=False),
        )  # fmt: skip
        start = time.perf_counter()
        learner.fit_recipe()
        seconds = time.perf_counter() - start
        errors = learner.predict_ratings(carved) - carved.rating
        print(f"{label:44s} {np.sqrt(np.mean(errors**2)):.4f}  ({seconds:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--tune", action="store_true", help="print the recipe's tuning table")
    args = parser.parse_args()
    print(machine_header("collabfilter training at scale (synthetic, ml-25m shape)"))
    start = time.perf_counter()
    path, truth_path = prepare(args.ratings)
    print(f"data: {path} ({time.perf_counter() - start:.1f} s to prepare)")
    if args.tune:
        print("recipe candidates, RMSE on 5% carved out of the training part:")
        run_isolated(tune, path, truth_path)
        return
    result, _, peak = run_isolated(train, path, truth_path, args.epochs)
    n = result["n_train"]
    print(
        f"DotProductBias ({result['n_factors']} factors), recipe dot_bias_large, batch "
        f"{result['batch_size']:,}, {n:,} training ratings"
    )
    print(f"{'epoch':>5} {'seconds':>8} {'M ratings/s':>12} {'train MSE':>10}")
    for k, (s, loss) in enumerate(
        zip(result["epoch_seconds"], result["train_loss"], strict=True), 1
    ):
        print(f"{k:5d} {s:8.2f} {n / s / 1e6:12.2f} {loss:10.4f}")
    print(f"peak memory of the training process (load, split, train): {gib(peak)}")
    print(
        f"validation RMSE {result['rmse']:.4f}; noise floor {result['floor']:.4f}; Bayesian "
        f"reference {result['reference']:.4f}; global-mean baseline {result['mean_baseline']:.4f}"
    )
    print(
        f"on the {result['share_sampled']:.0%} of validation ratings whose item has >= 50 "
        f"training ratings: RMSE {result['rmse_sampled']:.4f}, noise floor "
        f"{result['floor_sampled']:.4f}"
    )


if __name__ == "__main__":
    main()
