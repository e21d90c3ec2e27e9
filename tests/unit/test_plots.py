"""Each plot renders to a valid, non-empty PNG of the expected size."""

import struct

import numpy as np
import pytest

from collabfilter import generate_ratings, plots
from collabfilter.cli import demo
from collabfilter.config import RunOptions
from collabfilter.interpret import item_pca
from collabfilter.train import collab_learner


@pytest.fixture(scope="module")
def learner():
    ratings = generate_ratings(60, 200, 3_000, seed=2).ratings
    fitted = collab_learner(
        ratings, ratings.subset(np.arange(300)), options=RunOptions(progress=False)
    )
    fitted.fit(epochs=3)
    return fitted


def png(path, width, height):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert struct.unpack(">II", data[16:24]) == (width, height)
    assert not list(path.parent.glob(".*tmp*"))


def test_training_plots(learner, tmp_path):
    png(plots.plot_losses(learner.history_frame(), tmp_path / "loss.png"), 560, 360)
    png(plots.plot_lr_finder(learner.lr_find(num_steps=30), tmp_path / "lr.png"), 560, 360)


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
