"""Commands that ask a saved model: ``recommend``, ``similar``, ``interpret``."""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console

from collabfilter.cli.apply_commands import load
from collabfilter.cli.messages import printable
from collabfilter.cli.output import emit_json, records, show
from collabfilter.errors import ConfigError, DataError


def parse_rated(pairs: list[str]) -> dict[str, float]:
    """``["Star Wars (1977)=5", "50=4"]`` -> ``{"Star Wars (1977)": 5.0, "50": 4.0}``."""
    rated: dict[str, float] = {}
    for pair in pairs:
        item, sep, value = pair.rpartition("=")
        if not sep or not item.strip():
            raise DataError(f"--rated takes ITEM=RATING (an id or a title), got {pair!r}")
        name = item.strip()
        if name in rated:
            raise DataError(f"--rated names {name!r} twice; rate each item once")
        try:
            rating = float(value)
        except ValueError:
            raise DataError(f"--rated {pair!r}: the rating {value!r} is not a number") from None
        if not math.isfinite(rating):
            raise DataError(f"--rated {pair!r}: the rating must be a finite number")
        rated[name] = rating
    return rated


def recommend(args: argparse.Namespace, console: Console) -> int:
    from collabfilter import recommend as rec

    if args.user is not None and args.features:
        raise ConfigError("--features describe a new user; --user names one of the data")
    if args.user is None and not args.rated and not args.features:
        raise ConfigError("say who: --user ID, or a new user's --rated ITEM=RATING and/or "
                          "--features NAME=VALUE")  # fmt: skip
    model = load(args.model)
    if args.user is None:
        rated = parse_rated(args.rated) if args.rated else {}
        features = dict(args.features) if args.features else None
        frame = rec.recommend_new_user(model, rated, k=args.n, min_ratings=args.min_ratings,
                                       by=args.by, features=features)  # fmt: skip
        described = f"{len(rated)} ratings" + (f", {len(features)} features" if features else "")
        heading = f"{len(frame)} recommendations for a new user ({described})"
    else:
        lists = rec.recommend(model, [args.user], k=args.n, min_ratings=args.min_ratings,
                              by=args.by)  # fmt: skip
        frame = lists.to_frame(model).drop(columns="user")
        heading = f"{len(frame)} recommendations for user {lists.users[0]}"
    if args.json:
        user = None if args.user is None else _raw(model, args.user)
        emit_json({"user": user, "items": records(frame)})
        return 0
    show(console, frame, heading)
    return 0


def _raw(model: Any, user: str) -> Any:
    """The raw id (in its own type) that a user id typed as text names."""
    return model.users.id_of([model.users.index_of(user)])[0]


def similar(args: argparse.Namespace, console: Console) -> int:
    from collabfilter.interpret import find_item, item_labels, similar_items

    model = load(args.model)
    target = find_item(model, args.item, most_rated=True)
    frame = similar_items(model, args.item, k=args.n, min_ratings=args.min_ratings)
    title = str(item_labels(model, [target])[0])
    if args.json:
        emit_json({"item": model.items.id_of([target])[0], "title": title,
                   "items": records(frame)})  # fmt: skip
        return 0
    show(console, frame, f"The {len(frame)} items nearest to {title!r}")
    return 0


def interpret(args: argparse.Namespace, console: Console) -> int:
    from collabfilter import interpret as what
    from collabfilter import plots

    model = load(args.model)
    biases = what.item_biases(model, among=args.among)
    pca = what.item_pca(model, 3, among=args.among)
    ends = [what.pca_extremes(pca, c, n=10) for c in range(pca.coordinates.shape[1])]
    args.out.mkdir(parents=True, exist_ok=True)
    biases.to_csv(args.out / "item_biases.csv", index=False)
    written = [args.out / "item_biases.csv", plots.plot_item_map(pca, args.out / "item_map.png")]
    if args.json:
        emit_json({
            "lowest_biases": records(biases.head(15)),
            "highest_biases": records(biases.tail(15)[::-1]),
            "components": [{"explained": float(share), "ends": records(frame)}
                           for share, frame in zip(pca.explained, ends, strict=True)],
            "files": [str(p) for p in written],
        })  # fmt: skip
        return 0
    columns = ["title", "bias", "mean rating", "ratings"]
    show(
        console, biases.head(15)[columns], f"Lowest item biases (among the {args.among} most rated)"
    )
    show(console, biases.tail(15)[::-1][columns], "Highest item biases")
    for component, (share, frame) in enumerate(zip(pca.explained, ends, strict=True)):
        show(console, frame, f"Principal component {component + 1} of item factors ({share:.0%})")
    names = ", ".join(p.name for p in written)
    console.print(printable(f"\nwritten to {args.out}/: {names}"))
    return 0
