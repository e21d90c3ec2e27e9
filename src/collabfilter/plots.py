"""Plots saved to files (matplotlib, no display needed): training curves, the learning
rate finder, predictions against truth, rating distributions and the map of items.

matplotlib is the ``plots`` extra; it is imported when a plot is drawn, with a clear
error naming the extra when missing. Files are written to a temporary name and then
renamed, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from collabfilter.errors import CollabFilterError
from collabfilter.interpret import ItemPCA
from collabfilter.train import LRFinderResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 80


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise CollabFilterError(
            "plots need matplotlib: pip install 'collabfilter[plots]'"
        ) from error
    return plt


def _save(figure: Figure, path: str | Path) -> Path:
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.stem}.{os.getpid()}.tmp{final.suffix}")
    try:
        figure.savefig(temporary, dpi=DPI, bbox_inches=None)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
        _pyplot().close(figure)
    return final


def plot_losses(history: pd.DataFrame, path: str | Path) -> Path:
    """Training and validation loss (MSE) per epoch."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    if history["valid_loss"].notna().any():
        axes.plot(history["epoch"], history["valid_loss"], marker="o", label="valid")
    axes.set(xlabel="epoch", ylabel="loss (MSE)", title="Training curves")
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Loss against learning rate (log scale), the suggestion marked."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(result.lrs, result.losses)
    axes.axvline(result.suggestion, color="tab:red", linestyle="--",
                 label=f"suggestion {result.suggestion:.2g}")  # fmt: skip
    axes.set(
        xscale="log", xlabel="learning rate", ylabel="loss (MSE)", title="Learning rate finder"
    )
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_predicted_vs_actual(predictions: np.ndarray, truth: np.ndarray, path: str | Path) -> Path:
    """Hexbin of predicted against actual ratings, with the diagonal."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 5))
    cells = axes.hexbin(truth, predictions, gridsize=30, cmap="viridis", mincnt=1)
    low, high = (
        float(min(truth.min(), predictions.min())),
        float(max(truth.max(), predictions.max())),
    )
    axes.plot([low, high], [low, high], color="white", linewidth=1)
    axes.set(xlabel="actual rating", ylabel="predicted rating", title="Predicted vs actual")
    figure.colorbar(cells, ax=axes, label="ratings")
    return _save(figure, path)


def plot_rating_distribution(
    ratings: np.ndarray, path: str | Path, predictions: np.ndarray | None = None
) -> Path:
    """Histogram of ratings (and of predictions, when given)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    values, counts = np.unique(ratings, return_counts=True)
    width = float(np.min(np.diff(values))) * 0.8 if len(values) > 1 else 0.8
    axes.bar(values, counts / counts.sum(), width=width, alpha=0.7, label="ratings")
    if predictions is not None:
        axes.hist(predictions, bins=40, density=True, alpha=0.5, label="predictions")
    axes.set(xlabel="rating", ylabel="share", title="Rating distribution")
    axes.legend()
    return _save(figure, path)


def plot_item_map(
    pca: ItemPCA,
    path: str | Path,
    *,
    components: tuple[int, int] = (0, 1),
    n_labels: int = 50,
) -> Path:
    """Items on two principal components of their factors, the most rated labelled.

    Saved as PNG, or as SVG (zoomable in a browser) when ``path`` ends in ``.svg``.
    """
    plt = _pyplot()
    first, second = components
    x, y = pca.coordinates[:, first], pca.coordinates[:, second]
    figure, axes = plt.subplots(figsize=(11, 9))
    axes.scatter(x, y, s=8, alpha=0.3, color="tab:blue")
    shown = np.arange(min(n_labels, len(x)))  # pca.item_idx is ordered by popularity
    for k in shown:
        axes.annotate(str(pca.labels[k]), (x[k], y[k]), fontsize=7, alpha=0.9)
    explained = pca.explained
    axes.set(
        xlabel=f"component {first + 1} ({explained[first]:.0%} of variance)",
        ylabel=f"component {second + 1} ({explained[second]:.0%} of variance)",
        title=f"Map of the {len(x)} most rated items (item factors, PCA)",
    )
    return _save(figure, path)
