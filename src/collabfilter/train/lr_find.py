"""The learning-rate finder's result and its suggestions (fastai's ``lr_find``).

A sweep's losses are one batch each, so they are noisy, and they fall partly because
the model trains during the sweep. The suggestions are read off a smoothed curve
that neither lags nor follows outliers: a running median (one bad batch cannot move
it) then a running mean, both centred, over a window that grows with the number of
steps. A trailing moving average, as fastai's recorder keeps, lags by about its window:
its minimum sits at rates where the raw loss is already rising, which is where a
suggestion must not land.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from collabfilter.figures import axes_or_new

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_WINDOW_SHARE = 12
"""The smoothing window spans a twelfth of the steps (9 of fastai's 100): wide enough
that one batch's noise averages out, narrow beside a valley a decade of rates wide
(a fifth of a sweep over fastai's five decades)."""

_JUDGED = 4
"""A sweep is judged (``problem``) from four windows of steps: with fewer, a first and
a last window cover most of it."""


@dataclass(frozen=True, repr=False)
class LRFinderResult:
    """Loss along an exponential sweep of learning rates, and suggested peak rates.

    Rates are in the units of the optimizer swept: per rating for ``sgd``, Adam's step
    size for ``adam``/``adamw``.

    Attributes:
        lrs: the rates tried, increasing, shape ``(n,)``.
        losses: each step's training MSE (one batch), shape ``(n,)``.
        smoothed: the losses smoothed without lag (see the module docstring), ``(n,)``.
        suggestion: where the smoothed loss enters the floor of its valley: the first
            rate whose smoothed loss is within the curve's own noise of the lowest
            one. The loss still falls there, and noise that moves the lowest point
            about the flat floor does not move this rate. It is never the first rate
            unless the curve rises from the start (a warning says so).
        steep: where the smoothed loss falls fastest (per decade of rate) before its
            lowest point, the first window of steps left out (the smoother has no
            points before them); fastai's ``steep``.
        lowest: the rate of lowest smoothed loss; rates above it make the loss rise.
        problem: why the suggestion cannot be relied on (the loss is lowest among the
            first rates, or still falls at the last), or None; :meth:`Learner.lr_find`
            warns with it. Sweeps shorter than four smoothing windows are not judged.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggestion: float
    steep: float
    lowest: float
    problem: str | None = None

    @property
    def minimum(self) -> float:
        """A tenth of the rate of lowest smoothed loss, fastai's ``minimum``. A rate
        more than a decade below the valley is on another scale than the optimizer
        swept: :meth:`Learner.fit_one_cycle` reads an sgd rate below it as an Adam step
        size."""
        return self.lowest / 10

    def __repr__(self) -> str:
        return (
            f"LRFinderResult(suggestion={self.suggestion:.3g}, steep={self.steep:.3g}, "
            f"minimum={self.minimum:.3g}, lowest={self.lowest:.3g}, {len(self.lrs)} steps "
            f"from {self.lrs[0]:.3g} to {self.lrs[-1]:.3g})"
            if len(self.lrs)
            else "LRFinderResult(no steps)"
        )

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the losses, their smoothed curve and the suggestion (log rate axis).

        Args:
            ax: matplotlib axes to draw on (None: a new figure's).

        Returns:
            The axes drawn on.

        Raises:
            CollabFilterError: without matplotlib (the ``plots`` extra).
        """
        ax = axes_or_new(ax, (7, 4.5))
        ax.plot(self.lrs, self.losses, color="tab:blue", alpha=0.35, label="loss per batch")
        ax.plot(self.lrs, self.smoothed, color="tab:blue", label="smoothed")
        ax.axvline(self.suggestion, color="tab:red", linestyle="--",
                   label=f"suggestion {self.suggestion:.2g}")  # fmt: skip
        ax.axvline(self.steep, color="tab:gray", linestyle=":", label=f"steep {self.steep:.2g}")
        finite = self.losses[np.isfinite(self.losses)]
        if len(finite):  # a diverged tail would stretch the axis and flatten the valley
            top = min(float(finite.max()), 2 * float(np.nanmin(self.smoothed)))
            ax.set_ylim(top=max(top, float(finite.min())) * 1.05)
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss (MSE)",
               title="Learning rate finder")  # fmt: skip
        ax.legend()
        ax.grid(alpha=0.3)
        return ax


def smooth(losses: np.ndarray) -> tuple[np.ndarray, int]:
    """The losses smoothed without lag, and the window used (odd, at least 3).

    Non-finite losses (a diverged last step) are left out of the windows they fall in.
    """
    window = max(3, (len(losses) // _WINDOW_SHARE) | 1)
    series = pd.Series(np.where(np.isfinite(losses), losses, np.nan))
    median = series.rolling(window, center=True, min_periods=1).median()
    mean = median.rolling(window, center=True, min_periods=1).mean()
    return mean.to_numpy(dtype=np.float64), window


def suggest(lrs: np.ndarray, losses: np.ndarray) -> LRFinderResult:
    """The suggestions of :class:`LRFinderResult` from a sweep's rates and losses,
    with the ``problem`` that makes them unreliable when the curve has one."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    if len(losses) < 3 or not np.isfinite(losses).any():
        rate = float(lrs[0]) if len(lrs) else float("nan")
        return LRFinderResult(lrs, losses, losses.copy(), rate, rate, rate)
    smoothed, window = smooth(losses)
    lowest = int(np.nanargmin(smoothed))
    band = _noise_band(losses[: lowest + 1], smoothed[: lowest + 1], window)
    falling = smoothed[: lowest + 1] <= smoothed[lowest] + band
    entry = int(np.argmax(falling))
    # too few points cannot tell a flat curve from noise: nothing to report then
    judged = len(losses) >= _JUDGED * window
    problem = _problem(lrs, lowest, window) if judged else None
    steep = _steepest(lrs, smoothed, window, lowest)
    return LRFinderResult(
        lrs, losses, smoothed, float(lrs[entry]), float(lrs[steep]), float(lrs[lowest]), problem,
    )  # fmt: skip


def _problem(lrs: np.ndarray, lowest: int, window: int) -> str | None:
    """Why the curve gives no reliable rate, or None: its lowest point lies among the
    first or the last rates tried, so the valley may extend beyond the sweep."""
    if lowest < window:
        return (
            f"the loss is lowest among the first rates tried ({lrs[0]:.3g}...), so the "
            "suggestion is one of them: sweep from a lower start_lr (or the model is "
            "trained already and no rate helps)"
        )
    if lowest >= len(lrs) - 1 - window // 2:
        return (
            f"the loss still falls at the last rate tried ({lrs[-1]:.3g}); sweep to a higher end_lr"
        )
    return None


def _noise_band(losses: np.ndarray, smoothed: np.ndarray, window: int) -> float:
    """How far the smoothed curve may stray by chance: the spread of the losses about
    it (by their median absolute deviation, which a few bad batches do not inflate),
    over the root of the window (a window's mean averages that many batches)."""
    residual = (losses - smoothed)[np.isfinite(losses)]
    if len(residual) < 2:
        return 0.0
    spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))  # Gaussian sigma
    return float(spread / np.sqrt(window))


def _steepest(lrs: np.ndarray, smoothed: np.ndarray, window: int, lowest: int) -> int:
    """The index, from the end of the first window up to ``lowest``, where the smoothed
    loss falls fastest per unit of log rate (measured across a window, not between
    neighbours, whose difference is mostly noise)."""
    half = window // 2
    centres = np.arange(window, lowest + 1)
    centres = centres[centres + half < len(lrs)]
    if not len(centres):
        return lowest
    rise = smoothed[centres + half] - smoothed[centres - half]
    run = np.log(lrs[centres + half]) - np.log(lrs[centres - half])
    return int(centres[int(np.argmin(rise / run))])
