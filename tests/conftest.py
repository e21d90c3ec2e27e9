"""Shared fixtures: the real-data folder, an isolated download cache, a seeded rng."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"

# The test configuration points the product's local-data setting at the shared
# MovieLens copies (no downloads on these machines); an explicit setting wins.
if not os.environ.get("COLLABFILTER_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["COLLABFILTER_DATA_DIR"] = str(SHARED_DATA)

# Bars would only clutter test output.
os.environ.setdefault("COLLABFILTER_PROGRESS", "0")


def data_dir() -> Path | None:
    configured = os.environ.get("COLLABFILTER_DATA_DIR")
    return Path(configured) if configured else None


def require_file(relative: str) -> Path:
    """The path of a real-data file, or skip (fail in CI) naming what is missing."""
    base = data_dir()
    path = base / relative if base is not None else None
    if path is not None and path.exists():
        return path
    reason = (
        f"real-data file {relative} not found under COLLABFILTER_DATA_DIR={base}; "
        "point COLLABFILTER_DATA_DIR at a folder holding MovieLens (../shared/datasets)"
    )
    if os.environ.get("COLLABFILTER_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own download cache: nothing is written to ~/.cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("COLLABFILTER_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    return require_file("ml-100k")


@pytest.fixture(scope="session")
def ml100k(ml100k_dir: Path):
    from collabfilter import load_movielens

    return load_movielens("ml-100k", path=ml100k_dir)


@pytest.fixture(scope="session")
def brief_model():
    """Train a ``dot_bias`` model of some ratings for a few epochs and save it."""
    from dataclasses import replace

    from collabfilter.config import RunOptions
    from collabfilter.models import RECIPES
    from collabfilter.train import collab_learner

    def train(ratings, path: Path, *, epochs: int) -> Path:
        model_config, config = RECIPES["dot_bias"]
        learner = collab_learner(ratings, model=model_config,
                                 config=replace(config.with_length(epochs), tune_decay=False),
                                 options=RunOptions(seed=0, progress=False))  # fmt: skip
        learner.fit_recipe()
        return learner.save(path)

    return train
