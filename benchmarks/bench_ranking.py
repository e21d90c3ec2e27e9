"""Top-N accuracy on a per-user hold-out of ml-100k, beside the most-popular baseline.

Usage: python benchmarks/bench_ranking.py

20% of each user's ratings are held out (seed 42); hits are held-out ratings >= 4 and
items a user rated in training are never recommended. The popularity weight of the
blended ranking (``predicted + w * log(1 + n_i)``) is chosen first on a second
per-user hold-out carved from the *training* part only, then applied once to the
outer hold-out. Scoring all 943 users is timed.
"""

from __future__ import annotations

import time

from collabfilter import load_movielens, split_by_user
from collabfilter.config import RunOptions
from collabfilter.ranking import evaluate_ranking
from collabfilter.train import collab_learner
from common import SHARED, machine_header

WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def fitted(split):  # type: ignore[no-untyped-def]
    learner = collab_learner(split.train, None, options=RunOptions(progress=False))
    learner.fit_recipe()
    return learner


def main() -> None:
    print(machine_header("collabfilter top-N ranking on ml-100k"))
    ratings = load_movielens("ml-100k", path=SHARED / "ml-100k")
    outer = split_by_user(ratings, frac=0.2, seed=42)
    inner = split_by_user(outer.train, frac=0.2, seed=7)
    tuning = evaluate_ranking(fitted(inner), inner, popularity_weights=WEIGHTS)
    model_rows = tuning[tuning.scorer != "most popular"]
    scores = model_rows.pivot(index="scorer", columns="k", values=["ndcg", "recall"])
    score = scores[("ndcg", 10)] + scores[("recall", 20)]
    best = score.idxmax()
    weight = 0.0 if best == "model" else float(best.split("+ ")[1].split(" ")[0])
    print("\ntuning on the carved hold-out (NDCG@10 + recall@20):")
    print(scores.round(4).to_string())
    print(f"chosen popularity weight: {weight:g}")
    learner = fitted(outer)
    start = time.perf_counter()
    table = evaluate_ranking(learner, outer, popularity_weights=(0.0, weight))
    seconds = time.perf_counter() - start
    ways = len(table.scorer.unique())
    print(
        f"\nouter hold-out ({outer.report.n_valid:,} ratings of {ratings.n_users} users), "
        f"all users scored and ranked {ways} ways in {seconds:.2f} s:"
    )
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
