"""Loading speed and memory: ml-25m-sized CSV/parquet, and ml-100k.

Usage: python benchmarks/bench_load.py [--ratings N]

The 25M-row input is synthetic (collabfilter.data.synthetic, the shape of ml-25m:
162,541 users, 59,047 items) written once in MovieLens' ratings.csv layout and as
parquet under benchmarks/.work (or $COLLABFILTER_BENCH_DIR), then reused.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from collabfilter import Ratings, load_movielens
from common import SHARED, WORK, gib, machine_header, run_isolated  # the script's folder


def prepare(n_ratings: int) -> tuple[Path, Path, float]:
    """Write the synthetic CSV and parquet files unless already there."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from collabfilter.data.synthetic import ML25M_SHAPE, generate_ratings

    stem = WORK / f"synthetic-{n_ratings}"
    csv_path, parquet_path = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    if csv_path.exists() and parquet_path.exists():
        return csv_path, parquet_path, float("nan")
    WORK.mkdir(parents=True, exist_ok=True)
    shape = dict(ML25M_SHAPE, n_ratings=n_ratings)
    start = time.perf_counter()
    ratings = generate_ratings(**shape, seed=0).ratings
    generated = time.perf_counter() - start
    frame = ratings.to_frame().rename(columns={"user": "userId", "item": "movieId"})
    partial = csv_path.with_suffix(".csv.part")
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), partial)
    partial.rename(csv_path)
    ratings.to_parquet(parquet_path)
    return csv_path, parquet_path, generated


def load_csv(path: Path) -> dict[str, object]:
    ratings = Ratings.from_csv(
        path, user="userId", item="movieId", rating="rating", timestamp="timestamp",
        scale=(0.5, 5.0), ids="int",  # MovieLens' format fixes integer ids
    )  # fmt: skip
    return describe(ratings)


def load_parquet(path: Path) -> dict[str, object]:
    return describe(Ratings.from_parquet(path, timestamp="timestamp"))


def load_ml100k() -> dict[str, object]:
    return describe(load_movielens("ml-100k", download=False))


def describe(ratings: Ratings) -> dict[str, object]:
    held = sum(
        a.nbytes
        for a in (ratings.user_idx, ratings.item_idx, ratings.rating, ratings.timestamp)
        if a is not None
    )
    return {
        "repr": repr(ratings),
        "held": held,
        "dtypes": f"{ratings.user_idx.dtype}/{ratings.item_idx.dtype}/{ratings.rating.dtype}",
        "n": len(ratings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ratings", type=int, default=25_000_095)
    args = parser.parse_args()
    print(machine_header("collabfilter loading benchmark"))
    csv_path, parquet_path, generated = prepare(args.ratings)
    if generated == generated:  # not NaN: generated in this run
        print(f"generated {args.ratings:,} synthetic ratings in {generated:.1f} s")
    print(f"input: {csv_path} ({csv_path.stat().st_size / 1e6:,.0f} MB)")
    print(f"{'what':34s} {'seconds':>8s} {'M rows/s':>9s} {'peak RSS':>10s} {'held':>10s}  dtypes")
    runs = [("CSV, 25M-row ml-25m shape", load_csv, (csv_path,)),
            ("parquet, same data", load_parquet, (parquet_path,))]  # fmt: skip
    if os.environ.get("COLLABFILTER_DATA_DIR") or (SHARED / "ml-100k").exists():
        os.environ.setdefault("COLLABFILTER_DATA_DIR", str(SHARED))
        runs.append(("ml-100k (u.data + u.item)", load_ml100k, ()))
    for label, fn, fn_args in runs:
        info, seconds, peak = run_isolated(fn, *fn_args)
        per_rating = info["held"] / info["n"]
        print(
            f"{label:34s} {seconds:8.2f} {info['n'] / seconds / 1e6:9.2f} {gib(peak):>10s} "
            f"{gib(info['held']):>10s}  {info['dtypes']} ({per_rating:.0f} B/rating)"
        )


if __name__ == "__main__":
    main()
