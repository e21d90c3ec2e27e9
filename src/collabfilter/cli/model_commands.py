"""Commands that train or apply a model: ``train``, ``evaluate``, ``predict``, ``lr-find``.

Torch and the training engine are imported inside the commands, so that commands about
data start without them.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from collabfilter.cli.data_commands import load_ratings, read_pairs, require_file
from collabfilter.cli.output import emit_json, records, show
from collabfilter.data import Ratings, Split, load_movielens_fold, split_random, split_temporal
from collabfilter.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collabfilter.fitted import FittedModel

FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def make_split(ratings: Ratings, args: argparse.Namespace) -> Split:
    """The train/validation split the options ask for (ml-100k's folds from its files)."""
    if args.split in FOLDS:
        if args.dataset != "ml-100k":
            raise DataError(f"--split {args.split} is one of ml-100k's canonical folds")
        return load_movielens_fold(args.split, path=args.data)
    if args.split == "temporal":
        return split_temporal(ratings, args.valid_pct)
    return split_random(ratings, args.valid_pct, seed=args.seed)


def _recipe(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The model config, fit config and model changes the options ask for."""
    from collabfilter.config import with_changes
    from collabfilter.models import RECIPES, TrainConfig

    if args.model not in RECIPES:
        raise ConfigError(f"--model {args.model!r} is not a recipe; known: {', '.join(RECIPES)}")
    model_config, config = RECIPES[args.model]
    model_changes = {"n_factors": args.factors} if args.factors is not None else {}
    if args.epochs is not None:  # a sweep is the sampler's epoch
        config = config.with_length(args.epochs)
    changes = {
        name: value
        for name, value in (("lr", args.lr), ("batch_size", args.bs))
        if value is not None
    }
    if args.wd is not None:
        changes.update(weight_decay=args.wd, item_weight_decay=args.wd, bias_weight_decay=args.wd)
    if changes:
        if not isinstance(config, TrainConfig):
            raise ConfigError(
                f"the {args.model} recipe is not trained by gradient steps: --lr, --wd and "
                "--bs do not apply"
            )
        config = with_changes(config, **changes)
        if args.wd is not None:
            config = replace(config, tune_decay=False)  # the caller chose the decay
    return model_config, config, model_changes


def train(args: argparse.Namespace, console: Console) -> int:
    """Train a recipe; under torchrun, data-parallel on every rank (rank 0 reports and
    writes the model file)."""
    from collabfilter import distributed

    group = distributed.start_from_environment()
    try:
        return _train(args, console, group)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace, console: Console, group: Any) -> int:
    from collabfilter import distributed
    from collabfilter.cli.demo import metrics_table
    from collabfilter.config import RunOptions
    from collabfilter.progress import HEADER, format_record
    from collabfilter.train import collab_learner

    ratings = load_ratings(args)
    split = make_split(ratings, args)
    if args.ratings_db is not None:
        split = _with_stored_ratings(split, args.ratings_db)
    valid = split.valid if len(split.valid) else None
    model_config, config, model_changes = _recipe(args)
    main = group is None or group.is_main
    quiet = args.json or not main
    if not quiet:
        console.print(f"{ratings}\nsplit: {split.report}")
        if group is not None:
            console.print(f"data-parallel on {group.world_size} processes (torch.distributed)")
        console.print(HEADER, style="bold", highlight=False)
    learner = collab_learner(
        split.train, valid, model=model_config, config=config,
        options=RunOptions(seed=args.seed, progress=False),
        on_epoch=None if quiet else lambda r: console.print(format_record(r), highlight=False),
        **model_changes,
    )  # fmt: skip
    start = time.perf_counter()
    learner.fit_recipe()
    seconds = time.perf_counter() - start
    ranker = None
    if args.with_ranking and learner.predicts_ratings:  # one file serving both kinds of query
        ranker = collab_learner(split.train, valid, model="topn",
                                options=RunOptions(seed=args.seed, progress=False))  # fmt: skip
        ranker.fit_recipe()
    digest = None if group is None else distributed.check_identical(learner.model)
    if not main:
        return 0
    choice = learner.decay_choice
    table = metrics_table(learner, split, args.model, seconds) if valid is not None else None
    if args.out is not None:
        learner.save(args.out, ranking=ranker)
    if args.json:
        emit_json({
            "model": args.model, "seconds": seconds, "history": records(learner.history_frame()),
            "metrics": learner.metrics, "validation": None if table is None else records(table),
            "model_file": None if args.out is None else str(args.out),
            "processes": 1 if group is None else group.world_size, "parameters_sha256": digest,
            "ranking": None if ranker is None else {"report": str(ranker.report),
                                                    "metrics": ranker.metrics},
        })  # fmt: skip
        return 0
    if choice is not None:
        console.print(f"note: {choice.describe()}", highlight=False)
    for fitted in (learner, ranker):
        if fitted is not None and fitted.report is not None:
            console.print(str(fitted.report), highlight=False, markup=False)
    if digest is not None:
        console.print(
            f"parameters identical on all {group.world_size} ranks (sha256 {digest[:16]})"
        )
    if table is not None:
        show(console, table, "Validation error beside the baselines", digits=4)
    if args.out is not None:
        console.print(f"\nmodel written to {args.out}")
    else:
        console.print("\n(no model file written: pass --out MODEL to keep it)", style="dim")
    return 0


def _with_stored_ratings(split: Split, path: Path) -> Split:
    """``split`` with the ratings a service stored added to its training part (a user's
    stored rating of an item replaces the one in the data)."""
    import pandas as pd

    from collabfilter.serve import read_stored_ratings

    stored = read_stored_ratings(require_file(path, "ratings database"))
    if stored.empty:
        return split
    train = split.train.to_frame()[["user", "item", "rating"]]
    stored = stored[["user", "item", "rating"]]
    combined = pd.concat([train, stored], ignore_index=True)
    titles = split.train.items.titles
    merged = Ratings.from_df(combined, scale=split.train.scale, duplicates="last")
    if titles is not None:
        merged = merged.with_titles(dict(zip(split.train.items.ids, titles, strict=True)))
    return Split(merged, split.valid, split.report)


def load(path: Path) -> FittedModel:
    """The model file at ``path`` (a clear error when absent or damaged)."""
    from collabfilter.persist import load_model

    return load_model(require_file(path, "model file"))


def evaluate(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.evaluation.baselines import standard_baselines
    from collabfilter.metrics import error_metrics

    model = load(args.model)
    ratings = load_ratings(args)
    rows = [{"model": "model", **error_metrics(
        model.predict_ratings(ratings, unknown=args.unknown), ratings.rating)}]  # fmt: skip
    known = model.resolve_ratings(ratings).known
    train = model.training_ratings()
    for name, baseline in standard_baselines().items():
        predicted = baseline.fit(train).predict_ratings(ratings, unknown="baseline")
        rows.append({"model": name, **error_metrics(predicted, ratings.rating)})
    import pandas as pd

    table = pd.DataFrame(rows)
    if args.json:
        emit_json({"ratings": len(ratings), "unknown_pairs": int((~known).sum()),
                   "results": records(table)})  # fmt: skip
        return 0
    console.print(f"{ratings}: {int((~known).sum())} pairs with an unknown user or item")
    show(console, table, f"Error on {args.dataset}", digits=4)
    return 0


def predict(args: argparse.Namespace, console: Console) -> int:
    model = load(args.model)
    frame: Any = read_pairs(args.pairs, args.user, args.item)
    frame["prediction"] = model.predict_ratings(
        frame, unknown=args.unknown, user=args.user, item=args.item
    )
    if args.json:
        emit_json({"predictions": records(frame)})
    elif args.out is not None:
        _write_table(frame, args.out)
        console.print(f"wrote {len(frame):,} predictions to {args.out}")
    else:
        console.file.write(frame.to_csv(index=False))
    return 0


def _write_table(frame: Any, path: Path) -> None:
    """CSV or parquet by suffix, atomically (a temporary sibling, then a rename)."""
    import os

    from collabfilter.data.io import atomic_target

    temporary, final = atomic_target(path)
    try:
        if final.suffix == ".parquet":
            frame.to_parquet(temporary, index=False)
        else:
            frame.to_csv(temporary, index=False)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


def lr_find(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.config import RunOptions
    from collabfilter.train import collab_learner

    ratings = load_ratings(args)
    model_config, config, model_changes = _recipe(args)
    learner = collab_learner(ratings, model=model_config, config=config,
                             options=RunOptions(seed=args.seed, progress=False),
                             **model_changes)  # fmt: skip
    result = learner.lr_find()
    if args.plot is not None:
        from collabfilter import plots

        plots.plot_lr_finder(result, args.plot)
    document = {"suggestion": result.suggestion, "steep": result.steep,
                "minimum": result.minimum, "steps": len(result.lrs)}  # fmt: skip
    if args.json:
        emit_json(document)
        return 0
    console.print(
        f"suggested peak rate {result.suggestion:.3g} (lowest smoothed loss; fastai's steep "
        f"{result.steep:.3g}, minimum {result.minimum:.3g}) over {len(result.lrs)} steps"
    )
    if args.plot is not None:
        console.print(f"plot written to {args.plot}")
    return 0
