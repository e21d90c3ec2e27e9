"""Training throughput and memory at scale: 10M synthetic ratings, ml-25m's shape.

Usage: python benchmarks/bench_scale.py [--ratings N] [--epochs E]

The data (162,541 users, 59,047 items, planted rank-8 structure, long-tailed
popularity) is generated once into benchmarks/.work. A fresh process then loads it,
holds out 5% at random, and trains DotProductBias with 64 factors, printing per-epoch
time and ratings/s, the process's peak memory, and the validation RMSE beside the
noise floor the generator knows (overall, and on items with at least 50 training
ratings: the long tail of rarely rated items cannot be learned by any model).

Recipe at this scale: the default one with batches of 32,768 (fewer, larger steps
for 10M ratings), lr 0.08 and lighter weight decay (0.03 users, 0.04 items), chosen
on a 5% validation part of the synthetic training data.
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


def train(path: Path, truth_path: Path, epochs: int) -> dict[str, object]:
    ratings = Ratings.from_parquet(path, scale=(1, 5))
    split = split_random(ratings, 0.05, seed=1, keep_known=False)
    del ratings
    model_config, recipe = RECIPES["dot_bias"]
    records: list[str] = []

    def show(record: object) -> None:
        records.append(str(record))

    config = replace(
        recipe, epochs=epochs, batch_size=32_768, lr=0.08, weight_decay=0.03,
        item_weight_decay=0.04,
    )  # fmt: skip
    learner = collab_learner(
        split.train, None, model=replace(model_config, n_factors=64), config=config,
        options=RunOptions(progress=False),
    )  # fmt: skip
    start = time.perf_counter()
    history = learner.fit_recipe()
    seconds = time.perf_counter() - start
    predictions = learner.predict_ratings(split.valid)
    stored = np.load(truth_path)
    truth = SyntheticTruth(
        float(stored["global_mean"]), stored["user_bias"], stored["item_bias"],
        stored["user_factors"], stored["item_factors"], float(stored["noise_std"]),
        split.train.scale,
    )  # fmt: skip
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
        "mean_baseline": float(np.sqrt(np.mean((split.train.rating.mean() - valid.rating) ** 2))),
        "batch_size": config.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    print(machine_header("collabfilter training at scale (synthetic, ml-25m shape)"))
    start = time.perf_counter()
    path, truth_path = prepare(args.ratings)
    print(f"data: {path} ({time.perf_counter() - start:.1f} s to prepare)")
    result, _, peak = run_isolated(train, path, truth_path, args.epochs)
    n = result["n_train"]
    print(f"DotProductBias, 64 factors, batch {result['batch_size']}, {n:,} training ratings")
    print(f"{'epoch':>5} {'seconds':>8} {'M ratings/s':>12} {'train MSE':>10}")
    for k, (s, loss) in enumerate(
        zip(result["epoch_seconds"], result["train_loss"], strict=True), 1
    ):
        print(f"{k:5d} {s:8.2f} {n / s / 1e6:12.2f} {loss:10.4f}")
    print(f"peak memory of the training process (load, split, train): {gib(peak)}")
    print(
        f"validation RMSE {result['rmse']:.4f}; noise floor {result['floor']:.4f}; "
        f"global-mean baseline {result['mean_baseline']:.4f}"
    )
    print(
        f"on the {result['share_sampled']:.0%} of validation ratings whose item has >= 50 "
        f"training ratings: RMSE {result['rmse_sampled']:.4f}, noise floor "
        f"{result['floor_sampled']:.4f}"
    )


if __name__ == "__main__":
    main()
