"""The learning-rate finder's result and its suggestions (fastai's ``lr_find``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LRFinderResult:
    """Loss along an exponential sweep of learning rates, and suggested peak rates.

    ``suggestion`` is 1.5 times the rate at the lowest smoothed loss, the single step
    that helps most. One-cycle warms up from a 25th of its peak and anneals to almost
    nothing, so its rates average about half its peak: a peak of 1.5 times that rate
    keeps most steps at or below it, which suits per-rating sgd. fastai's rules are
    beside it: ``steep``, where the smoothed loss falls fastest, and ``minimum``, a
    tenth of the rate at the lowest loss; they suit Adam, which reaches its loss
    minimum at much smaller rates. Rates are in the units of the optimizer swept: per
    rating for ``sgd``, Adam's step size for ``adam``/``adamw``.
    """

    lrs: np.ndarray
    losses: np.ndarray
    suggestion: float
    steep: float
    minimum: float


def suggest(lrs: np.ndarray, losses: np.ndarray) -> LRFinderResult:
    """The suggestions of :class:`LRFinderResult` from a sweep's losses (smoothed by an
    exponential moving average, as fastai's recorder does: one batch's loss is noisy)."""
    if len(losses) < 3:
        rate = float(lrs[0]) if len(lrs) else float("nan")
        return LRFinderResult(lrs, losses, rate, rate, rate)
    smoothed = pd.Series(losses).ewm(alpha=0.1).mean().to_numpy()
    lowest = int(np.argmin(smoothed))
    slopes = np.gradient(smoothed, np.log(lrs))
    steepest = int(np.argmin(slopes[: max(3, lowest + 1)]))
    return LRFinderResult(
        lrs, losses, float(1.5 * lrs[lowest]), float(lrs[steepest]), float(lrs[lowest] / 10)
    )
