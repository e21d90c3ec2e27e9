"""Commands about data: ``summary``, ``datasets``, ``fetch``, ``synth``, ``demo``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from collabfilter.cli.messages import printable
from collabfilter.cli.options import (
    encoding,
    feature_choice,
    feature_kind,
    input_path,
    separator,
    source,
)
from collabfilter.cli.output import emit_json
from collabfilter.cli.tables import print_summary
from collabfilter.data import REGISTRY, Ratings, generate_ratings, load_movielens
from collabfilter.data.features import SideFeatures
from collabfilter.data.fetch import cache_dir, data_dir, locate
from collabfilter.data.io import read_table
from collabfilter.errors import ConfigError, DataError, DatasetUnavailableError

FILE_FLAGS = {
    "user": "--user", "item": "--item", "rating": "--rating", "timestamp": "--timestamp",
    "title": "--title", "sep": "--sep", "no_header": "--no-header", "encoding": "--encoding",
}  # fmt: skip
"""Options that describe a file's layout (a MovieLens release has a known one)."""
ID_FIELDS = ("user", "item", "rating")
"""Fields whose column a model file remembers and later tables are read by."""


def check_source(args: argparse.Namespace) -> Path | None:
    """The ratings file the options name (None for a MovieLens release), after checking
    that it exists and that the options fit it; reads nothing."""
    source = args.dataset
    if source in REGISTRY:
        given = [
            flag for name, flag in FILE_FLAGS.items() if getattr(args, name) not in (None, False)
        ]
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'describe' if len(given) > 1 else 'describes'} a file's "
                f"layout; {source}'s is known (leave {'them' if len(given) > 1 else 'it'} out, "
                "or give a file)"
            )
        return None
    if args.data is not None:
        raise ConfigError(
            f"--data locates a MovieLens release ({', '.join(REGISTRY)}); {source!r} is a file"
        )
    path = Path(source)
    if path.is_dir():
        raise FileNotFoundError(f"{source!r} is a folder, not a ratings file")
    if not path.is_file():
        raise FileNotFoundError(
            f"{source!r} is neither a known dataset ({', '.join(REGISTRY)}) nor an existing file"
        )
    return path


def load_ratings(
    args: argparse.Namespace, model_columns: Mapping[str, str] | None = None
) -> Ratings:
    """A named MovieLens release, or a CSV/TSV/parquet file with mapped columns.

    Columns not named by ``--user``, ``--item`` or ``--rating`` are those the model was
    trained on (``model_columns``), else ``user``, ``item`` and ``rating``.
    """
    path = check_source(args)
    if path is None:
        return load_movielens(args.dataset, path=args.data)
    named, inherited = id_columns(args, model_columns, ID_FIELDS)
    mapping = {**named, "timestamp": args.timestamp, "title": args.title}
    try:
        if path.suffix.lower() == ".parquet":
            return Ratings.from_parquet(path, **mapping)
        return Ratings.from_csv(
            path, sep=args.sep or ",", header=not args.no_header,
            encoding=args.encoding or "utf-8", **mapping,
        )  # fmt: skip
    except DataError as error:
        if inherited and "missing column" in str(error):
            error.args = (f"{error}; {inherited}",)
        raise


def id_columns(
    args: argparse.Namespace, model_columns: Mapping[str, str] | None, fields: tuple[str, ...]
) -> tuple[dict[str, str], str]:
    """The column of each of ``fields``: the option's, else the model's, else the field's
    own name; and a note naming the columns taken from the model ("" if none)."""
    remembered = dict(model_columns or {})
    named = {field: getattr(args, field) or remembered.get(field) or field for field in fields}
    taken = [f"{f} {remembered[f]!r}" for f in fields
             if getattr(args, f) is None and remembered.get(f, f) != f]  # fmt: skip
    note = (
        f"the model was trained on a table with columns {', '.join(taken)}, which are read "
        f"unless {', '.join('--' + f for f in fields)} name others"
        if taken
        else ""
    )
    return named, note


def data_arguments(
    parser: argparse.ArgumentParser, *, dataset: bool = True, model_columns: bool = False
) -> None:
    """The options that say where ratings come from and how a file is laid out."""
    if dataset:
        parser.add_argument(
            "dataset", nargs="?", default="ml-100k", type=source,
            help=f"a MovieLens name ({', '.join(REGISTRY)}) or a CSV/TSV/parquet file",
        )  # fmt: skip
    default = "the model's training column, else " if model_columns else ""
    parser.add_argument("--data", type=input_path, metavar="PATH",
                        help="zip or folder holding the release")  # fmt: skip
    parser.add_argument("--user", help=f"user id column (files; default: {default}user)")
    parser.add_argument("--item", help=f"item id column (files; default: {default}item)")
    parser.add_argument("--rating", help=f"rating column (files; default: {default}rating)")
    parser.add_argument("--timestamp", help="timestamp column (files)")
    parser.add_argument("--title", help="item title column (files)")
    parser.add_argument("--sep", type=separator,
                        help="field separator (files; default ','; '\\t' for tabs)")  # fmt: skip
    parser.add_argument("--no-header", action="store_true", help="the file has no header")
    parser.add_argument("--encoding", type=encoding, help="text encoding (files; default utf-8)")


def features_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that attach side features and choose which a model reads."""
    for side in ("user", "item"):
        parser.add_argument(f"--{side}-features", type=input_path, metavar="FILE",
                            help=f"a CSV/TSV/parquet table of {side} features, one row per "
                            f"{side} id (UTF-8; tabs separate .tsv files, commas the "
                            "others)")  # fmt: skip
    parser.add_argument("--features-id", metavar="COLUMN",
                        help="the id column of the feature files (default: the ratings' "
                        "user or item column)")  # fmt: skip
    parser.add_argument("--feature-kind", type=feature_kind, action="append", default=[],
                        metavar="NAME=KIND",
                        help="a feature column's kind: category, multi or number (default: "
                        "inferred; repeatable)")  # fmt: skip
    parser.add_argument(
        "--multi-sep",
        type=separator,
        default="|",
        help="what joins the values of a multi-label feature (default '|')",
    )
    parser.add_argument("--new-items", action="store_true",
                        help="ids of --item-features without a rating join the model's "
                        "items: new items it predicts and lists, marked cold (bayes; other "
                        "models give them the bias baseline and never list them)")  # fmt: skip
    parser.add_argument("--features", type=feature_choice, default="auto",
                        help="the features the model reads: auto (what the data carries, "
                        "when the model reads features), none, or columns such as "
                        "genres,user:age")  # fmt: skip


def with_feature_files(ratings: Ratings, args: argparse.Namespace) -> Ratings:
    """``ratings`` with the feature tables the command line names attached."""
    kinds = dict(args.feature_kind)
    tables: dict[str, SideFeatures | None] = {"user": None, "item": None}
    for side in tables:
        path = getattr(args, f"{side}_features")
        if path is None:
            continue
        id_column = args.features_id or getattr(args, side, None) or side
        tables[side] = SideFeatures.read(
            path, id_column=id_column, kind=side, separator=args.multi_sep,
            kinds={n: k for n, k in kinds.items() if n != id_column},
        )  # fmt: skip
    ratings = ratings.with_features(tables["user"], tables["item"], separator=args.multi_sep)
    if args.new_items:
        if tables["item"] is None:
            raise ConfigError("--new-items takes its new items from --item-features FILE")
        ratings = ratings.with_new_items()
    return ratings


def pairs_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say how a file of (user, item) pairs is laid out."""
    parser.add_argument("--user", help="user id column (default: the model's, else user)")
    parser.add_argument("--item", help="item id column (default: the model's, else item)")
    parser.add_argument("--sep", type=separator,
                        help="field separator (default: tab for .tsv/.tab, else ',')")  # fmt: skip
    parser.add_argument("--encoding", type=encoding, default="utf-8", help="text encoding")


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
    seconds = time.perf_counter() - start
    console.print(Text.assemble((printable(str(ratings)), "bold"), f"  loaded in {seconds:.2f} s"))
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
    console.print(f"COLLABFILTER_DATA_DIR: {printable(str(data_dir() or '(not set)'))}")
    console.print(f"cache: {printable(str(cache_dir()))}")
    for row in rows:
        place = row["location"] or "not on this machine (downloads on first use)"
        console.print(f"{row['name']:16s} {row['megabytes']:8.1f} MB  {printable(str(place))}")
    return 0


def fetch(args: argparse.Namespace, console: Console) -> int:
    location = locate(REGISTRY[args.name].archive, args.data)
    console.print(f"{args.name}: verified at {printable(str(location))}")
    return 0


def synth(args: argparse.Namespace, console: Console) -> int:
    start = time.perf_counter()
    synthetic = generate_ratings(
        args.users, args.items, args.ratings, n_factors=args.factors, seed=args.seed
    )
    synthetic.ratings.to_parquet(args.out)
    seconds = time.perf_counter() - start
    console.print(printable(f"wrote {synthetic.ratings} to {args.out} in {seconds:.1f} s"))
    return 0


def demo(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.cli.demo import run_demo

    return run_demo(console, data=args.data, out=args.out)


def require_file(path: Path, what: str) -> Path:
    """``path`` when it is a file, else a clear error naming it."""
    if path.is_dir():
        raise FileNotFoundError(f"{what} {printable(str(path))!r} is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {printable(str(path))}")
    return path


def require_distinct(out: Path | None, flag: str, inputs: dict[str, Path | None]) -> None:
    """Refuse an output that would overwrite one of the command's inputs."""
    if out is None:
        return
    for what, path in inputs.items():
        if path is not None and path.exists() and out.resolve() == path.resolve():
            raise ConfigError(f"{flag} {printable(str(out))} is the {what} itself")


def read_pairs(path: Path, user: str, item: str, *, sep: str | None = None,
               encoding: str = "utf-8", note: str = "") -> Any:  # fmt: skip
    """A CSV/TSV/parquet table of pairs, its id columns read as text from text files
    (matched to a model's ids by the vocabulary's type, so "007" stays "007").

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        DataError: for a file that cannot be read, or without the id columns (``note``
            says where their names came from).
    """
    require_file(path, "pairs file")
    shown = printable(str(path))
    frame = read_table(path, text_columns=(user, item), sep=sep, encoding=encoding)
    missing = [c for c in dict.fromkeys((user, item)) if c not in frame.columns]
    if missing:
        found = [str(c) for c in frame.columns[:20]]
        hint = f"; {note}" if note else " (name them with --user and --item)"
        one_column = "; a file read as one column needs --sep" if len(frame.columns) == 1 else ""
        raise DataError(f"{shown}: no column(s) {missing}; found {found}{hint}{one_column}")
    return frame
