"""Each plot renders to a valid, non-empty PNG of the expected size, and reads well:
labels of the item map never overlap, the diagonal is drawn above the hexbin, epochs
are whole ticks, and the learning-rate finder draws itself."""

import itertools
import struct

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from collabfilter import generate_ratings, plots
from collabfilter.cli import demo
from collabfilter.config import RunOptions
from collabfilter.interpret import ItemPCA, item_pca
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def ratings():
    return generate_ratings(60, 200, 3_000, seed=2).ratings


@pytest.fixture(scope="module")
def learner(ratings):
    fitted = collab_learner(ratings, ratings.subset(np.arange(300)), options=QUIET)
    fitted.fit(epochs=3)
    return fitted


def png(path, width, height):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert not list(path.parent.glob(".*tmp*"))


def new_axes(size=(11, 9)):
    return Figure(figsize=size, dpi=plots.DPI).add_subplot()


def test_training_plots(learner, ratings, tmp_path):
    backend = matplotlib.get_backend()
    png(plots.plot_losses(learner.history_frame(), tmp_path / "loss.png"), 560, 360)
    fresh = collab_learner(ratings, options=QUIET)  # a trained model's loss has no valley
    png(plots.plot_lr_finder(fresh.lr_find(num_steps=30), tmp_path / "lr.png"), 560, 360)
    assert matplotlib.get_backend() == backend  # files never switch a notebook's backend


def test_result_plots(learner, tmp_path):
    valid = learner.valid_ratings
    predicted = learner.predict_ratings(valid)
    png(plots.plot_predicted_vs_actual(predicted, valid.rating, tmp_path / "pva.png"), 480, 400)
    png(plots.plot_rating_distribution(valid.rating, tmp_path / "dist.png", predicted), 560, 360)
    pca = item_pca(learner, 2, among=100)
    png(plots.plot_item_map(pca, tmp_path / "map.png", n_labels=20), 880, 720)
    svg = plots.plot_item_map(pca, tmp_path / "map.svg", n_labels=20)
    assert svg.read_text().lstrip().startswith("<?xml") and "Map of the 100" in svg.read_text()


def test_demo_draws_its_plots(learner, tmp_path):
    written = demo._draw_plots(learner, learner.valid_ratings, tmp_path)
    assert [p.name for p in written] == [
        "loss_curves.png",
        "predicted_vs_actual.png",
        "item_map.png",
    ]
    png(written[0], 560, 360)
    png(written[2], 880, 720)


def crowded_map(n=400, seed=0):
    """A dense cloud of long labels: placed naively, they would cover each other."""
    rng = np.random.default_rng(seed)
    coordinates = rng.normal(size=(n, 2))
    labels = np.array([f"A rather long film title number {k} (1990)" for k in range(n)])
    return ItemPCA(np.arange(n), labels, coordinates, np.array([0.3, 0.2]))


def test_item_map_labels_never_overlap():
    pca = crowded_map()
    axes = plots.draw_item_map(pca, new_axes(), n_labels=60)
    axes.figure.figure.draw_without_rendering()  # the root figure, matplotlib 3.8 on
    texts = axes.texts
    assert 5 <= len(texts) <= 60  # some placed, the ones that collided left out
    boxes = [t.get_window_extent() for t in texts]
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    shown = {t.get_text() for t in texts}
    x = pca.coordinates[:, 0]
    assert pca.labels[np.argmin(x)] in shown and pca.labels[np.argmax(x)] in shown  # the ends
    assert pca.labels[0] in shown  # the most rated item beyond them


def test_item_map_labels_everything_when_there_is_room():
    corners = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    pca = ItemPCA(np.arange(4), np.array(["a", "b", "c", "d"]), corners, np.ones(2))
    axes = plots.draw_item_map(pca, new_axes(), n_labels=50)
    assert sorted(t.get_text() for t in axes.texts) == ["a", "b", "c", "d"]
    axes = plots.draw_item_map(pca, new_axes(), n_labels=2)
    assert len(axes.texts) == 2


def test_the_diagonal_is_drawn_above_the_hexbin(rng):
    truth = rng.integers(1, 6, 2_000).astype(float)
    predictions = np.clip(truth + rng.normal(0, 0.6, truth.size), 1, 5)
    axes = plots.draw_predicted_vs_actual(predictions, truth, new_axes((6, 5)))
    (cells,) = axes.collections
    (diagonal,) = axes.lines
    assert diagonal.get_zorder() > cells.get_zorder()
    assert diagonal.get_color() != "white"  # white vanished on viridis' bright cells


def test_loss_plot_ticks_are_whole_epochs():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.8, 0.7],
                            "valid_loss": [1.1, 0.9, 0.85]})  # fmt: skip
    axes = plots.draw_losses(history, new_axes((7, 4.5)))
    locator = axes.xaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator)
    ticks = [t for t in locator() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_lr_finder_result_plots_itself_and_is_short_to_print(ratings):
    result = collab_learner(ratings, options=QUIET).lr_find(num_steps=40)
    axes = result.plot(new_axes((7, 4.5)))
    assert axes.get_xscale() == "log" and len(axes.lines) >= 3
    marked = [line for line in axes.lines if list(line.get_xdata()) == [result.suggestion] * 2]
    assert marked, "the suggestion is marked"
    text = repr(result)
    assert "suggestion=" in text and "array" not in text and len(text) < 200
