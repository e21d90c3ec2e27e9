"""Top-N recommendation: collabfilter's top-N models beside LensKit, EASE and baselines.

Usage: python benchmarks/bench_ranking.py [--threads N] [--repeats R] [--skip-lenskit]
       [--skip-synthetic] [--skip-temporal] [--skip-scale] [--skip-tables] [--scale-only]

First the cost of the automatic choice beside the default rating model's fit (ml-100k
and ml-latest-small's shape; ``--skip-tables`` stops there).

Protocols (hits: held-out ratings >= 4; items rated in training never recommended;
metrics over the users with a hit to find):
  * ml-100k, 20% of each user's ratings held out at random (``split_by_user``, seed 42);
  * ml-100k, each user's last 5 ratings by timestamp (``split_temporal_by_user``);
  * synthetic data in ml-latest-small's shape (610 users x 9,724 items, 100,836
    ratings, a long tail) and ml-1m's (6,040 x 3,706, 1,000,209), per-user 20%.

Side by side on each: the automatic top-N choice (``collabfilter.models.ranking.choose.fit_topn``:
settings chosen on a hold-out carved from the training part only, then refitted), each
of our models at its automatically chosen settings, a plain numpy EASE at lambda 500
(Steck's ml-20m setting), most popular, the rating model ranked by predicted rating and
with the popularity blend, and LensKit 2025.8.1's ImplicitMF, ItemKNN (implicit
feedback) and BiasedMF top-N pipelines at their default settings. Columns: NDCG@10,
recall@20, catalogue coverage and the share of the 20 recommended items that are among
the 1% most rated, train seconds, seconds to recommend 20 items to every user. Timings
are the best of ``--repeats`` rounds that run every method once in turn (this machine
is shared; interleaving keeps a busy spell from favouring one side).

The synthetic generator draws *which* items a user rates by popularity alone (its
planted factors shape the stars, not the choice), so on synthetic data every top-N
model can at best rediscover most-popular: those tables measure speed, not accuracy.

The scale line trains the automatic choice on 25M synthetic ratings in ml-25m's shape
(162,541 x 59,047) in a fresh process and recommends 10 items to every user, with the
process's peak memory.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from collabfilter import Ratings, generate_ratings, load_movielens, split_by_user
from collabfilter.config import RunOptions
from collabfilter.data import Split, split_temporal_by_user
from collabfilter.data.synthetic import ML25M_SHAPE
from collabfilter.evaluation.topn import POPULARITY_WEIGHT, relevant_items, seen_items
from collabfilter.metrics import ItemSets, popular_items, ranking_metrics
from collabfilter.models import TopNConfig
from collabfilter.models.ranking.choose import fit_model, fit_topn
from collabfilter.recommend import Recommendations, recommend
from collabfilter.train import collab_learner
from common import SHARED, WORK, gib, machine_header, run_isolated

BLOCK = 1024
TopLists = np.ndarray  # (n_users, k) item indices, -1 where a list is short


@dataclass
class Method:
    """One way to recommend: ``fit`` returns a ``recommend(k) -> TopLists`` callable."""

    name: str
    fit: Callable[[Split], Callable[[int], TopLists]]


# ----------------------------------------------------------------------------- ours
def blocked_top(scores_for: Callable[[torch.Tensor], torch.Tensor], seen: ItemSets, k: int):
    """Top ``k`` unseen items of every user, a block of users at a time."""
    tops = []
    for start in range(0, seen.n_users, BLOCK):
        users = np.arange(start, min(start + BLOCK, seen.n_users))
        scores = scores_for(torch.from_numpy(users))
        seen.mask(scores, users)
        tops.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(tops)


def topn_methods(config: TopNConfig) -> tuple[list[Method], dict[str, Any]]:
    """The automatic choice and each model at its own automatically chosen settings;
    the dict receives the automatic choice's report."""
    chosen: dict[str, Any] = {}

    def automatic(split: Split) -> Callable[[int], TopLists]:
        model, report = fit_topn(split.train, config)
        chosen["report"] = report
        seen = seen_items(split.train)
        return lambda k: blocked_top(model.score_items, seen, k)

    def single(kind: str) -> Callable[[Split], Callable[[int], TopLists]]:
        def fit(split: Split) -> Callable[[int], TopLists]:
            table = chosen["report"].candidates
            rows = table[(table.model == kind) & table.ndcg.notna()]
            settings = rows.loc[rows.ndcg.astype(float).idxmax(), "settings"]
            model = fit_model(split.train, settings, seed=config.seed, sweeps=config.ials_sweeps)
            seen = seen_items(split.train)
            return lambda k: blocked_top(model.score_items, seen, k)

        return fit

    methods = [Method("collabfilter topn (automatic)", automatic)]
    names = {"ease": "EASE", "ials": "iALS", "item_knn": "item-kNN"}
    methods += [Method(f"collabfilter {names[kind]}", single(kind)) for kind in config.candidates]
    return methods, chosen


def numpy_ease(split: Split, l2: float = 500.0) -> Callable[[int], TopLists]:
    """Steck's EASE as in the paper's listing: dense numpy, float64."""
    train = split.train
    X = np.zeros((train.n_users, train.n_items))
    X[train.user_idx, train.item_idx] = 1.0
    G = X.T @ X
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0.0

    def top(k: int) -> TopLists:
        scores = X @ B
        scores[X > 0] = -np.inf
        return np.argsort(-scores, axis=1)[:, :k]

    return top


def full_lists(recommendations: Recommendations, k: int) -> TopLists:
    """``recommend``'s lists as a (users, k) array; every user here has k unseen items."""
    if not np.all(np.diff(recommendations.offsets) == k):
        raise ValueError(f"a user got fewer than {k} items: the table needs full lists")
    return recommendations.item_idx.reshape(-1, k)


def most_popular(split: Split) -> Callable[[int], TopLists]:
    counts = torch.from_numpy(split.train.item_counts().astype(np.float32))
    seen = seen_items(split.train)
    return lambda k: blocked_top(lambda users: counts.expand(len(users), -1).clone(), seen, k)


def rating_model(weight: float) -> Callable[[Split], Callable[[int], TopLists]]:
    def fit(split: Split) -> Callable[[int], TopLists]:
        learner = collab_learner(split.train, None, options=RunOptions(progress=False))
        learner.fit_recipe()
        users = learner.users.ids
        return lambda k: full_lists(recommend(learner, users, k=k, popularity_weight=weight), k)

    return fit


# ----------------------------------------------------------------------------- LensKit
def lenskit_method(kind: str) -> Callable[[Split], Callable[[int], TopLists]]:
    def fit(split: Split) -> Callable[[int], TopLists]:
        from lenskit.als import BiasedMFScorer, ImplicitMFScorer
        from lenskit.batch import recommend as lk_recommend
        from lenskit.data import from_interactions_df
        from lenskit.knn import ItemKNNScorer
        from lenskit.pipeline import topn_pipeline

        train = split.train
        frame = pd.DataFrame({"user_id": train.user_idx, "item_id": train.item_idx,
                              "rating": train.rating})  # fmt: skip
        scorer = {
            "ImplicitMF": lambda: ImplicitMFScorer(),
            "ItemKNN": lambda: ItemKNNScorer(feedback="implicit"),
            "BiasedMF": lambda: BiasedMFScorer(),
        }[kind]()
        pipeline = topn_pipeline(scorer)
        pipeline.train(from_interactions_df(frame))
        users = np.arange(train.n_users)

        def top(k: int) -> TopLists:
            lists = lk_recommend(pipeline, users, n=k).to_df()
            result = np.full((train.n_users, k), -1, dtype=np.int64)
            rank = lists.groupby("user_id").cumcount().to_numpy()
            result[lists.user_id.to_numpy(), rank] = lists.item_id.to_numpy()
            return result

        return top

    return fit


# ----------------------------------------------------------------------------- running
def evaluate(top: TopLists, split: Split) -> dict[str, float]:
    relevant = relevant_items(split.valid, 4.0)
    popular = popular_items(split.train.item_counts(), 0.01)
    if (top < 0).any():
        raise ValueError("a method returned a short list: every user here has 20 unseen items")
    at10 = ranking_metrics(top, relevant, 10, popular=popular)
    at20 = ranking_metrics(top, relevant, 20, popular=popular)
    return {"NDCG@10": at10["ndcg"], "recall@20": at20["recall"],
            "coverage@20": at20["coverage"], "popular share@20": at20["popular_share"],
            "users": at10["users"]}  # fmt: skip


def run_table(split: Split, methods: list[Method], repeats: int) -> pd.DataFrame:
    """Every method fitted and asked for 20 items per user, ``repeats`` rounds in turn."""
    rows: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for method in methods:
            start = time.perf_counter()
            recommender = method.fit(split)
            trained = time.perf_counter()
            top = recommender(20)
            done = time.perf_counter()
            row = rows.setdefault(method.name, evaluate(top, split))
            row["train s"] = min(row.get("train s", np.inf), trained - start)
            row["recommend 20 s"] = min(row.get("recommend 20 s", np.inf), done - trained)
    return pd.DataFrame.from_dict(rows, orient="index")


def show(title: str, table: pd.DataFrame, report: Any) -> None:
    print(f"\n-- {title}")
    print(table.drop(columns="users").to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"users evaluated: {int(table.users.iloc[0])}")
    lenskit = table[table.index.str.startswith("LensKit")]
    if not lenskit.empty:
        ours = table.loc["collabfilter topn (automatic)"]
        for metric in ("NDCG@10", "recall@20"):
            best = lenskit[metric].idxmax()
            print(f"ours/LensKit best {metric}: {ours[metric] / lenskit[metric].max():.2f}x "
                  f"(vs {best})")  # fmt: skip
    if report is not None:
        print(str(report))


def other_methods(with_lenskit: bool, numpy_reference: bool) -> list[Method]:
    methods = []
    if numpy_reference:
        methods.append(Method("numpy EASE, lambda 500", numpy_ease))
    methods += [
        Method("most popular", most_popular),
        Method("rating model, predicted rating", rating_model(0.0)),
        Method(f"rating model + {POPULARITY_WEIGHT:g} log(1+n_i)", rating_model(POPULARITY_WEIGHT)),
    ]
    if with_lenskit:
        methods += [Method(f"LensKit {kind}", lenskit_method(kind))
                    for kind in ("ImplicitMF", "ItemKNN", "BiasedMF")]  # fmt: skip
    return methods


def benchmark(title: str, split: Split, args: argparse.Namespace, numpy_reference: bool) -> None:
    ours, chosen = topn_methods(TopNConfig())
    methods = ours + other_methods(not args.skip_lenskit, numpy_reference)
    table = run_table(split, methods, args.repeats)
    show(title, table, chosen.get("report"))


# ----------------------------------------------------------------------------- scale
def prepare_scale() -> Path:
    """25M synthetic ratings in ml-25m's shape, generated once into benchmarks/.work."""
    path = WORK / "topn-ml25m.parquet"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        generate_ratings(**ML25M_SHAPE, seed=0).ratings.to_parquet(path)
    return path


def scale_run(path: str, threads: int, config: TopNConfig) -> dict[str, Any]:
    """In a fresh process: load, choose and fit (``collab_learner(model="topn")``), then
    10 items for every user through the library's own lists (``recommend_rows``)."""
    from collabfilter.recommend import recommend_rows

    torch.set_num_threads(threads)
    ratings = Ratings.from_parquet(path, scale=(1, 5))
    start = time.perf_counter()
    learner = collab_learner(ratings, model="topn", config=config,
                             options=RunOptions(progress=False))  # fmt: skip
    learner.fit_recipe()
    trained = time.perf_counter()
    lists = recommend_rows(learner, np.arange(ratings.n_users), k=10)
    done = time.perf_counter()
    return {"report": str(learner.report), "train": trained - start,
            "recommend": done - trained, "users": len(lists), "ratings": len(ratings),
            "kind": learner.model.kind}  # fmt: skip


def scale(args: argparse.Namespace) -> None:
    path = prepare_scale()
    # the choice on 5,000 users' ratings (800k) keeps the line to minutes on 2 cores
    config = TopNConfig(max_select_users=5_000)
    result, seconds, peak = run_isolated(scale_run, str(path), args.threads, config)
    print(f"\n-- scale: {result['ratings']:,} synthetic ratings in ml-25m's shape "
          f"({ML25M_SHAPE['n_users']:,} users x {ML25M_SHAPE['n_items']:,} items)")  # fmt: skip
    print(result["report"])
    budget = gib(config.memory_budget)
    print(f"chosen {result['kind']}: choice + refit {result['train']:.0f} s, 10 items for each "
          f"of {result['users']:,} users {result['recommend']:.0f} s; process total "
          f"{seconds:.0f} s, peak memory {gib(peak)} (budget {budget})")  # fmt: skip


# ----------------------------------------------------------------------------- choice cost
def choice_cost(name: str, split: Split, repeats: int) -> None:
    """The automatic top-N choice (carve, every candidate, refit) beside the default
    rating model's fit (with its own decay choice) on the same training part, best of
    ``repeats``, interleaved; the target is at most 3x."""
    topn, rating = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fit_topn(split.train)
        topn.append(time.perf_counter() - start)
        start = time.perf_counter()
        collab_learner(split.train, None, options=RunOptions(progress=False)).fit_recipe()
        rating.append(time.perf_counter() - start)
    print(
        f"{name}: topn choice and fit {min(topn):.2f} s, default rating model "
        f"{min(rating):.2f} s: {min(topn) / min(rating):.1f}x (target <= 3x)"
    )


# ----------------------------------------------------------------------------- main
def synthetic_split(n_users: int, n_items: int, n_ratings: int, **shape: Any) -> Split:
    ratings = generate_ratings(n_users, n_items, n_ratings, seed=0, **shape).ratings
    return split_by_user(ratings, frac=0.2, seed=42)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=2)
    for part in ("lenskit", "synthetic", "temporal", "scale", "tables"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    parser.add_argument("--scale-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header("collabfilter top-N ranking"))
    if not args.scale_only:
        local = SHARED / "ml-100k"  # else COLLABFILTER_DATA_DIR or the cache
        ml100k = load_movielens("ml-100k", path=local if local.exists() else None)
        split = split_by_user(ml100k, frac=0.2, seed=42)
        print("\n-- the cost of the automatic top-N choice")
        choice_cost("ml-100k (943 x 1,682)", split, args.repeats)
        small = synthetic_split(610, 9724, 100_836, popularity_exponent=1.2)
        choice_cost("synthetic, ml-latest-small's shape (610 x 9,724)", small, args.repeats)
        if args.skip_tables:
            return
        benchmark("ml-100k, per-user 20% hold-out (seed 42)", split, args, True)
        if not args.skip_temporal:
            last = split_temporal_by_user(ml100k, n=5)
            benchmark("ml-100k, each user's last 5 ratings by timestamp", last, args, True)
        if not args.skip_synthetic:
            print("\nsynthetic data: items are picked by popularity alone, so most popular is "
                  "the best possible ranking there; read these tables for speed")  # fmt: skip
            benchmark("synthetic, ml-latest-small's shape (610 x 9,724, 100,836, long tail)",
                      small, args, True)  # fmt: skip
            large = synthetic_split(6040, 3706, 1_000_209)
            benchmark("synthetic, ml-1m's shape (6,040 x 3,706, 1,000,209)", large, args, True)
    if not args.skip_scale:
        scale(args)


if __name__ == "__main__":
    main()
