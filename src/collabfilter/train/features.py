"""Which side features a learner trains with: ``features="auto" | "none" | [names]``.

``"auto"`` uses every column the training ratings carry when the model's family reads
features, and none otherwise (saying why); a list names columns, as ``"genres"`` or,
where both sides have the name, ``"item:year"``; asking a family that reads no
features for some is an error, never a setting quietly ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from collabfilter.data import Ratings
from collabfilter.errors import ConfigError
from collabfilter.models.family import Family

FeatureChoice = Literal["auto", "none"] | Sequence[str]
SIDES = ("user", "item")


@dataclass(frozen=True)
class FeaturesUsed:
    """The feature columns a fit used, per side, and why none were when none were."""

    user: tuple[str, ...] = ()
    item: tuple[str, ...] = ()
    reason: str = ""

    def describe(self) -> str:
        """One line for reports (``user: age, gender; item: genres``)."""
        parts = [f"{side}: {', '.join(names)}" for side, names in self._sides() if names]
        return "; ".join(parts) if parts else f"none ({self.reason})"

    def _sides(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return (("user", self.user), ("item", self.item))


def choose_features(
    train: Ratings, choice: FeatureChoice, family: Family
) -> tuple[Ratings, FeaturesUsed]:
    """``train`` carrying only the features the fit will read, and what they are.

    Raises:
        ConfigError: for a choice that is not ``"auto"``, ``"none"`` or a list of
            column names, names no side has (or both have, unqualified), or names
            given to a family that reads no features.
    """
    carried = {
        side: features.columns
        for side in SIDES
        if (features := getattr(train, f"{side}_features")) is not None
    }
    if isinstance(choice, str):
        if choice not in ("auto", "none"):
            raise ConfigError(
                f"features must be 'auto', 'none' or a list of columns, got {choice!r}"
            )
        if choice == "none" or not carried:
            reason = "features='none'" if choice == "none" else "the ratings carry none"
            return train.keep_features(), FeaturesUsed(reason=reason)
        if not family.uses_features:
            reason = f"the {family.name} family does not read side features"
            return train.keep_features(), FeaturesUsed(reason=reason)
        sides = family.feature_sides
        user, item = (carried.get(side, ()) if side in sides else () for side in SIDES)
        used = FeaturesUsed(user, item)
        if not used.user and not used.item:
            reason = f"the {family.name} family reads {' and '.join(sides)} features only"
            return train.keep_features(), FeaturesUsed(reason=reason)
        return train.keep_features(used.user, used.item), used
    names = list(choice)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"features must name columns as strings, got {names!r}")
    if names and not family.uses_features:
        raise ConfigError(
            f"the {family.name} family does not read side features; got features={names!r} "
            "(use a family that does, such as model='bayes', or features='none')"
        )
    picked: dict[str, list[str]] = {side: [] for side in SIDES}
    for name in names:
        side, column = _resolve(name, carried)
        if side not in family.feature_sides:
            raise ConfigError(
                f"the {family.name} family reads {' and '.join(family.feature_sides)} "
                f"features only; got {name!r}"
            )
        picked[side].append(column)
    used = FeaturesUsed(tuple(picked["user"]), tuple(picked["item"]), "features=[]")
    return train.keep_features(used.user, used.item), used


def _resolve(name: str, carried: dict[str, tuple[str, ...]]) -> tuple[str, str]:
    """(side, column) of ``"column"`` or ``"side:column"``."""
    side, _, column = name.rpartition(":")
    if side:
        if side not in SIDES or column not in carried.get(side, ()):
            raise ConfigError(f"no feature column {name!r}: the ratings carry {_listing(carried)}")
        return side, column
    sides = [s for s in SIDES if column in carried.get(s, ())]
    if len(sides) != 1:
        problem = "both sides have" if sides else "no side has"
        raise ConfigError(
            f"{problem} a feature column {column!r} (write 'user:{column}' or "
            f"'item:{column}'); the ratings carry {_listing(carried)}"
        )
    return sides[0], column


def _listing(carried: dict[str, tuple[str, ...]]) -> str:
    if not carried:
        return "no features"
    return "; ".join(f"{side}: {', '.join(names)}" for side, names in carried.items())
