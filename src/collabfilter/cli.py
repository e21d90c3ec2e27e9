"""The ``collabfilter`` command line.

Each subcommand is a thin shell over public library calls. Errors become one line on
stderr and a distinct exit code, never a traceback:

====  ==========================================================
code  meaning
====  ==========================================================
0     success
1     any other collabfilter error
2     bad command-line usage (argparse)
3     bad input data (file, line and field named)
4     dataset not available (the message says how to get it)
5     checksum mismatch (corrupt or tampered download)
====  ==========================================================
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from collabfilter import __version__
from collabfilter.config import RECIPES
from collabfilter.data import REGISTRY, Ratings, generate_ratings, load_movielens, split_random
from collabfilter.data.fetch import cache_dir, data_dir, locate
from collabfilter.demo import metrics_table, run_demo, train_with_table
from collabfilter.errors import (
    ChecksumError,
    CollabFilterError,
    DataError,
    DatasetUnavailableError,
)
from collabfilter.render import frame_table, print_summary

EXIT_ERROR, EXIT_DATA, EXIT_UNAVAILABLE, EXIT_CHECKSUM = 1, 3, 4, 5


def _load(args: argparse.Namespace) -> Ratings:
    """A named MovieLens release, or a CSV/TSV/parquet file with mapped columns."""
    source = args.dataset
    if source in REGISTRY:
        return load_movielens(source, path=args.data)
    path = Path(source)
    if not path.exists():
        known = ", ".join(REGISTRY)
        raise DataError(f"{source!r} is neither a known dataset ({known}) nor an existing file")
    mapping = {
        "user": args.user,
        "item": args.item,
        "rating": args.rating,
        "timestamp": args.timestamp,
        "title": args.title,
    }
    if path.suffix == ".parquet":
        return Ratings.from_parquet(path, **mapping)
    sep = "\t" if args.sep == "\\t" else args.sep
    return Ratings.from_csv(
        path, sep=sep, header=not args.no_header, encoding=args.encoding, **mapping
    )


def _cmd_summary(args: argparse.Namespace, console: Console) -> int:
    start = time.perf_counter()
    ratings = _load(args)
    console.print(f"[bold]{ratings}[/bold]  loaded in {time.perf_counter() - start:.2f} s")
    print_summary(console, ratings, sample=args.sample)
    return 0


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    return run_demo(console, data=args.data, out=args.out)


def _cmd_train(args: argparse.Namespace, console: Console) -> int:
    ratings = _load(args)
    split = split_random(ratings, args.valid_pct, seed=args.seed)
    console.print(f"{ratings}\nsplit: {split.report}")
    learner, seconds = train_with_table(console, split, args.model, seed=args.seed)
    table = metrics_table(learner, split, args.model, seconds)
    console.print(frame_table(table, "Validation error beside the baselines", digits=4))
    return 0


def _cmd_datasets(args: argparse.Namespace, console: Console) -> int:
    console.print(f"COLLABFILTER_DATA_DIR: {data_dir() or '(not set)'}")
    console.print(f"cache: {cache_dir()}")
    for name, spec in REGISTRY.items():
        try:
            where = str(locate(spec.archive, download=False))
        except DatasetUnavailableError:
            where = "not on this machine (downloads on first use)"
        console.print(f"{name:16s} {spec.archive.size / 1e6:8.1f} MB  {where}")
    return 0


def _cmd_fetch(args: argparse.Namespace, console: Console) -> int:
    location = locate(REGISTRY[args.name].archive, args.data)
    console.print(f"{args.name}: verified at {location}")
    return 0


def _cmd_synth(args: argparse.Namespace, console: Console) -> int:
    start = time.perf_counter()
    synthetic = generate_ratings(
        args.users, args.items, args.ratings, n_factors=args.factors, seed=args.seed
    )
    synthetic.ratings.to_parquet(args.out)
    console.print(f"wrote {synthetic.ratings} to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        nargs="?",
        default="ml-100k",
        help=f"a MovieLens name ({', '.join(REGISTRY)}) or a CSV/TSV/parquet file",
    )
    parser.add_argument("--data", metavar="PATH", help="zip or folder holding the release")
    parser.add_argument("--user", default="user", help="user id column (files)")
    parser.add_argument("--item", default="item", help="item id column (files)")
    parser.add_argument("--rating", default="rating", help="rating column (files)")
    parser.add_argument("--timestamp", help="timestamp column (files)")
    parser.add_argument("--title", help="item title column (files)")
    parser.add_argument("--sep", default=",", help="field separator (files; '\\t' for tabs)")
    parser.add_argument("--no-header", action="store_true", help="the file has no header")
    parser.add_argument("--encoding", default="utf-8", help="text encoding (files)")
    parser.add_argument("--sample", type=int, default=8, help="rows to show")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``collabfilter`` command."""
    parser = argparse.ArgumentParser(
        prog="collabfilter", description="Collaborative filtering on explicit ratings."
    )
    parser.add_argument("--version", action="version", version=f"collabfilter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="the quick-start run on ml-100k")
    demo.add_argument("--data", metavar="PATH", help="zip or folder holding ml-100k")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for the plots")
    train = commands.add_parser("train", help="train a default recipe and compare with baselines")
    _data_arguments(train)
    train.add_argument(
        "--model", choices=sorted(RECIPES), default="dot_bias",
        help="recipe: dot_bias (default), nn, dot, or dot_bias_large for millions of ratings",
    )  # fmt: skip
    train.add_argument("--valid-pct", type=float, default=0.1, help="validation share")
    train.add_argument("--seed", type=int, default=42)
    summary = commands.add_parser("summary", help="counts, histogram, sample and crosstab")
    _data_arguments(summary)
    commands.add_parser("datasets", help="known MovieLens releases and where they are")
    fetch = commands.add_parser("fetch", help="download and verify a MovieLens release")
    fetch.add_argument("name", choices=sorted(REGISTRY))
    fetch.add_argument("--data", metavar="PATH", help="verify this zip or folder instead")
    synth = commands.add_parser("synth", help="write synthetic MovieLens-shaped ratings")
    synth.add_argument("--users", type=int, default=943)
    synth.add_argument("--items", type=int, default=1682)
    synth.add_argument("--ratings", type=int, default=100_000)
    synth.add_argument("--factors", type=int, default=8)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, required=True, help="parquet file to write")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "demo": _cmd_demo,
    "train": _cmd_train,
    "summary": _cmd_summary,
    "datasets": _cmd_datasets,
    "fetch": _cmd_fetch,
    "synth": _cmd_synth,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    # Logs and pipes get a fixed, wide layout instead of rich's 80-column fallback.
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        return _COMMANDS[args.command](args, console)
    except ChecksumError as error:
        return _fail(error, EXIT_CHECKSUM)
    except DatasetUnavailableError as error:
        return _fail(error, EXIT_UNAVAILABLE)
    except (DataError, FileNotFoundError) as error:
        return _fail(error, EXIT_DATA)
    except CollabFilterError as error:
        return _fail(error, EXIT_ERROR)


def run() -> NoReturn:
    """The ``collabfilter`` executable: :func:`main`, then a prompt exit.

    By the time a command returns, everything it wrote is closed (files are written
    to a temporary name and renamed). What remains is the interpreter's teardown, and
    with torch loaded that alone takes 0.6-0.9 s here (freeing its operator registry):
    a tenth of ``make demo``. So, once the logs and standard streams are flushed, the
    process ends with ``os._exit``. An unexpected exception still ends it the usual
    way, traceback and all.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fail(error: Exception, code: int) -> int:
    Console(stderr=True).print(f"[bold red]error:[/bold red] {error}", highlight=False)
    return code
