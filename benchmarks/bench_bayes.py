"""Bayesian MF by Gibbs sampling against myFM, on ml-100k and synthetic data at scale.

Usage: python benchmarks/bench_bayes.py [--skip-folds] [--skip-myfm]
       [--skip-scale] [--threads N] [--sweeps 200] [--scale-size 10m]

Prints, after the machine header:

* for the fixed 90/10 split, u1 and each of u1..u5 (and their mean): our RMSE on the
  held-out part and fit seconds beside myFM 0.4.0's (rank 10, 200 iterations, all
  kept, as in its ml-100k examples), plain (user + item) and with implicit feedback
  (each user's rated items and each item's raters, normalised by ``1/sqrt(count)``,
  built from the training part only, through myFM's ``RelationBlock`` API), and the
  ratio of our fit time to myFM+implicit's. Fits are interleaved so that each side sees
  the same machine speed. Nothing is chosen on the held-out parts.
* the share of held-out 90/10 ratings inside our nominal 80/90/95% predictive
  intervals (mean +- z * predictive std);
* (synthetic data in other shapes, beside myFM, are in ``bench_accuracy.py``);
* sweeps over 10M synthetic ratings in ml-25m's shape (``bench_scale.py``'s file):
  seconds and ratings/s per sweep, and the peak memory of that process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from collabfilter import (
    Ratings,
    Split,
    load_movielens,
    load_movielens_fold,
    split_random,
)
from collabfilter.data.csr import SparseRows
from collabfilter.models import BayesConfig
from collabfilter.models.bayes.gibbs import run_gibbs
from common import SHARED, gib, machine_header, run_isolated

DATA = Path(os.environ.get("COLLABFILTER_DATA_DIR") or SHARED)


@dataclass(frozen=True)
class Result:
    rmse: float
    seconds: float


def tensors(ratings: Ratings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(ratings.user_idx).long(),
        torch.from_numpy(ratings.item_idx).long(),
        torch.from_numpy(ratings.rating).float(),
    )


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictions - truth) ** 2)))


def ours(split: Split, config: BayesConfig, seed: int = 42) -> tuple[Result, object]:
    train, valid = split
    scale = train.scale
    start = time.perf_counter()
    model = run_gibbs(
        *tensors(train), train.n_users, train.n_items, config,
        generator=torch.Generator().manual_seed(seed), rating_range=(scale.low, scale.high),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    users, items, _ = tensors(valid)
    with torch.inference_mode():
        predictions = model(users, items).numpy()
    return Result(rmse(predictions, valid.rating), seconds), model


def myfm_fit(split: Split, implicit: bool, iterations: int = 200, features: bool = False) -> Result:
    """myFM's Gibbs regressor, rank 10, every iteration kept (its examples' setting),
    with a no-op callback (its default one computes training statistics). With
    ``features``, the side features the training ratings carry join each relation
    block, encoded as collabfilter encodes them (one group per side's features)."""
    import scipy.sparse as sps

    with warnings.catch_warnings():  # myFM imports pkg_resources, deprecated
        warnings.simplefilter("ignore")
        import myfm
        from myfm import RelationBlock

    train, valid = split
    n_users, n_items = train.n_users, train.n_items
    rated = sps.csr_matrix(
        (np.ones(len(train)), (train.user_idx, train.item_idx)), shape=(n_users, n_items)
    )
    users = sps.identity(n_users, format="csr")
    items = sps.identity(n_items, format="csr")
    groups = [0] * n_users + [1] * n_items
    if implicit:
        user_scale = 1 / np.sqrt(np.maximum(np.asarray(rated.sum(1)).ravel(), 1))
        item_scale = 1 / np.sqrt(np.maximum(np.asarray(rated.sum(0)).ravel(), 1))
        users = sps.hstack([users, sps.diags(user_scale) @ rated], format="csr")
        items = sps.hstack([items, sps.diags(item_scale) @ rated.T.tocsr()], format="csr")
        groups = [0] * n_users + [1] * n_items + [2] * n_items + [3] * n_users
    if features:
        user_side, item_side = (
            None if side is None else side.encode(vocabulary).matrix
            for side, vocabulary in ((train.user_features, train.users),
                                     (train.item_features, train.items))
        )  # fmt: skip
        extra = []
        if user_side is not None:
            users = sps.hstack([users, _scipy(user_side)], format="csr")
            extra.append(("user", user_side.n_cols))
        if item_side is not None:
            items = sps.hstack([items, _scipy(item_side)], format="csr")
            extra.append(("item", item_side.n_cols))
        # a group per kind of column, in column order: the users' block, then the items'
        group_of = {"user": [0] * n_users, "item": [1] * n_items}
        if implicit:
            group_of = {"user": [0] * n_users + [1] * n_items,
                        "item": [2] * n_items + [3] * n_users}  # fmt: skip
        for number, (side_name, width) in enumerate(extra, start=4):
            group_of[side_name] += [number] * width
        groups = group_of["user"] + group_of["item"]

    def blocks(part: Ratings) -> list[object]:
        return [RelationBlock(part.user_idx, users), RelationBlock(part.item_idx, items)]

    model = myfm.MyFMRegressor(rank=10, random_seed=42)
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar cannot be turned off
        model.fit(
            None, train.rating, X_rel=blocks(train), grouping=groups, n_iter=iterations,
            n_kept_samples=iterations, callback=lambda *_: (False, None),
        )  # fmt: skip
    seconds = time.perf_counter() - start
    scale = train.scale
    predictions = np.clip(model.predict(None, blocks(valid)), scale.low, scale.high)
    return Result(rmse(predictions, valid.rating), seconds)


def ml100k_splits(folds: bool) -> dict[str, Split]:
    ratings = load_movielens("ml-100k", path=DATA / "ml-100k")
    ninety = split_random(ratings, 0.1, seed=42, keep_known=False)
    published = pd.read_csv(DATA / "splits/ml-100k-r90/valid.csv")
    held_out = ninety.valid.to_frame()
    if sorted(zip(held_out.user, held_out.item, strict=True)) != sorted(
        zip(published.user, published.item, strict=True)
    ):
        raise SystemExit("the 90/10 split differs from splits/ml-100k-r90")
    splits = {"90/10": ninety}
    for fold in ("u1", "u2", "u3", "u4", "u5") if folds else ("u1",):
        splits[fold] = load_movielens_fold(fold, path=DATA / "ml-100k")
    return splits


def compare(name: str, split: Split, config: BayesConfig, with_myfm: bool) -> dict[str, Result]:
    """Ours, myFM plain and myFM + implicit on one split, interleaved."""
    results: dict[str, Result] = {}
    runs: dict[str, Callable[[], Result]] = {"ours": lambda: ours(split, config)[0]}
    if with_myfm:
        runs["myfm"] = lambda: myfm_fit(split, implicit=False)
        runs["myfm_implicit"] = lambda: myfm_fit(split, implicit=True)
    for label, run in runs.items():
        results[label] = run()
    line = f"{name:8s} ours {results['ours'].rmse:.4f} ({results['ours'].seconds:5.1f} s)"
    if with_myfm:
        plain, implicit = results["myfm"], results["myfm_implicit"]
        ratio = results["ours"].seconds / implicit.seconds
        line += (
            f" | myFM {plain.rmse:.4f} ({plain.seconds:5.1f} s) | myFM+implicit "
            f"{implicit.rmse:.4f} ({implicit.seconds:5.1f} s) | time ours/myFM+implicit "
            f"{ratio:.2f}"
        )
    print(line, flush=True)
    return results


def coverage(split: Split, config: BayesConfig) -> None:
    _, model = ours(split, config)
    users, items, truth = tensors(split.valid)
    with torch.inference_mode():
        mean, spread, predictive = model.predict_with_uncertainty(users, items)  # type: ignore[attr-defined]
    shares = []
    for nominal in (0.8, 0.9, 0.95):
        z = math.sqrt(2) * float(torch.special.erfinv(torch.tensor(nominal)))
        covered = float(((truth - mean).abs() <= z * predictive).float().mean())
        shares.append(f"{nominal:.0%} -> {covered:.1%}")
    print(
        "90/10 predictive intervals, share of held-out ratings inside: " + ", ".join(shares)
        + f" (mean std of the mean {float(spread.mean()):.3f}, predictive "
        f"{float(predictive.mean()):.3f})"
    )  # fmt: skip


def scale_sweeps(path: Path, sweeps: int, threads: int | None) -> dict[str, object]:
    """Runs in a fresh process: load, hold out 5%, run ``sweeps`` sweeps."""
    if threads is not None:
        torch.set_num_threads(threads)
    ratings = Ratings.from_parquet(path, scale=(1, 5))
    split = split_random(ratings, 0.05, seed=1, keep_known=False)
    del ratings
    train, valid = split
    records: list[tuple[int, float, float | None, float]] = []
    config = BayesConfig(sweeps=sweeps, burn_in=sweeps // 2)
    start = time.perf_counter()
    run_gibbs(
        *tensors(train), train.n_users, train.n_items, config,
        generator=torch.Generator().manual_seed(0), rating_range=(1.0, 5.0),
        valid=tensors(valid), on_sweep=lambda *record: records.append(record),
    )  # fmt: skip
    total = time.perf_counter() - start
    return {"n_train": len(train), "records": records, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-folds", action="store_true", help="u1 only, not u1..u5")
    parser.add_argument("--skip-myfm", action="store_true", help="ours only")
    parser.add_argument("--skip-scale", action="store_true", help="no 10M sweeps")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--scale-size", default="10m", help="a size of bench_scale.py")
    parser.add_argument("--scale-sweeps", type=int, default=4)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(machine_header("Bayesian MF (Gibbs) against myFM 0.4.0"))
    config = BayesConfig(sweeps=args.sweeps, burn_in=min(BayesConfig().burn_in, args.sweeps - 1))
    print(f"ours: {config}")
    splits = ml100k_splits(not args.skip_folds)
    results = {
        name: compare(name, split, config, not args.skip_myfm) for name, split in splits.items()
    }
    folds = [name for name in results if name.startswith("u")]
    if len(folds) == 5:
        means = {label: np.mean([results[f][label].rmse for f in folds]) for label in results["u1"]}
        print("u1-u5 mean RMSE: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    coverage(splits["90/10"], config)
    if not args.skip_scale:
        from bench_scale import prepare

        path, _, _ = prepare(args.scale_size)
        result, _, peak = run_isolated(scale_sweeps, path, args.scale_sweeps, args.threads)
        n = result["n_train"]
        print(f"{n:,} synthetic training ratings (ml-25m shape), {args.scale_sweeps} sweeps:")
        for sweep, train_rmse, valid_rmse, seconds in result["records"]:
            print(
                f"  sweep {sweep}: {seconds:6.2f} s, {n / seconds / 1e6:.2f}M ratings/s, "
                f"train RMSE {train_rmse:.4f}, valid RMSE {valid_rmse:.4f}"
            )
        print(f"  whole run incl. set-up {result['total']:.1f} s; peak memory {gib(peak)}")


if __name__ == "__main__":
    main()


def _scipy(rows: SparseRows) -> object:
    """collabfilter's encoded feature rows as a scipy CSR matrix."""
    import scipy.sparse as sps

    arrays = (rows.values.numpy(), rows.indices.numpy(), rows.indptr.numpy())
    return sps.csr_matrix(arrays, shape=(rows.n_rows, rows.n_cols))
