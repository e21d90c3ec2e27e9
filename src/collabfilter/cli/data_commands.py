"""Commands about data: ``summary``, ``datasets``, ``fetch``, ``synth``, ``demo``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from collabfilter.cli.output import emit_json
from collabfilter.cli.tables import print_summary
from collabfilter.data import REGISTRY, Ratings, generate_ratings, load_movielens
from collabfilter.data.fetch import cache_dir, data_dir, locate
from collabfilter.errors import DataError, DatasetUnavailableError


def load_ratings(args: argparse.Namespace) -> Ratings:
    """A named MovieLens release, or a CSV/TSV/parquet file with mapped columns."""
    source = args.dataset
    if source in REGISTRY:
        return load_movielens(source, path=args.data)
    path = Path(source)
    if not path.exists():
        known = ", ".join(REGISTRY)
        raise FileNotFoundError(
            f"{source!r} is neither a known dataset ({known}) nor an existing file"
        )
    mapping = {
        "user": args.user, "item": args.item, "rating": args.rating,
        "timestamp": args.timestamp, "title": args.title,
    }  # fmt: skip
    if path.suffix == ".parquet":
        return Ratings.from_parquet(path, **mapping)
    sep = "\t" if args.sep == "\\t" else args.sep
    return Ratings.from_csv(
        path, sep=sep, header=not args.no_header, encoding=args.encoding, **mapping
    )


def data_arguments(parser: argparse.ArgumentParser, *, dataset: bool = True) -> None:
    """The options that say where ratings come from and how a file is laid out."""
    if dataset:
        parser.add_argument(
            "dataset", nargs="?", default="ml-100k",
            help=f"a MovieLens name ({', '.join(REGISTRY)}) or a CSV/TSV/parquet file",
        )  # fmt: skip
    parser.add_argument("--data", metavar="PATH", help="zip or folder holding the release")
    parser.add_argument("--user", default="user", help="user id column (files)")
    parser.add_argument("--item", default="item", help="item id column (files)")
    parser.add_argument("--rating", default="rating", help="rating column (files)")
    parser.add_argument("--timestamp", help="timestamp column (files)")
    parser.add_argument("--title", help="item title column (files)")
    parser.add_argument("--sep", default=",", help="field separator (files; '\\t' for tabs)")
    parser.add_argument("--no-header", action="store_true", help="the file has no header")
    parser.add_argument("--encoding", default="utf-8", help="text encoding (files)")


def summary(args: argparse.Namespace, console: Console) -> int:
    start = time.perf_counter()
    ratings = load_ratings(args)
    if args.json:
        report = ratings.summary()
        emit_json({
            "ratings": report.n_ratings, "users": report.n_users, "items": report.n_items,
            "density": report.density, "mean": report.mean, "std": report.std,
            "scale": {"low": ratings.scale.low, "high": ratings.scale.high,
                      "step": ratings.scale.step},
            "histogram": {str(k): int(v) for k, v in report.histogram.items()},
            "duplicates_dropped": report.report.duplicates,
        })  # fmt: skip
        return 0
    console.print(f"[bold]{ratings}[/bold]  loaded in {time.perf_counter() - start:.2f} s")
    print_summary(console, ratings, sample=args.sample)
    return 0


def datasets(args: argparse.Namespace, console: Console) -> int:
    rows: list[dict[str, object]] = []
    for name, spec in REGISTRY.items():
        try:
            where = str(locate(spec.archive, download=False))
        except DatasetUnavailableError:
            where = None
        rows.append({"name": name, "megabytes": spec.archive.size / 1e6, "location": where})
    if args.json:
        emit_json({"data_dir": str(data_dir() or ""), "cache": str(cache_dir()), "datasets": rows})
        return 0
    console.print(f"COLLABFILTER_DATA_DIR: {data_dir() or '(not set)'}")
    console.print(f"cache: {cache_dir()}")
    for row in rows:
        place = row["location"] or "not on this machine (downloads on first use)"
        console.print(f"{row['name']:16s} {row['megabytes']:8.1f} MB  {place}")
    return 0


def fetch(args: argparse.Namespace, console: Console) -> int:
    location = locate(REGISTRY[args.name].archive, args.data)
    console.print(f"{args.name}: verified at {location}")
    return 0


def synth(args: argparse.Namespace, console: Console) -> int:
    start = time.perf_counter()
    synthetic = generate_ratings(
        args.users, args.items, args.ratings, n_factors=args.factors, seed=args.seed
    )
    synthetic.ratings.to_parquet(args.out)
    console.print(f"wrote {synthetic.ratings} to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def demo(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.cli.demo import run_demo

    return run_demo(console, data=args.data, out=args.out)


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a file, else a clear error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_pairs(path: Path, user: str, item: str) -> object:
    """A CSV/TSV/parquet table of pairs with its id columns as text (matched to a
    model's ids by the vocabulary's type, so "007" stays "007")."""
    import pandas as pd

    require_file(path, "pairs file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        sep = "\t" if path.suffix in (".tsv", ".tab") else ","
        frame = pd.read_csv(path, sep=sep, dtype={user: str, item: str}, keep_default_na=False)
    missing = [c for c in (user, item) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column(s) {missing}; found {list(frame.columns)} "
            "(name them with --user and --item)"
        )
    return frame
