"""Learning-rate schedules as pure functions of training progress in [0, 1].

A schedule returns the multiplier of the peak rate at a point of the run, so the
optimizer, the learning-rate finder and the plots all read the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[float], float]


def _cosine(start: float, end: float, t: float) -> float:
    """From ``start`` at t=0 to ``end`` at t=1 along half a cosine."""
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def one_cycle(
    progress: float, *, pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5
) -> float:
    """fastai's one-cycle: cosine warm-up from ``1/div`` to 1 over ``pct_start`` of the
    run, then cosine annealing to ``1/(div * div_final)``.

    Large rates early explore; the long cool-down settles the embeddings.
    """
    if progress < pct_start:
        return _cosine(1 / div, 1.0, progress / pct_start)
    return _cosine(1.0, 1 / (div * div_final), (progress - pct_start) / (1 - pct_start))


def cosine(progress: float) -> float:
    """Cosine annealing from 1 to 0."""
    return _cosine(1.0, 0.0, progress)


def constant(progress: float) -> float:
    """The peak rate throughout."""
    return 1.0


def exponential_sweep(progress: float, start: float, end: float) -> float:
    """The rate (not a multiplier) ``start * (end/start) ** progress`` (lr finder)."""
    return float(start * (end / start) ** progress)


def get_schedule(name: str, *, pct_start: float = 0.25) -> Schedule:
    """The schedule called ``name`` (``one_cycle``, ``cosine``, ``constant``)."""
    if name == "one_cycle":
        return lambda t: one_cycle(t, pct_start=pct_start)
    if name == "cosine":
        return cosine
    if name == "constant":
        return constant
    raise ValueError(f"unknown schedule {name!r}; known: one_cycle, cosine, constant")
