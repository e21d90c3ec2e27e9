"""Accuracy and fit time on ml-100k against the peers' published recipes.

Usage: python benchmarks/bench_accuracy.py [--skip-tutorial]

Splits: the fixed 90/10 split (../shared/datasets/splits/ml-100k-r90, identical to
``split_random(ml100k, 0.1, seed=42, keep_known=False)``, checked below) and the
canonical u1.base/u1.test. RMSE is on the held-out part; models are trained without
seeing it (no best-epoch picking on it). Fit time excludes import and loading and is
the median of three fits. A second table times the default fit with each form of the
dot models' SGD step (sparse products for small tables, gather/index_add for large).

The last table runs fastai's recipe (DotProductBias, 50 factors, y_range (0, 5.5),
AdamW one-cycle 5 epochs at 5e-3, wd 0.1, batch size 64) twice: in the plain
per-sample ``Dataset``/``DataLoader`` loop of the PyTorch tutorials, and in
collabfilter's engine, and prints the speed ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from collabfilter import Split, load_movielens, load_movielens_fold, split_random
from collabfilter.config import RECIPES, RunOptions, TrainConfig
from collabfilter.models import DotProductBias
from collabfilter.train import Learner, collab_learner, sparse
from common import SHARED, machine_header

QUIET = RunOptions(progress=False, seed=42)


def splits() -> dict[str, Split]:
    ratings = load_movielens("ml-100k", path=SHARED / "ml-100k")
    ninety = split_random(ratings, 0.1, seed=42, keep_known=False)
    published = pd.read_csv(SHARED / "splits/ml-100k-r90/valid.csv")
    ours = ninety.valid.to_frame()
    if sorted(zip(ours.user, ours.item, strict=True)) != sorted(
        zip(published.user, published.item, strict=True)
    ):
        raise SystemExit("the 90/10 split differs from ../shared/datasets/splits/ml-100k-r90")
    return {"90/10": ninety, "u1": load_movielens_fold("u1", path=SHARED / "ml-100k")}


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions - truth) ** 2)))


def our_recipe(split: Split, model: str, repeats: int = 3) -> tuple[float, float]:
    """RMSE and the median fit time over ``repeats`` fresh learners (same seed, so the
    same RMSE): the first fit of a process also pays torch's one-time warm-up."""
    times = []
    for _ in range(repeats):
        learner = collab_learner(split.train, None, model=model, options=QUIET)
        start = time.perf_counter()
        learner.fit_recipe()
        times.append(time.perf_counter() - start)
    return rmse(learner.predict_ratings(split.valid), split.valid.rating), float(np.median(times))


def step_forms(split: Split, repeats: int = 3) -> dict[str, tuple[float, float]]:
    """The default fit with each form of the dot models' SGD step, interleaved so that
    both see the same machine speed: sparse matrix products (what small tables get)
    and gather/index_add (what large tables get). RMSE and median fit time."""
    forms: dict[str, list[float]] = {"sparse products": [], "gather/index_add": []}
    scores = {}
    chooser = sparse.suits
    try:
        for _ in range(repeats):
            for form, times in forms.items():
                small = form == "sparse products"
                sparse.suits = lambda data, batch_size, small=small: small
                learner = collab_learner(split.train, None, options=QUIET)
                start = time.perf_counter()
                learner.fit_recipe()
                times.append(time.perf_counter() - start)
                scores[form] = rmse(learner.predict_ratings(split.valid), split.valid.rating)
    finally:
        sparse.suits = chooser
    return {form: (scores[form], float(np.median(times))) for form, times in forms.items()}


# ----------------------------------------------------------------------------- tutorial
class _PairDataset(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """The tutorials' dataset: one (user, item, rating) triple per __getitem__."""

    def __init__(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
        self.users, self.items, self.ratings = users, items, ratings

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.tensor(self.users[k], dtype=torch.long),
            torch.tensor(self.items[k], dtype=torch.long),
            torch.tensor(self.ratings[k], dtype=torch.float32),
        )


class _TutorialModel(nn.Module):
    """fastai's EmbeddingDotBias written as the tutorials do (dense nn.Embedding)."""

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50) -> None:
        super().__init__()
        self.u, self.i = nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors)
        self.ub, self.ib = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        for table in (self.u, self.i, self.ub, self.ib):
            nn.init.trunc_normal_(table.weight, std=0.01)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = (self.u(users) * self.i(items)).sum(1) + self.ub(users)[:, 0] + self.ib(items)[:, 0]
        return torch.sigmoid(x) * 5.5


def tutorial_loop(split: Split) -> tuple[float, float]:
    torch.manual_seed(42)
    train = split.train
    data = _PairDataset(train.user_idx, train.item_idx, train.rating)
    loader = DataLoader(data, batch_size=64, shuffle=True)
    model = _TutorialModel(train.n_users, train.n_items)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.1, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=5e-3, total_steps=5 * len(loader), pct_start=0.25
    )
    start = time.perf_counter()
    for _ in range(5):
        for users, items, ratings in loader:
            loss = nn.functional.mse_loss(model(users, items), ratings)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        valid = split.valid
        predictions = model(
            torch.from_numpy(valid.user_idx).long(), torch.from_numpy(valid.item_idx).long()
        ).numpy()
    return rmse(predictions, valid.rating), seconds


def fastai_recipe_in_our_engine(split: Split) -> tuple[float, float]:
    torch.manual_seed(42)
    model = DotProductBias(
        split.train.n_users, split.train.n_items, 50, y_range=(0.0, 5.5), activity_prior=False
    )
    # The engine's AdamW is lazy, as SparseAdam: a row's moments and its decay move
    # only when a rating touches it, where fastai's dense AdamW moves every row at
    # every step. Same recipe, different mechanics: the RMSE differs a little.
    config = TrainConfig(
        epochs=5, lr=5e-3, optimizer="adamw", weight_decay=0.1, item_weight_decay=None,
        bias_weight_decay=None, user_decay_exponent=0.0, item_decay_exponent=0.0,
        bias_decay_exponent=0.0, batch_size=64,
    )  # fmt: skip
    learner = Learner(model, split.train, config=config, options=QUIET)
    start = time.perf_counter()
    learner.fit_recipe()
    seconds = time.perf_counter() - start
    return rmse(learner.predict_ratings(split.valid), split.valid.rating), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-tutorial", action="store_true", help="skip the slow bs-64 rows")
    args = parser.parse_args()
    print(machine_header("collabfilter accuracy and fit time on ml-100k"))
    parts = splits()
    rows = []
    for label, model in (
        ("collabfilter dot_bias (default)", "dot_bias"),
        ("collabfilter nn (default)", "nn"),
    ):
        results = {name: our_recipe(split, model) for name, split in parts.items()}
        rows.append((label, results))
    print(f"\n{'recipe':40s} {'90/10 RMSE':>10s} {'fit s':>7s} {'u1 RMSE':>8s} {'fit s':>7s}")
    for label, results in rows:
        (a, ta), (b, tb) = results["90/10"], results["u1"]
        print(f"{label:40s} {a:10.4f} {ta:7.2f} {b:8.4f} {tb:7.2f}")
    dot_model, dot_train = RECIPES["dot_bias"]
    print(
        f"  dot_bias recipe: {dot_model.n_factors} factors, {dot_train.epochs} epochs, "
        f"batch {dot_train.batch_size}, {dot_train.optimizer} lr {dot_train.lr}, one-cycle"
    )
    print("\nthe default fit, 90/10, by form of the SGD step (interleaved, median of 3):")
    forms = step_forms(parts["90/10"])
    for form, (score, seconds) in forms.items():
        print(f"{form:40s} RMSE {score:.4f}  fit {seconds:7.2f} s")
    ratio = forms["gather/index_add"][1] / forms["sparse products"][1]
    print(f"speed ratio: {ratio:.1f}x")
    if args.skip_tutorial:
        return
    print("\nfastai's recipe (50 factors, AdamW one-cycle 5 epochs 5e-3, wd 0.1, batch 64), 90/10:")
    tutorial_rmse, tutorial_s = tutorial_loop(parts["90/10"])
    ours_rmse, ours_s = fastai_recipe_in_our_engine(parts["90/10"])
    tutorial = "per-sample DataLoader loop (tutorial)"
    print(f"{tutorial:40s} RMSE {tutorial_rmse:.4f}  fit {tutorial_s:7.1f} s")
    print(f"{'collabfilter engine, same recipe':40s} RMSE {ours_rmse:.4f}  fit {ours_s:7.1f} s")
    print(f"speed ratio: {tutorial_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
