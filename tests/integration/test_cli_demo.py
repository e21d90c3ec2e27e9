"""`make demo` end to end on the real ml-100k (the README's first command)."""

import struct

import pytest

from collabfilter.cli import main

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def demo(ml100k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    capture = pytest.MonkeyPatch()
    import io
    import sys

    buffer = io.StringIO()
    capture.setattr(sys, "stdout", buffer)
    try:
        code = main(["demo", "--data", str(ml100k_dir), "--out", str(out)])
    finally:
        capture.undo()
    return code, buffer.getvalue(), out


def test_demo_summarises_trains_and_reports(demo):
    code, text, _ = demo
    assert code == 0
    assert "100,000" in text and "943" in text and "1,682" in text
    assert "Rating histogram" in text and "Crosstab" in text and "50=Star Wars (1977)" in text
    assert "train_loss" in text and "valid_rmse" in text
    for row in ("DotProductBias", "global mean", "user mean", "item mean", "bias only"):
        assert row in text
    assert "Predictions beside truth" in text


def test_demo_shows_what_the_model_learned(demo):
    _, text, _ = demo
    lowest = text.split("Lowest item biases")[1].split("Highest item biases")[0]
    highest = text.split("Highest item biases")[1].split("Principal component 1")[0]
    lesson_lowest = [
        "Children of the Corn: The Gathering (1996)",
        "Lawnmower Man 2: Beyond Cyberspace (1996)",
        "Mortal Kombat: Annihilation (1997)",
        "Free Willy 3: The Rescue (1997)",
        "Bio-Dome (1996)",
    ]
    assert sum(title in lowest for title in lesson_lowest) >= 4
    for title in (
        "Schindler's List (1993)",
        "Shawshank Redemption, The (1994)",
        "Star Wars (1977)",
    ):
        assert title in highest
    nearest = text.split('nearest to "Star Wars (1977)"')[1].split("recommendations")[0]
    assert "Return of the Jedi (1983)" in nearest and "Empire Strikes Back, The (1980)" in nearest
    assert "10 recommendations for user 1" in text
    assert "10 recommendations for a new user" in text
    assert "Top-N on the validation part" in text and "most popular" in text


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_demo_writes_the_plots(demo):
    _, text, out = demo
    for name in ("loss_curves.png", "predicted_vs_actual.png", "item_map.png"):
        path = out / name
        assert path.stat().st_size > 10_000
        width, height = png_size(path)
        assert width >= 400 and height >= 300
    assert str(out) in text
