"""Plots saved to files (matplotlib, no display needed): training curves, the learning
rate finder, predictions against truth, rating distributions and the map of items.

Each ``plot_*`` function draws with a ``draw_*`` function on axes of its own and saves
them; the ``draw_*`` functions take any axes (a notebook's, a figure of several plots).
matplotlib is the ``plots`` extra; it is imported when a plot is drawn, with a clear
error naming the extra when missing. Files are written to a temporary name and then
renamed, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from collabfilter.figures import axes_or_new, require_matplotlib
from collabfilter.interpret import ItemPCA
from collabfilter.train import LRFinderResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

DPI = 80


def _file_axes(figsize: tuple[float, float]) -> Axes:
    """The axes of a new figure for a file: drawn by Agg at the files' DPI, outside
    pyplot, so saving never needs a display nor changes the caller's backend (a
    notebook keeps showing its own plots)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _save(axes: Axes, path: str | Path) -> Path:
    """Write the figure of ``axes`` to ``path`` by way of a temporary file."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.stem}.{os.getpid()}.tmp{final.suffix}")
    try:
        _figure(axes).savefig(temporary, dpi=DPI, bbox_inches=None)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def _figure(axes: Axes) -> Figure:
    """The root figure of ``axes``: what saves and draws (``axes.figure`` is a
    SubFigure for axes drawn on one, and a SubFigure's ``figure`` is its root, the
    root's its own, from matplotlib 3.8 on; ``get_figure(root=True)`` needs 3.10)."""
    return axes.figure.figure


def draw_losses(history: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Training and validation loss (MSE) per epoch; epochs are whole, and so are the
    ticks."""
    axes = axes_or_new(ax, (7, 4.5))  # first: without matplotlib, the error names the extra
    from matplotlib.ticker import MaxNLocator

    axes.plot(history["epoch"], history["train_loss"], marker="o", label="train")
    if history["valid_loss"].notna().any():
        axes.plot(history["epoch"], history["valid_loss"], marker="o", label="valid")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="epoch", ylabel="loss (MSE)", title="Training curves")
    axes.legend()
    axes.grid(alpha=0.3)
    return axes


def plot_losses(history: pd.DataFrame, path: str | Path) -> Path:
    """Training and validation loss (MSE) per epoch, saved to ``path``."""
    return _save(draw_losses(history, _file_axes((7, 4.5))), path)


def plot_lr_finder(result: LRFinderResult, path: str | Path) -> Path:
    """Loss against learning rate (log scale), the suggestion marked, saved to
    ``path`` (drawn by :meth:`LRFinderResult.plot`)."""
    return _save(result.plot(_file_axes((7, 4.5))), path)


def draw_predicted_vs_actual(
    predictions: np.ndarray, truth: np.ndarray, ax: Axes | None = None
) -> Axes:
    """Hexbin of predicted against actual ratings, with the diagonal drawn above it
    (the cells are densest along it, where a line beneath them would vanish)."""
    axes = axes_or_new(ax, (6, 5))
    cells = axes.hexbin(truth, predictions, gridsize=30, cmap="viridis", mincnt=1)
    low, high = (
        float(min(truth.min(), predictions.min())),
        float(max(truth.max(), predictions.max())),
    )
    axes.plot([low, high], [low, high], color="tab:red", linewidth=1.5, linestyle="--",
              label="predicted = actual", zorder=cells.get_zorder() + 1)  # fmt: skip
    axes.set(xlabel="actual rating", ylabel="predicted rating", title="Predicted vs actual")
    axes.legend(loc="upper left")
    _figure(axes).colorbar(cells, ax=axes, label="ratings")
    return axes


def plot_predicted_vs_actual(predictions: np.ndarray, truth: np.ndarray, path: str | Path) -> Path:
    """:func:`draw_predicted_vs_actual` saved to ``path``."""
    axes = draw_predicted_vs_actual(predictions, truth, _file_axes((6, 5)))
    return _save(axes, path)


def plot_rating_distribution(
    ratings: np.ndarray, path: str | Path, predictions: np.ndarray | None = None
) -> Path:
    """Histogram of ratings (and of predictions, when given)."""
    axes = _file_axes((7, 4.5))
    values, counts = np.unique(ratings, return_counts=True)
    width = float(np.min(np.diff(values))) * 0.8 if len(values) > 1 else 0.8
    axes.bar(values, counts / counts.sum(), width=width, alpha=0.7, label="ratings")
    if predictions is not None:
        axes.hist(predictions, bins=40, density=True, alpha=0.5, label="predictions")
    axes.set(xlabel="rating", ylabel="share", title="Rating distribution")
    axes.legend()
    return _save(axes, path)


def draw_item_map(
    pca: ItemPCA,
    ax: Axes | None = None,
    *,
    components: tuple[int, int] = (0, 1),
    n_labels: int = 50,
) -> Axes:
    """Items on two principal components of their factors, up to ``n_labels`` named.

    Labels go first to the items at the ends of both components (what the components
    mean), then to the most rated; a label that would overlap one already placed is
    left out, so every name shown can be read.
    """
    first, second = components
    x, y = pca.coordinates[:, first], pca.coordinates[:, second]
    axes = axes_or_new(ax, (11, 9))
    axes.scatter(x, y, s=8, alpha=0.3, color="tab:blue")
    explained = pca.explained
    axes.set(
        xlabel=f"component {first + 1} ({explained[first]:.0%} of variance)",
        ylabel=f"component {second + 1} ({explained[second]:.0%} of variance)",
        title=f"Map of the {len(x)} most rated items (item factors, PCA)",
    )
    _place_labels(axes, pca.labels, x, y, _label_order(x, y), n_labels)
    return axes


def _label_order(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Items by their claim to a label: the two at each end of each component first,
    then by popularity (``ItemPCA`` lists the most rated first)."""
    ends = [order[[0, 1, -1, -2]] for order in (np.argsort(x), np.argsort(y))] if len(x) > 3 else []
    first = list(dict.fromkeys(int(i) for i in np.concatenate(ends or [np.zeros(0, int)])))
    taken = set(first)
    rest = [i for i in range(len(x)) if i not in taken]
    return np.asarray(first + rest, dtype=np.int64)


def _place_labels(
    axes: Axes, labels: np.ndarray, x: np.ndarray, y: np.ndarray, order: np.ndarray, limit: int
) -> None:
    """Draw labels in ``order`` while fewer than ``limit`` are placed, dropping any whose
    box would overlap a placed one (boxes measured by the figure's own renderer)."""
    _figure(axes).draw_without_rendering()  # settle the limits the boxes depend on
    placed: list[Text] = []
    boxes: list[Bbox] = []
    for k in order:
        if len(placed) >= limit:
            break
        text = axes.annotate(str(labels[k]), (x[k], y[k]), fontsize=7, alpha=0.9,
                             xytext=(2, 2), textcoords="offset points")  # fmt: skip
        box = text.get_window_extent()
        if any(box.overlaps(other) for other in boxes):
            text.remove()
            continue
        placed.append(text)
        boxes.append(box)


def plot_item_map(
    pca: ItemPCA,
    path: str | Path,
    *,
    components: tuple[int, int] = (0, 1),
    n_labels: int = 50,
) -> Path:
    """:func:`draw_item_map` saved to ``path``: PNG, or SVG (zoomable in a browser)
    when ``path`` ends in ``.svg``."""
    axes = draw_item_map(pca, _file_axes((11, 9)), components=components, n_labels=n_labels)
    return _save(axes, path)
