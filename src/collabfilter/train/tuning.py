"""Choosing the decay strength for the data, on ratings carved out of the training set.

How strongly to regularise depends on the data (its noise, how many ratings the rows
have, how long the tail is): on ml-100k and on a long-tailed catalogue of ml-latest-
small's shape the best strength differs. So the default recipe does not fix it: it
carves a tenth of the training ratings out (users and items keep ratings in the rest),
trains the recipe at multiples of its decay, and keeps the multiple that predicts the
carved ratings best; the winner is then trained on all the training ratings. The
caller's held-out data is never seen.

Trials run the recipe's real schedule: with a shortened one, undertrained models favour
weak decay, and midway through a one-cycle run the ranking of strengths is not yet the
final one (it settles in the last quarter). So the search is sequential successive
halving: the recipe's own strength runs in full, each other multiple is abandoned when
it trails the best run so far at the same epoch (clearly at 60% of its schedule, at all
at 75%), and the search steps outwards by factors of two while the best is at an edge.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace

from collabfilter.config import RunOptions
from collabfilter.data import Ratings, Split, split_random
from collabfilter.errors import DataWarning
from collabfilter.models import FamilyModule
from collabfilter.progress import EpochRecord
from collabfilter.sgd import TrainConfig

CARVED = 0.1
"""Share of the training ratings carved out to score the candidates."""
CHECKPOINTS = ((0.6, 0.01), (0.75, 0.0))
"""(share of a trial's schedule, relative margin): a trial trailing the best finished
run at that epoch by more than the margin is abandoned. Midway the ranking is not yet
settled, so only a clear loser stops early; at three quarters it has settled."""
LIMITS = (1 / 16, 16.0)
MIN_CARVED = 10
"""Fewer carved ratings than this cannot tell decay strengths apart: the recipe's is kept."""

Trial = Callable[
    [FamilyModule, Split, TrainConfig, Callable[[EpochRecord], None], frozenset[int] | None], None
]
"""Trains a model on a split's training part with a config, validating on its other
part after the given epochs only (None: after every epoch), and calls back after every
epoch (the callback may abandon the trial)."""


class _Abandon(Exception):
    """Raised from a trial's epoch callback to stop a trial that cannot win."""


@dataclass(frozen=True)
class DecayChoice:
    """The outcome of :func:`choose_decay`.

    Attributes:
        multiplier: the chosen multiple of the recipe's decay strengths.
        scores: carved RMSE by multiplier tried (at the last epoch run).
        abandoned: multipliers stopped at the checkpoint.
        carved: ratings carved out to score them.
    """

    multiplier: float
    scores: dict[float, float]
    abandoned: frozenset[float]
    carved: int

    def describe(self) -> str:
        """One line for the training output."""
        if not self.scores:
            return (
                f"decay x{self.multiplier:g} kept as the recipe's: {self.carved:,} carved "
                "ratings are too few to choose it on"
            )
        tried = ", ".join(
            f"x{m:g}: {r:.4f}{' (stopped)' if m in self.abandoned else ''}"
            for m, r in sorted(self.scores.items())
        )
        return (
            f"decay x{self.multiplier:g} chosen on {self.carved:,} training ratings carved "
            f"out for it (carved RMSE {tried})"
        )


def choose_decay(
    train: Ratings, initial: FamilyModule, config: TrainConfig, options: RunOptions, trial: Trial
) -> DecayChoice:
    """Pick the multiple of ``config``'s decay that scores best on carved ratings.

    Args:
        train: the training ratings.
        initial: the model before training (copied for every trial).
        config: the recipe.
        options: run options (their seed also seeds the carving).
        trial: runs one trial (see :data:`Trial`).
    """
    part = split_random(train, CARVED, seed=options.seed, keep_known=True)
    if len(part.valid) < MIN_CARVED:
        warnings.warn(
            f"{len(train):,} training ratings leave {len(part.valid)} to choose the decay "
            f"strength on (at least {MIN_CARVED} are needed): the recipe's is kept",
            DataWarning,
            stacklevel=3,
        )
        return DecayChoice(1.0, {}, frozenset(), len(part.valid))
    checkpoints = {max(1, round(share * config.epochs)): margin for share, margin in CHECKPOINTS}
    # Only the checkpoints' and the last epoch's scores are read; early stopping and
    # keep_best read every epoch's, so then every epoch is scored.
    every = config.early_stopping is not None or config.keep_best
    scored = None if every else frozenset(checkpoints) | {config.epochs}
    leader: dict[int, float] = {}  # the best finished trial's carved RMSE by epoch
    scores: dict[float, float] = {}
    abandoned: set[float] = set()

    def run(multiplier: float) -> None:
        path: dict[int, float] = {}

        def watch(record: EpochRecord) -> None:
            if scored is not None and record.epoch not in scored:
                return
            assert record.valid_rmse is not None
            path[record.epoch] = record.valid_rmse
            margin = checkpoints.get(record.epoch)
            if (
                margin is not None
                and leader
                and record.valid_rmse > leader[record.epoch] * (1 + margin)
            ):
                raise _Abandon

        trial_config = replace(config.scaled_decay(multiplier), tune_decay=False)
        try:
            trial(copy.deepcopy(initial), part, trial_config, watch, scored)
        except _Abandon:
            abandoned.add(multiplier)
        scores[multiplier] = path[max(path)]
        if multiplier not in abandoned and (not leader or path[max(path)] < leader[max(leader)]):
            leader.clear()
            leader.update(path)

    for multiplier in (1.0, 0.5, 2.0):
        run(multiplier)
    while True:
        finished = {m: r for m, r in scores.items() if m not in abandoned}
        best = min(finished, key=finished.__getitem__)
        edge = best / 2 if best == min(scores) else best * 2 if best == max(scores) else None
        if edge is None or not LIMITS[0] <= edge <= LIMITS[1]:
            return DecayChoice(best, scores, frozenset(abandoned), len(part.valid))
        run(edge)
