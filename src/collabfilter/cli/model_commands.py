"""Commands that train: ``train`` and ``lr-find``.

Torch and the training engine are imported inside the commands, so that commands about
data start without them.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from collabfilter.cli.data_commands import (
    check_source,
    load_ratings,
    require_distinct,
    require_file,
    with_feature_files,
)
from collabfilter.cli.messages import printable
from collabfilter.cli.output import emit_json, records, show
from collabfilter.data import Ratings, Split, load_movielens_fold, split_random, split_temporal
from collabfilter.errors import CollabFilterError, ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from collabfilter.train import Learner

FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
DEFAULT_VALID_PCT = 0.1
RANKING_RELEVANCE = 4.0
"""Held-out ratings at least this high are the hits a ranking model's lists should find."""


def make_split(ratings: Ratings, args: argparse.Namespace) -> Split:
    """The train/validation split the options ask for (ml-100k's folds from its files;
    ``--valid-pct 0``: every rating trains and nothing is held out)."""
    if args.split in FOLDS:
        return load_movielens_fold(args.split, path=args.data)
    share = DEFAULT_VALID_PCT if args.valid_pct is None else args.valid_pct
    if share == 0:
        from collabfilter.data.split import make_split as split_by_mask

        nothing = np.zeros(len(ratings), dtype=bool)
        return split_by_mask(ratings, nothing, "no validation part (--valid-pct 0)")
    if args.split == "temporal":
        return split_temporal(ratings, share)
    return split_random(ratings, share, seed=args.seed)


def _check_split(args: argparse.Namespace) -> None:
    """Refuse split options that cannot go together, before reading any data."""
    if args.split in FOLDS:
        if args.dataset != "ml-100k":
            raise ConfigError(f"--split {args.split} is one of ml-100k's canonical folds")
        if args.valid_pct is not None:
            raise ConfigError(
                f"--split {args.split} holds out ml-100k's own test file; --valid-pct does not "
                "apply"
            )


def _recipe(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The model config, fit config and model changes the options ask for."""
    from collabfilter.config import with_changes
    from collabfilter.models import RECIPES, TrainConfig

    if args.model not in RECIPES:
        raise ConfigError(f"--model {args.model!r} is not a recipe; known: {', '.join(RECIPES)}")
    model_config, config = RECIPES[args.model]
    model_changes = {}
    if args.factors is not None:
        if "n_factors" not in {f.name for f in dataclasses.fields(model_config)}:
            raise ConfigError(f"--factors does not apply to the {args.model} recipe")
        model_changes["n_factors"] = args.factors
    epochs = getattr(args, "epochs", None)
    if epochs is not None:  # a sweep is the sampler's epoch
        try:
            config = config.with_length(epochs)
        except ConfigError:
            raise ConfigError(
                f"--epochs does not apply to the {args.model} recipe (it fits in closed form)"
            ) from None
    changes = {
        name: value
        for name, value in (("lr", getattr(args, "lr", None)), ("batch_size", args.bs))
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

    _check_split(args)
    check_source(args)
    recipe = _recipe(args)
    if args.with_ranking and args.model == "topn":
        raise ConfigError("--with-ranking adds a topn model beside a rating model; --model topn "
                          "is already a ranking model")  # fmt: skip
    if args.ratings_db is not None:
        require_file(args.ratings_db, "ratings database")
    require_distinct(args.out, "--out", {"ratings file": Path(args.dataset),
                                          "ratings database": args.ratings_db})  # fmt: skip
    group = distributed.start_from_environment()
    try:
        return _train(args, console, group, recipe)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace, console: Console, group: Any, recipe: Any) -> int:
    from collabfilter import distributed
    from collabfilter.config import RunOptions
    from collabfilter.progress import HEADER, format_record
    from collabfilter.train import collab_learner

    ratings = with_feature_files(load_ratings(args), args)
    split = make_split(ratings, args)
    if args.ratings_db is not None:
        split = _with_stored_ratings(split, args.ratings_db)
    valid = split.valid if len(split.valid) else None
    model_config, config, model_changes = recipe
    main = group is None or group.is_main
    quiet = args.json or not main
    if not quiet:
        console.print(printable(f"{ratings}\nsplit: {split.report}"))
        for side, (without, unknown) in ratings.feature_coverage().items():
            n = ratings.n_users if side == "user" else ratings.n_items
            line = f"{side} features: {n - without:,} of {n:,} {side}s have a row"
            console.print(f"{line} ({unknown:,} rows for ids without ratings)", highlight=False)
        if args.new_items:
            new = int((ratings.item_counts() == 0).sum())
            console.print(f"{new:,} new items (in the item features, without a rating)")
        if group is not None:
            console.print(f"data-parallel on {group.world_size} processes (torch.distributed)")
        console.print(HEADER, style="bold", highlight=False)
    learner = collab_learner(
        split.train, valid, model=model_config, config=config,
        options=RunOptions(seed=args.seed, progress=False),
        on_epoch=None if quiet else lambda r: console.print(format_record(r), highlight=False),
        features=args.features, **model_changes,
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
    table, heading = (None, "") if valid is None else validation_table(learner, split, args.model,
                                                                        seconds)  # fmt: skip
    if args.out is not None:
        _save(learner, args.out, ranker)
    trained = Trained(learner, ranker, seconds, table, heading, digest,
                      1 if group is None else group.world_size)  # fmt: skip
    if args.json:
        emit_json(trained.document(args))
    else:
        trained.show(console, args)
    return 0


@dataclass(frozen=True)
class Trained:
    """What a training run produced, for the report."""

    learner: Learner
    ranker: Learner | None
    seconds: float
    table: pd.DataFrame | None
    heading: str
    digest: str | None
    processes: int

    def document(self, args: argparse.Namespace) -> dict[str, Any]:
        """The ``--json`` answer."""
        learner, ranker, table = self.learner, self.ranker, self.table
        return {
            "model": args.model, "seconds": self.seconds,
            "history": records(learner.history_frame()), "metrics": learner.metrics,
            "validation": None if table is None else records(table),
            "model_file": None if args.out is None else str(args.out),
            "processes": self.processes, "parameters_sha256": self.digest,
            "features": {"user": list(learner.features_used.user),
                         "item": list(learner.features_used.item),
                         "reason": learner.features_used.reason},
            "ranking": None if ranker is None else {"report": str(ranker.report),
                                                    "metrics": ranker.metrics},
        }  # fmt: skip

    def show(self, console: Console, args: argparse.Namespace) -> None:
        """The report for people: choices made, the validation table, the file."""
        if self.learner.decay_choice is not None:
            console.print(f"note: {self.learner.decay_choice.describe()}", highlight=False)
        console.print(printable(f"features: {self.learner.features_used.describe()}"),
                      highlight=False)  # fmt: skip
        for fitted in (self.learner, self.ranker):
            if fitted is not None and fitted.report is not None:
                console.print(str(fitted.report), highlight=False)
        if self.digest is not None:
            console.print(
                f"parameters identical on all {self.processes} ranks (sha256 {self.digest[:16]})"
            )
        if self.table is not None:
            show(console, self.table, self.heading, digits=4)
        if args.out is not None:
            console.print(printable(f"\nmodel written to {args.out}"))
        else:
            console.print("\n(no model file written: pass --out MODEL to keep it)", style="dim")


def validation_table(
    learner: Learner, split: Split, label: str, seconds: float
) -> tuple[pd.DataFrame, str]:
    """The validation part's verdict and its heading: rating error beside the baselines
    for a rating model; top-N metrics beside the most popular items for a ranking model
    (its scores are not ratings)."""
    from collabfilter.cli.demo import metrics_table
    from collabfilter.evaluation.topn import evaluate_ranking

    if learner.predicts_ratings:
        return metrics_table(
            learner, split, label, seconds
        ), "Validation error beside the baselines"
    table = evaluate_ranking(learner, split, ks=(10,), relevance=RANKING_RELEVANCE,
                             popularity_weights=(0.0,), unknown="skip")  # fmt: skip
    heading = (
        f"Top-10 lists on the validation part (hits: held-out ratings >= {RANKING_RELEVANCE:g}; "
        "seen items excluded)"
    )
    return table, heading


def _save(learner: Learner, path: Path, ranker: Learner | None) -> None:
    """Write the model file (its folder created when missing), or fail on one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        learner.save(path, ranking=ranker)
    except OSError as error:
        raise CollabFilterError(
            f"cannot write the model file {printable(str(path))}: {error.strerror or error}"
        ) from None


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


def lr_find(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.config import RunOptions
    from collabfilter.models import TrainConfig
    from collabfilter.train import collab_learner

    check_source(args)
    model_config, config, model_changes = _recipe(args)
    if not isinstance(config, TrainConfig):
        raise ConfigError(
            f"lr-find sweeps the learning rate of recipes trained by gradient steps; the "
            f"{args.model} recipe is not one"
        )
    ratings = load_ratings(args)
    learner = collab_learner(ratings, model=model_config, config=config,
                             options=RunOptions(seed=args.seed, progress=False),
                             **model_changes)  # fmt: skip
    result = learner.lr_find()
    if args.plot is not None:
        from collabfilter import plots

        plots.plot_lr_finder(result, args.plot)
    document = {"suggestion": result.suggestion, "steep": result.steep,
                "minimum": result.minimum, "lowest": result.lowest, "problem": result.problem,
                "steps": len(result.lrs)}  # fmt: skip
    if args.json:
        emit_json(document)
        return 0
    console.print(
        f"suggested peak rate {result.suggestion:.3g} (where the smoothed loss enters its "
        f"valley; lowest at {result.lowest:.3g}; fastai's steep {result.steep:.3g}, minimum "
        f"{result.minimum:.3g}) over {len(result.lrs)} steps"
    )
    if args.plot is not None:
        console.print(printable(f"plot written to {args.plot}"))
    return 0
