"""The ``collabfilter`` command line.

Each subcommand is a thin shell over public library calls, with ``--help``, and
``--json`` on every command that answers a question. Expected failures become one line
on stderr and an exit code per kind of failure, never a traceback:

====  ==========================================================
code  meaning
====  ==========================================================
0     success
1     any other collabfilter error
2     bad command-line usage: an option's value that is not allowed
3     bad input data (file, line and field named)
4     dataset not available, e.g. offline (the message says how to get it)
5     checksum mismatch (corrupt or tampered download)
6     bad model file (truncated, altered, or from another format version)
7     unknown user, item or title (the message lists candidates)
8     a file that does not exist
9     the service cannot listen where asked (address in use, or not this machine's)
====  ==========================================================

Every option's value is checked when the command line is read (a number out of range,
an unknown encoding, an output path that cannot be written: exit 2), before any data is
read or any model trained. Everything printed that comes from data or from the command
line (ids, titles, paths) is shown as plain text, never as rich markup. An exception no
command expects is a bug; it too is reported on one line (exit 1), naming where it
happened.

The process ends the ordinary way; torch is imported only by the commands that need
it, so that data commands and ``--help`` start quickly.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from rich.console import Console
from rich.text import Text

from collabfilter import __version__
from collabfilter.cli import apply_commands, data_commands, model_commands, query_commands
from collabfilter.cli.messages import describe_bug, in_flags, one_line
from collabfilter.cli.options import (
    MAX_EPOCHS,
    MAX_FACTORS,
    Parser,
    feature_value,
    input_path,
    output_file,
    output_folder,
    real,
    seed,
    whole,
)
from collabfilter.data import REGISTRY
from collabfilter.errors import (
    ChecksumError,
    CollabFilterError,
    CollabFilterWarning,
    ConfigError,
    DataError,
    DatasetUnavailableError,
    ListenError,
    ModelFileError,
    UnknownIdError,
)

EXIT_ERROR, EXIT_USAGE, EXIT_DATA, EXIT_UNAVAILABLE, EXIT_CHECKSUM = 1, 2, 3, 4, 5
EXIT_MODEL_FILE, EXIT_UNKNOWN, EXIT_MISSING, EXIT_LISTEN = 6, 7, 8, ListenError.exit_code

Command = Callable[[argparse.Namespace, Console], int]


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")


def _training_options(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    parser.add_argument(
        "--model", default="dot_bias", metavar="RECIPE",
        help="recipe: dot_bias (default, adapts to the data), bayes (most accurate ratings), "
        "topn (top-N lists), nn, dot, dot_bias_large (millions of ratings)",
    )  # fmt: skip
    if not sweep:  # lr-find sweeps the rate over a fixed number of steps
        parser.add_argument("--epochs", type=whole(1, MAX_EPOCHS),
                            help="epochs (bayes: sweeps; default: the recipe's)")  # fmt: skip
        parser.add_argument("--lr", type=real(0, above=True), help="peak learning rate")
    parser.add_argument("--wd", type=real(0), help="one weight decay for every table")
    parser.add_argument("--bs", type=whole(1), help="batch size")
    parser.add_argument("--factors", type=whole(1, MAX_FACTORS),
                        help="factors per user and item")  # fmt: skip
    parser.add_argument("--seed", type=seed, default=42, help="random seed (0..2**32-1)")


def _add_data_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    demo = commands.add_parser("demo", help="the quick-start run on ml-100k")
    demo.add_argument("--data", type=input_path, metavar="PATH",
                      help="zip or folder holding ml-100k")  # fmt: skip
    demo.add_argument("--out", type=output_folder, default="out/demo",
                      help="folder for the plots (created)")  # fmt: skip
    demo.set_defaults(run=data_commands.demo)
    summary = commands.add_parser("summary", help="counts, histogram, sample and crosstab")
    data_commands.data_arguments(summary)
    summary.add_argument("--sample", type=whole(0), default=8, help="rows to show")
    _json_flag(summary)
    summary.set_defaults(run=data_commands.summary)
    datasets = commands.add_parser("datasets", help="known MovieLens releases and where they are")
    _json_flag(datasets)
    datasets.set_defaults(run=data_commands.datasets)
    fetch = commands.add_parser("fetch", help="download and verify a MovieLens release")
    fetch.add_argument("name", choices=sorted(REGISTRY))
    fetch.add_argument("--data", type=input_path, metavar="PATH",
                       help="verify this zip or folder instead")  # fmt: skip
    fetch.set_defaults(run=data_commands.fetch)
    synth = commands.add_parser("synth", help="write synthetic MovieLens-shaped ratings")
    synth.add_argument("--users", type=whole(1), default=943)
    synth.add_argument("--items", type=whole(1), default=1682)
    synth.add_argument("--ratings", type=whole(1), default=100_000)
    synth.add_argument("--factors", type=whole(1, MAX_FACTORS), default=8)
    synth.add_argument("--seed", type=seed, default=0)
    synth.add_argument("--out", type=output_file(".parquet"), required=True,
                       help="parquet file to write")  # fmt: skip
    synth.set_defaults(run=data_commands.synth)


def _add_model_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    train = commands.add_parser("train", help="train a recipe, show its epochs, keep the model")
    data_commands.data_arguments(train)
    data_commands.features_arguments(train)
    _training_options(train)
    train.add_argument("--valid-pct", type=real(0, 1, below=True), metavar="SHARE",
                       help="validation share in [0, 1) (default 0.1; 0: train on "
                       "everything)")  # fmt: skip
    train.add_argument(
        "--split", default="random", choices=["random", "temporal", *model_commands.FOLDS],
        help="how to hold out validation ratings (u1..u5, ua, ub: ml-100k's own files)",
    )  # fmt: skip
    train.add_argument("--out", type=output_file(), metavar="MODEL", help="model file to write")
    train.add_argument(
        "--ratings-db", type=input_path, metavar="PATH",
        help="also train on the ratings a running service stored (collabfilter serve --db)",
    )  # fmt: skip
    train.add_argument(
        "--with-ranking", action="store_true",
        help="also fit the topn recipe on the same ratings and keep both in the model file "
        "(ratings from the first, top-N lists from the second)",
    )  # fmt: skip
    _json_flag(train)
    train.set_defaults(run=model_commands.train)


def _add_apply_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    evaluate = commands.add_parser("evaluate", help="a model's error on ratings, beside baselines")
    evaluate.add_argument("model", type=input_path, help="model file")
    data_commands.data_arguments(evaluate, model_columns=True)
    _unknown_option(evaluate, "fail (default), leave them out (nan), or the bias baseline")
    _json_flag(evaluate)
    evaluate.set_defaults(run=apply_commands.evaluate)
    predict = commands.add_parser("predict", help="predict a CSV/parquet of user,item pairs")
    predict.add_argument("model", type=input_path, help="model file")
    predict.add_argument("pairs", type=input_path,
                         help="CSV/TSV/parquet file of pairs")  # fmt: skip
    predict.add_argument("--out", type=output_file(*apply_commands.TABLE_SUFFIXES),
                         help="CSV, TSV or parquet to write (default: CSV on stdout)")  # fmt: skip
    data_commands.pairs_arguments(predict)
    _unknown_option(predict, "fail (default), NaN, or the bias baseline")
    _json_flag(predict)
    predict.set_defaults(run=apply_commands.predict)


def _add_lr_find_command(commands: argparse._SubParsersAction[Parser]) -> None:
    lr_find = commands.add_parser("lr-find", help="sweep learning rates and suggest a peak")
    data_commands.data_arguments(lr_find)
    _training_options(lr_find, sweep=True)
    lr_find.add_argument("--plot", type=output_file(".png", ".svg", ".pdf"),
                         help="plot of loss against rate (.png, .svg or .pdf)")  # fmt: skip
    _json_flag(lr_find)
    lr_find.set_defaults(run=model_commands.lr_find)


def _unknown_option(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument("--unknown", choices=["error", "nan", "baseline"], default="error",
                        help=f"pairs with an unknown user or item: {meaning}")  # fmt: skip


def _add_query_commands(commands: argparse._SubParsersAction[Parser]) -> None:
    recommend = commands.add_parser("recommend", help="top-N for a known or a brand-new user")
    recommend.add_argument("model", type=input_path, help="model file")
    who = recommend.add_mutually_exclusive_group()
    who.add_argument("--user", help="a user id of the training data")
    who.add_argument("--rated", action="append", metavar="ITEM=RATING",
                     help='a new user\'s rating, e.g. "Star Wars (1977)=5" (repeat)')  # fmt: skip
    recommend.add_argument("--features", action="append", type=feature_value,
                           metavar="NAME=VALUE",
                           help="a new user's side feature, e.g. age=25 (repeat; with or "
                           "without --rated; a model trained with user features)")  # fmt: skip
    recommend.add_argument("-n", type=whole(1), default=10, help="how many items")
    recommend.add_argument("--min-ratings", type=whole(1), help="only items rated this often")
    recommend.add_argument(
        "--by", choices=["auto", "rating", "ranking"], default="auto",
        help="order by the file's ranking model when it has one (auto), or by predicted rating",
    )  # fmt: skip
    _json_flag(recommend)
    recommend.set_defaults(run=query_commands.recommend)
    similar = commands.add_parser("similar", help="the items nearest to an item")
    similar.add_argument("model", type=input_path, help="model file")
    similar.add_argument("item", help='an item id or title, e.g. "star wars"')
    similar.add_argument("-n", type=whole(1), default=10, help="how many items")
    similar.add_argument("--min-ratings", type=whole(1), help="only items rated this often")
    _json_flag(similar)
    similar.set_defaults(run=query_commands.similar)
    interpret = commands.add_parser("interpret", help="biases, principal components, item map")
    interpret.add_argument("model", type=input_path, help="model file")
    interpret.add_argument("--out", type=output_folder, default="out/interpret",
                           help="folder (created)")  # fmt: skip
    interpret.add_argument("--among", type=whole(2), default=1000,
                           help="the most rated items shown (at least 2)")  # fmt: skip
    _json_flag(interpret)
    interpret.set_defaults(run=query_commands.interpret)


SERVE_TYPES: dict[str, Callable[[str], object]] = {
    "model": input_path, "db": input_path, "port": whole(0, 65535), "workers": whole(1),
    "reload_poll": real(0), "min_ratings": whole(1),
}  # fmt: skip
"""The service's paths and numeric options, checked when the command line is read (the
service checks them again when it starts)."""


def _add_serve_command(commands: argparse._SubParsersAction[Parser]) -> None:
    from collabfilter.serve import __main__ as serve_cli

    serve = commands.add_parser(
        "serve", help="serve a model file over HTTP, with a web page (FastAPI on uvicorn)"
    )
    serve_cli.add_arguments(serve, SERVE_TYPES)

    def run_server(args: argparse.Namespace, console: Console) -> int:
        serve_cli.serve(args)
        return 0

    serve.set_defaults(run=run_server)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``collabfilter`` command."""
    parser = Parser(prog="collabfilter", description="Collaborative filtering on explicit ratings.")
    parser.add_argument("--version", action="version", version=f"collabfilter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(commands)
    _add_model_commands(commands)
    _add_apply_commands(commands)
    _add_lr_find_command(commands)
    _add_query_commands(commands)
    _add_serve_command(commands)
    return parser


FAILURES: tuple[tuple[type[BaseException], int], ...] = (
    (ChecksumError, EXIT_CHECKSUM),
    (DatasetUnavailableError, EXIT_UNAVAILABLE),
    (ModelFileError, EXIT_MODEL_FILE),
    (ListenError, EXIT_LISTEN),
    (UnknownIdError, EXIT_UNKNOWN),
    (ConfigError, EXIT_USAGE),
    (FileNotFoundError, EXIT_MISSING),
    (DataError, EXIT_DATA),
    (CollabFilterError, EXIT_ERROR),
    (OSError, EXIT_ERROR),  # the system refused: a disk full, a file we may not write
    (MemoryError, EXIT_ERROR),
)
"""Expected failures and their exit codes, most specific first."""


def _failure_text(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return f"not enough memory for this command{f' ({error})' if str(error) else ''}"
    return in_flags(str(error))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    # Logs and pipes get a fixed, wide layout instead of rich's 80-column fallback.
    # Markup and emoji codes are off: ids, titles and paths print as they are.
    console = Console(width=None if sys.stdout.isatty() else 120, markup=False, emoji=False)
    command: Command = args.run
    errors = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

    def report(kind: str, style: str, text: str) -> None:  # one line each, whatever the width
        errors.print(Text.assemble((f"{kind}:", style), " ", one_line(text)))

    with warnings.catch_warnings():
        warnings.simplefilter("always", CollabFilterWarning)
        warnings.showwarning = lambda message, *_: report(
            "warning", "yellow", in_flags(str(message))
        )
        try:
            return command(args, console)
        except tuple(kind for kind, _ in FAILURES) as error:
            code = next(code for kind, code in FAILURES if isinstance(error, kind))
            report("error", "bold red", _failure_text(error))
            return code
        except Exception as error:  # a bug: still one line, saying where
            report("error", "bold red", describe_bug(error))
            return EXIT_ERROR


def run() -> NoReturn:
    """The ``collabfilter`` executable."""
    sys.exit(main())
