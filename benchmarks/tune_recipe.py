"""How the default DotProductBias recipe was chosen, without looking at held-out files.

Usage: python benchmarks/tune_recipe.py [--candidates N]

For each benchmark training file (the 90/10 split's train.csv and ml-100k's u1.base),
a validation part is carved out of the *training* file (10%/20% at random, seed 7),
every candidate recipe is trained on the rest and scored on that carved part, and the
candidates are ranked by their mean RMSE over both. The held-out files (valid.csv,
u1.test) are never read here. The candidates are a neighbourhood of the best found
by a random search with the same protocol (200 trials over factors, batch size,
epochs, rates, decays and their exponents, y_range and schedule).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from collabfilter import Ratings, split_random
from collabfilter.config import ModelConfig, RunOptions
from collabfilter.models import RECIPES, TrainConfig
from collabfilter.train import collab_learner
from common import SHARED, machine_header

NN_CANDIDATES: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "default": ({}, {}),
    "no dropout, decay 0.09/0.12": (
        {"dropout": 0.0},
        {"weight_decay": 0.09, "item_weight_decay": 0.12},
    ),
    "dropout 0.2": ({"dropout": 0.2}, {}),
    "hidden 128, dense lr 0.002": ({"layers": (128,)}, {"dense_lr": 0.002}),
    "embeddings 32": ({"user_size": 32, "item_size": 32}, {}),
    "25 epochs": ({}, {"epochs": 25}),
}

CANDIDATES: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    "default": ({}, {}),
    "25 epochs, lr 0.032": ({}, {"epochs": 25, "lr": 0.032}),
    "15 epochs, lr 0.05": ({}, {"epochs": 15, "lr": 0.05}),
    "48 factors": ({"n_factors": 48}, {}),
    "100 factors": ({"n_factors": 100}, {}),
    "batch 8192": ({}, {"batch_size": 8192}),
    "batch 8192, 100 factors": ({"n_factors": 100}, {"batch_size": 8192}),
    "batch 8192, 25 epochs": ({}, {"batch_size": 8192, "epochs": 25}),
    "batch 6144": ({}, {"batch_size": 6144}),
    "no activity prior": ({"activity_prior": False}, {}),
    "plain per-rating L2 (exponents 1)": (
        {},
        {"user_decay_exponent": 1.0, "item_decay_exponent": 1.0, "bias_decay_exponent": 1.0},
    ),
    "fastai y_range (0, 5.5)": ({"y_range": (0.0, 5.5)}, {}),
}


def carve(path: str, sep: str, header: bool, fraction: float) -> tuple[Ratings, Ratings]:
    names = None if header else ["user", "item", "rating", "timestamp"]
    ratings = Ratings.from_csv(path, sep=sep, header=header, names=names, scale=(1, 5))
    train, valid = split_random(ratings, fraction, seed=7, keep_known=False)
    return train, valid


def score(train: Ratings, valid: Ratings, model: ModelConfig, config: TrainConfig) -> float:
    learner = collab_learner(
        train, None, model=model, config=config, options=RunOptions(progress=False)
    )
    learner.fit_recipe()
    predictions = learner.predict_ratings(valid)
    return float(np.sqrt(np.mean((predictions - valid.rating) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="candidate names to run")
    parser.add_argument("--model", choices=["dot_bias", "nn"], default="dot_bias")
    args = parser.parse_args()
    print(
        machine_header(f"tuning the {args.model} recipe on validation carved from training files")
    )
    parts = {
        "90/10 train.csv": carve(str(SHARED / "splits/ml-100k-r90/train.csv"), ",", True, 0.1),
        "u1.base": carve(str(SHARED / "ml-100k/u1.base"), "\t", False, 0.2),
    }
    base_model, base_train = RECIPES[args.model]
    candidates = CANDIDATES if args.model == "dot_bias" else NN_CANDIDATES
    print(f"{'candidate':36s} " + " ".join(f"{name:>16s}" for name in parts) + f" {'mean':>8s}")
    for label, (model_changes, train_changes) in candidates.items():
        if args.only and label not in args.only:
            continue
        model = replace(base_model, **model_changes)  # type: ignore[arg-type]
        config = replace(base_train, **train_changes)  # type: ignore[arg-type]
        start = time.perf_counter()
        scores = [score(train, valid, model, config) for train, valid in parts.values()]
        print(
            f"{label:36s} " + " ".join(f"{s:16.4f}" for s in scores)
            + f" {np.mean(scores):8.4f}  ({time.perf_counter() - start:.1f} s)"
        )  # fmt: skip


if __name__ == "__main__":
    main()
