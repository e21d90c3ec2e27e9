"""Accuracy that carries over: our recipes beside myFM, on ml-100k and on other shapes.

Usage: python benchmarks/bench_accuracy.py [--skip-folds] [--skip-myfm] [--skip-1m]
       [--skip-tutorial] [--threads N] [--features-only]

Every model is trained on a split's training part only and scored on its held-out
part; nothing is chosen on a held-out part (the default recipe's automatic choices are
made on ratings carved out of the training part). Prints, after the machine header:

1. ml-100k: the fixed 90/10 split (identical to ``../shared/datasets/splits/
   ml-100k-r90``, checked), the canonical u1..u5 folds and their mean, ua and ub, and a
   temporal split (the last 10% of ratings in time): RMSE and fit seconds of the
   default recipe (``collab_learner(train)`` then ``fit_recipe()``), of ``bayes``, and
   of myFM 0.4.0 (Gibbs sampling, rank 10, 200 iterations; plain, and with implicit
   feedback built from the training part), with the ratio of bayes' fit time to
   myFM+implicit's. Fits are interleaved, so each sees the same machine speed.
2. Synthetic ratings in ml-latest-small's shape (610 users, 9,724 items, 100,836 half
   stars, long tails, a very heavy user) and in ml-1m's (6,040 users, 3,706 items, 1M
   ratings), random 80/20: the same rows beside the generator's noise floor and its
   Bayesian reference (what can be learned from that training set).
0. The first fit of the process, which loads the compiled sgd step.
3. The default recipe's fit time with and without its automatic decay choice (medians,
   beside the same with the gather step); the
   share of held-out 90/10 ratings inside bayes' nominal 80/90/95% intervals; the nn
   recipe; the default fit with each form of the sgd step.
4. fastai's recipe (DotProductBias, 50 factors, AdamW one-cycle, 5 epochs, batch 64)
   in the tutorials' per-sample DataLoader loop and in this engine (``--skip-tutorial``).
5. Side features (``--features-only`` prints this table alone): bayes and nn without
   and with them, beside myFM+implicit given the same encoded features, on u1..u5
   (ml-100k's user and movie features) and on synthetic data whose planted genres and
   user groups explain part of the factors, in three shapes; the ratio of each model's
   time with features to without. Then cold items (``--cold-only``): 10% of ml-100k's
   films without a training rating, for bayes and for ``topn``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench_bayes import DATA, Result, coverage, ml100k_splits, myfm_fit
from collabfilter import (
    Split,
    generate_ratings,
    load_movielens,
    load_movielens_fold,
    split_cold_items,
    split_random,
)
from collabfilter.config import RunOptions
from collabfilter.data import split_temporal
from collabfilter.data.popularity import log_popularity
from collabfilter.evaluation.baselines import BiasBaseline
from collabfilter.evaluation.topn import POPULARITY_WEIGHT, evaluate_scores
from collabfilter.models import RECIPES, BayesConfig, DotProductBias, TrainConfig
from collabfilter.models.dot.steps import choose_form
from collabfilter.train import Learner, collab_learner
from common import machine_header

QUIET = RunOptions(progress=False, seed=42)


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions.astype(np.float64) - truth) ** 2)))


def ours(split: Split, model: str, features: str = "none") -> tuple[Result, Learner]:
    """A recipe trained on the training part, scored on the held-out part (without side
    features unless asked: the peers of tables 1-2 have none)."""
    learner = collab_learner(split.train, None, model=model, options=QUIET, features=features)
    start = time.perf_counter()
    learner.fit_recipe()
    seconds = time.perf_counter() - start
    return Result(rmse(learner.predict_ratings(split.valid), split.valid.rating), seconds), learner


def splits(folds: bool) -> dict[str, Split]:
    named = ml100k_splits(folds)
    for fold in ("ua", "ub"):
        named[fold] = load_movielens_fold(fold, path=DATA / "ml-100k")
    named["temporal"] = split_temporal(load_movielens("ml-100k", path=DATA / "ml-100k"), 0.1)
    return named


def compare(name: str, split: Split, with_myfm: bool) -> dict[str, Result]:
    runs: dict[str, Callable[[], Result]] = {
        "default": lambda: ours(split, "dot_bias")[0],
        "bayes": lambda: ours(split, "bayes")[0],
    }
    if with_myfm:
        runs["myFM"] = lambda: myfm_fit(split, implicit=False)
        runs["myFM+implicit"] = lambda: myfm_fit(split, implicit=True)
    results = {label: run() for label, run in runs.items()}
    cells = " | ".join(f"{label} {r.rmse:.4f} ({r.seconds:5.1f} s)" for label, r in results.items())
    ratio = ""
    if with_myfm:
        share = results["bayes"].seconds / results["myFM+implicit"].seconds
        ratio = f" | bayes/myFM+implicit time {share:.2f}"
    print(f"{name:9s} {cells}{ratio}", flush=True)
    return results


def synthetic_shapes(with_myfm: bool, with_1m: bool) -> None:
    shapes = {
        "ml-latest-small shape": dict(n_users=610, n_items=9724, n_ratings=100_836,
                                      half_stars=True, popularity_exponent=1.3,
                                      activity_exponent=0.9, seed=0),
    }  # fmt: skip
    if with_1m:
        shapes["ml-1m shape"] = dict(n_users=6040, n_items=3706, n_ratings=1_000_209, seed=0)
    for name, shape in shapes.items():
        synthetic = generate_ratings(**shape)  # type: ignore[arg-type]
        ratings = synthetic.ratings
        counts = ratings.item_counts()
        print(
            f"\n{name}: {len(ratings):,} ratings, {ratings.n_users:,} users, "
            f"{ratings.n_items:,} items ({int((counts == 1).sum()):,} rated once), heaviest "
            f"user {int(ratings.user_counts().max()):,} ratings; random 80/20"
        )
        split = split_random(ratings, 0.2, seed=42, keep_known=False)
        compare("80/20", split, with_myfm)
        floor = synthetic.truth.noise_floor(split.valid.user_idx, split.valid.item_idx)
        reference = synthetic.truth.reference_rmse(split.train, split.valid)
        print(f"          noise floor {floor:.4f}, Bayesian reference {reference:.4f}")


def default_fit_times(split: Split, repeats: int = 3) -> None:
    """The default fit alone (decay as chosen) and with its automatic choice, each
    ``repeats`` times interleaved (medians), with the step the rule picks and with the
    gather step beside it (the machine's speed drifts: compare the ratios)."""
    chosen, learner = ours(split, "dot_bias")
    assert learner.decay_choice is not None
    fixed = learner.config
    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        for form in ("auto", "gather"):
            for label, config in (("alone", fixed), ("with choice", RECIPES["dot_bias"][1])):
                options = replace(QUIET, step=form)  # type: ignore[arg-type]
                run = collab_learner(split.train, None, config=config, options=options)
                start = time.perf_counter()
                run.fit_recipe()
                times.setdefault(f"{form} {label}", []).append(time.perf_counter() - start)
    medians = {key: float(np.median(t)) for key, t in times.items()}
    print(
        f"default recipe on 90/10 (medians of {repeats}): fit {medians['auto alone']:.2f} s, "
        f"with its automatic decay choice {medians['auto with choice']:.2f} s; with "
        f"step='gather' {medians['gather alone']:.2f} s / {medians['gather with choice']:.2f} s "
        f"(ratio {medians['auto with choice'] / medians['gather with choice']:.2f})\n"
        f"  {learner.decay_choice.describe()}"
    )


def first_fit() -> None:
    """The first fit of a process also loads the compiled step (numba's import and its
    on-disk cache, or a compilation on the very first run after an install)."""
    split = ml100k_splits(False)["90/10"]
    config = replace(RECIPES["dot_bias"][1], tune_decay=False, epochs=1)
    times = []
    for _ in range(2):
        learner = collab_learner(split.train, None, config=config, options=QUIET)
        start = time.perf_counter()
        learner.fit_recipe()
        times.append(time.perf_counter() - start)
    print(
        f"first fit of this process: one epoch took {times[0]:.2f} s, the next fit's "
        f"{times[1]:.2f} s: loading the compiled step costs {times[0] - times[1]:.2f} s once"
    )


def step_forms(split: Split, repeats: int = 3) -> None:
    """The default fit (its decay fixed) with each form of the sgd step, interleaved, on
    ml-100k's 90/10 split; then one epoch of each on ml-1m's shape (batches of 32,768
    ratings)."""
    config = replace(RECIPES["dot_bias"][1], tune_decay=False)
    forms = ("compiled", "gather", "autograd")
    times: dict[str, list[float]] = {form: [] for form in forms}
    scores = {}
    for _ in range(repeats):
        for form in forms:
            learner = collab_learner(
                split.train, None, config=config, options=replace(QUIET, step=form)
            )  # type: ignore[arg-type]
            start = time.perf_counter()
            learner.fit_recipe()
            times[form].append(time.perf_counter() - start)
            scores[form] = rmse(learner.predict_ratings(split.valid), split.valid.rating)
    auto = choose_form(learner.model, config, learner.train_tensors, "auto")
    print(f"default fit (decay fixed) by form of the sgd step, 90/10 (auto: {auto}): " + ", ".join(
        f"{form} {scores[form]:.5f} in {np.median(t):.2f} s" for form, t in times.items()
    ))  # fmt: skip
    ratings = generate_ratings(n_users=6040, n_items=3706, n_ratings=1_000_209, seed=0).ratings
    epoch = replace(config, epochs=1)
    seconds = {}
    for form in forms:
        learner = collab_learner(ratings, None, config=epoch, options=replace(QUIET, step=form))  # type: ignore[arg-type]
        start = time.perf_counter()
        learner.fit_recipe()
        seconds[form] = time.perf_counter() - start
    auto = choose_form(learner.model, epoch, learner.train_tensors, "auto")
    print(f"one epoch on ml-1m's shape by form (auto: {auto}): " + ", ".join(
        f"{form} {s:.2f} s" for form, s in seconds.items()
    ))  # fmt: skip


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
        epochs=5, lr=5e-3, optimizer="adamw", weight_decay=0.1, user_decay_exponent=0.0,
        item_decay_exponent=0.0, bias_decay_exponent=0.0, rate_exponent=0.0, batch_size=64,
    )  # fmt: skip
    learner = Learner(model, split.train, config=config, options=QUIET)
    start = time.perf_counter()
    learner.fit_recipe()
    seconds = time.perf_counter() - start
    return rmse(learner.predict_ratings(split.valid), split.valid.rating), seconds


PUBLISHED_EXTENDED = 0.8833
"""myFM's published u1 RMSE with ml-100k's user and movie features, rating dates and
implicit feedback (regression)."""


def features_table(with_myfm: bool) -> None:
    """bayes and nn without and with the side features, beside myFM given the same
    encoded features, on u1..u5 and on synthetic data whose features explain part of the
    factors (several shapes)."""
    rows = []
    named = {
        f: load_movielens_fold(f, path=DATA / "ml-100k") for f in ("u1", "u2", "u3", "u4", "u5")
    }
    shapes = {"synthetic 943x1682": (943, 1682, 100_000),
              "synthetic 610x9724": (610, 9724, 100_836),
              "synthetic 3000x1500": (3000, 1500, 60_000)}  # fmt: skip
    for label, shape in shapes.items():
        planted = generate_ratings(*shape, n_genres=18, n_user_groups=12, seed=3).ratings
        named[label] = split_random(planted, 0.1, seed=1)
    for name, split in named.items():
        runs = {
            "bayes": ours(split, "bayes")[0],
            "bayes+features": ours(split, "bayes", "auto")[0],
            "nn": ours(split, "nn")[0],
            "nn+features": ours(split, "nn", "auto")[0],
        }
        if with_myfm:
            runs["myFM+implicit+features"] = myfm_fit(split, implicit=True, features=True)
        cells = " | ".join(f"{k} {r.rmse:.4f} ({r.seconds:4.1f} s)" for k, r in runs.items())
        share = runs["bayes+features"].seconds / runs["bayes"].seconds
        nn_share = runs["nn+features"].seconds / runs["nn"].seconds
        print(f"{name:20s} {cells} | time with/without: bayes {share:.2f}, nn {nn_share:.2f}",
              flush=True)  # fmt: skip
        rows.append({k: r.rmse for k, r in runs.items()} | {"name": name})
    folds = pd.DataFrame([r for r in rows if r["name"].startswith("u")]).drop(columns="name")
    print("u1-u5 mean " + " | ".join(f"{k} {v:.4f}" for k, v in folds.mean().items()))
    worst = folds["bayes+features"].max()
    print(f"worst fold with features {worst:.4f}; myFM extended, published on u1: "
          f"{PUBLISHED_EXTENDED} (with rating dates, which bayes does not read)")  # fmt: skip
    cold_items()


def cold_items() -> None:
    """Every rating of 10% of ml-100k's films held out: what a new film gets. RMSE
    beside the bias baseline (global + user bias: all a model without features knows of
    a new film), and NDCG@10 of lists of the new films alone (hits: held-out ratings of
    4 or more) beside ranking them by the popularity their genres predict, for bayes and
    for the top-N choice (new films placed from their features)."""
    ratings = load_movielens("ml-100k", path=DATA / "ml-100k")
    for seed in (0, 1, 2):
        split = split_cold_items(ratings, 0.1, seed=seed)
        train, valid = split
        cold = np.zeros(train.n_items, dtype=bool)
        cold[valid.item_idx] = True
        baseline = BiasBaseline(reg_item=0.0, use_items=False).fit(train)
        by_genre = log_popularity(train.keep_features(item=["genres"]))
        assert by_genre is not None  # held-out films, every one with genres
        genres = torch.from_numpy(by_genre)
        ndcg = cold_ndcg(split, cold, lambda users, genres=genres: genres.repeat(len(users), 1))
        cells = [
            f"damped user mean {rmse(baseline.predict_ratings(valid), valid.rating):.4f}",
            f"genre popularity NDCG@10 {ndcg:.4f}",
        ]
        for features in ("none", "auto"):
            result, learner = ours(split, "bayes", features)
            by_rating = cold_ndcg(split, cold, learner.model.score_items)
            scores = learner.model.score_items(torch.arange(8))[:, torch.from_numpy(cold)]
            tied = " (every new film tied: index order)" if bool(
                (scores.max(1).values - scores.min(1).values < 1e-6).all()
            ) else ""  # fmt: skip
            blended = cold_ndcg(
                split, cold, lambda users, model=learner: model.blend_users(
                    users.numpy(), POPULARITY_WEIGHT
                ),
            )  # fmt: skip
            cells.append(
                f"bayes features={features} {result.rmse:.4f} NDCG@10 {by_rating:.4f}{tied}, "
                f"+ {POPULARITY_WEIGHT:g} log popularity {blended:.4f}"
            )
        ranker = collab_learner(train, None, model="topn", options=QUIET)
        ranker.fit_recipe()
        cells.append(f"topn (placed from features) NDCG@10 "
                     f"{cold_ndcg(split, cold, ranker.model.score_items):.4f}")  # fmt: skip
        print(
            f"cold items seed {seed} ({split.report.unseen_items} films, {len(valid):,} "
            "ratings): " + " | ".join(cells), flush=True,
        )  # fmt: skip


def cold_ndcg(
    split: Split, cold: np.ndarray, scores_for: Callable[[torch.Tensor], torch.Tensor]
) -> float:
    """NDCG@10 of lists drawn from the cold items only (``scores_for``: every item's
    score for a tensor of user indices)."""
    mask = torch.from_numpy(~cold)

    def cold_scores(users: np.ndarray) -> torch.Tensor:
        return scores_for(torch.from_numpy(users)).masked_fill(mask, -torch.inf)

    return float(evaluate_scores(cold_scores, split, ks=(10,))["ndcg"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-folds", action="store_true", help="u1 only, not u1..u5")
    parser.add_argument("--skip-myfm", action="store_true", help="ours only")
    parser.add_argument("--skip-1m", action="store_true", help="no ml-1m-shaped synthetic data")
    parser.add_argument("--skip-tutorial", action="store_true", help="skip the slow bs-64 rows")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--features-only", action="store_true", help="table 5 alone")
    parser.add_argument("--cold-only", action="store_true", help="table 5's cold items alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_header("accuracy: our recipes beside myFM 0.4.0 (RMSE on held-out parts)"))
    if args.cold_only:
        print("\n5. side features: cold items")
        cold_items()
        return
    if args.features_only:
        print("\n5. side features")
        features_table(not args.skip_myfm)
        return
    first_fit()
    print("\n1. ml-100k")
    named = splits(not args.skip_folds)
    results = {name: compare(name, split, not args.skip_myfm) for name, split in named.items()}
    folds = [results[f] for f in ("u1", "u2", "u3", "u4", "u5") if f in results]
    if len(folds) == 5:
        means = pd.DataFrame([{k: r.rmse for k, r in fold.items()} for fold in folds]).mean()
        print("u1-u5 mean " + " | ".join(f"{k} {v:.4f}" for k, v in means.items()))
    print("\n2. synthetic data in other shapes")
    synthetic_shapes(not args.skip_myfm, not args.skip_1m)
    print("\n3. the default recipe's time, bayes' intervals, other recipes")
    ninety = named["90/10"]
    default_fit_times(ninety)
    coverage(ninety, BayesConfig())
    for name in ("90/10", "u1"):
        nn_result, _ = ours(named[name], "nn")
        print(f"nn recipe on {name}: RMSE {nn_result.rmse:.4f}, fit {nn_result.seconds:.2f} s")
    step_forms(ninety)
    if not args.skip_tutorial:
        print("\n4. fastai's recipe (bs 64, AdamW one-cycle 5 epochs at 5e-3, wd 0.1) on 90/10")
        loop_rmse, loop_seconds = tutorial_loop(ninety)
        engine_rmse, engine_seconds = fastai_recipe_in_our_engine(ninety)
        print(f"tutorial DataLoader loop: RMSE {loop_rmse:.4f} in {loop_seconds:.1f} s")
        print(f"collabfilter engine:      RMSE {engine_rmse:.4f} in {engine_seconds:.1f} s "
              f"({loop_seconds / engine_seconds:.1f}x faster)")  # fmt: skip
    print("\n5. side features")
    features_table(not args.skip_myfm)


if __name__ == "__main__":
    main()
