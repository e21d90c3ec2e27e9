"""Commands that apply a model file to a table: ``evaluate`` and ``predict``.

Tables are read by the column names the model was trained with unless ``--user``,
``--item`` (and ``--rating``) name others, and predictions keep ids in the model's type.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from collabfilter.cli.data_commands import (
    check_source,
    id_columns,
    load_ratings,
    read_pairs,
    require_distinct,
    require_file,
)
from collabfilter.cli.messages import printable
from collabfilter.cli.output import emit_json, records, show
from collabfilter.errors import CollabFilterError, DataError, DataWarning, UnknownIdError

if TYPE_CHECKING:
    import pandas as pd

    from collabfilter.fitted import FittedModel

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet")
"""What ``predict --out`` writes: text by suffix (tab-separated for .tsv/.tab), or parquet."""


def load(path: Path) -> FittedModel:
    """The model file at ``path`` (a clear error when absent or damaged)."""
    from collabfilter.persist import load_model

    return load_model(require_file(path, "model file"))


def _unknown_hint(error: UnknownIdError) -> UnknownIdError:
    error.args = (f"{error}; --unknown nan or --unknown baseline predicts such pairs anyway",)
    return error


def evaluate(args: argparse.Namespace, console: Console) -> int:
    import pandas as pd

    from collabfilter.evaluation.baselines import standard_baselines
    from collabfilter.metrics import error_metrics

    check_source(args)  # before the model file is read
    model = load(args.model)
    ratings = load_ratings(args, model.columns)
    try:
        predicted = model.predict_ratings(ratings, unknown=args.unknown)
    except UnknownIdError as error:
        raise _unknown_hint(error) from None
    known = model.resolve_ratings(ratings).known
    # Under --unknown nan, the pairs the model cannot predict are left out, for the
    # baselines too, so that every row of the table scores the same pairs.
    kept = known if args.unknown == "nan" else np.ones(len(ratings), dtype=bool)
    if not kept.any():
        raise DataError(
            f"none of the {len(ratings):,} ratings has a user and an item the model knows: "
            "nothing to evaluate (--unknown baseline predicts them from the biases)"
        )
    truth = ratings.rating[kept]
    rows = [{"model": "model", **error_metrics(predicted[kept], truth)}]
    train = model.training_ratings()
    for name, baseline in standard_baselines().items():
        guessed = baseline.fit(train).predict_ratings(ratings, unknown="baseline")
        rows.append({"model": name, **error_metrics(guessed[kept], truth)})
    table = pd.DataFrame(rows)
    unknown = int((~known).sum())
    if args.json:
        emit_json({"ratings": len(ratings), "unknown_pairs": unknown,
                   "evaluated": int(kept.sum()), "results": records(table)})  # fmt: skip
        return 0
    left_out = f", left out ({int(kept.sum()):,} evaluated)" if args.unknown == "nan" else ""
    console.print(printable(f"{ratings}: {unknown} pairs with an unknown user or item{left_out}"))
    show(console, table, f"Error on {args.dataset}", digits=4)
    return 0


def predict(args: argparse.Namespace, console: Console) -> int:
    require_file(args.pairs, "pairs file")
    require_distinct(args.out, "--out", {"model file": args.model})
    model = load(args.model)
    named, note = id_columns(args, model.columns, ("user", "item"))
    user, item = named["user"], named["item"]
    frame: Any = read_pairs(args.pairs, user, item, sep=args.sep, encoding=args.encoding,
                            note=note)  # fmt: skip
    try:
        predictions = model.predict_ratings(frame, unknown=args.unknown, user=user, item=item)
    except UnknownIdError as error:
        raise _unknown_hint(error) from None
    if "prediction" in frame.columns:
        warnings.warn("the pairs file's column 'prediction' is replaced by the model's",
                      DataWarning, stacklevel=1)  # fmt: skip
    frame["prediction"] = predictions
    vocabularies = {user: model.users}
    vocabularies.setdefault(item, model.items)  # one column may name both
    for column, vocabulary in vocabularies.items():
        frame[column] = typed_ids(frame[column], vocabulary, column)
    if args.json:
        emit_json({"predictions": records(frame)})
    elif args.out is not None:
        _write_table(frame, args.out)
        console.print(printable(f"wrote {len(frame):,} predictions to {args.out}"))
    else:
        console.file.write(printable(frame.to_csv(index=False)))
    return 0


def typed_ids(column: pd.Series, vocabulary: Any, name: str) -> pd.Series:
    """A column of ids in the type of the model's ids (integers for an integer
    vocabulary), as JSON and parquet output promise; it stays text, with a warning, when
    some id cannot be written in that type (unknown ids kept under ``--unknown``)."""
    import pandas as pd

    from collabfilter.data.encoding import integer_keys_of

    values = column.to_numpy(dtype=object)
    if vocabulary.ids.dtype.kind != "i":
        return pd.Series([v if isinstance(v, str) else str(v) for v in values],
                         index=column.index, dtype=object)  # fmt: skip
    keys, named = integer_keys_of(values)
    if named.all():
        return pd.Series(keys, index=column.index)
    odd = values[~named][0]
    warnings.warn(
        f"column {name!r} stays text: {odd!r} is not an integer id like the model's",
        DataWarning,
        stacklevel=1,
    )
    return pd.Series([str(v) for v in values], index=column.index, dtype=object)


def _write_table(frame: Any, path: Path) -> None:
    """Parquet, or text (tab-separated for .tsv/.tab), by suffix, atomically (a temporary
    sibling, then a rename), its folder created when missing."""
    import os

    from collabfilter.data.io import atomic_target

    try:
        temporary, final = atomic_target(path)
        try:
            if final.suffix.lower() == ".parquet":
                frame.to_parquet(temporary, index=False)
            else:
                sep = "\t" if final.suffix.lower() in (".tsv", ".tab") else ","
                frame.to_csv(temporary, index=False, sep=sep)
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise CollabFilterError(
            f"cannot write {printable(str(path))}: {error.strerror or error}"
        ) from None
