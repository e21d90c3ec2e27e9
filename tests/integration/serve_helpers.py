"""Shared by the service tests: small trained models and a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx2 as httpx
import pandas as pd

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.models import RECIPES, BayesConfig, TopNConfig
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=7)
ROOT = Path(__file__).resolve().parents[2]


def synthetic_ratings(n_ratings: int = 4000, seed: int = 1) -> cf.Ratings:
    """120 users, 200 titled items ("Movie 7 (1907)"), integer ids."""
    synthetic = cf.generate_ratings(120, 200, n_ratings, n_factors=3, seed=seed)
    titles = {k: f"Movie {k} (19{k % 100:02d})" for k in range(1, 201)}
    return synthetic.ratings.with_titles(titles)


def train_and_save(
    ratings: cf.Ratings, path: Path, *, epochs: int | None = 2, tune_decay: bool = True
) -> Path:
    """A dot_bias model of ``ratings`` written to ``path``."""
    config = replace(RECIPES["dot_bias"][1], tune_decay=tune_decay)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    learner = collab_learner(ratings, config=config, options=QUIET)
    learner.fit_recipe()
    return learner.save(path)


def train_family(ratings: cf.Ratings, recipe: str, path: Path) -> Path:
    """A small model of the family ``recipe`` (few epochs, sweeps or candidates)."""
    model_config, config = RECIPES[recipe]
    if isinstance(config, BayesConfig):
        config = replace(config, sweeps=12, burn_in=2)
    elif isinstance(config, TopNConfig):
        config = replace(config, candidates=("ease", "ials"), ials_sweeps=2, ials_factors=(16,))
    else:
        config = replace(config, epochs=3, tune_decay=False)
    learner = collab_learner(ratings, model=model_config, config=config, options=QUIET)
    learner.fit_recipe()
    return learner.save(path)


def text_id_ratings() -> pd.DataFrame:
    """Users "007" and "7" are two people; items are text too."""
    rows = []
    for u, user in enumerate(["007", "7", "a", "b", "c", "d"]):
        for i in range(30):
            if (u + i) % (2 + u):
                rows.append((user, f"m{i:02d}", float(1 + (u * i) % 5)))
    return pd.DataFrame(rows, columns=["user", "item", "rating"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``python -m collabfilter.serve`` on a free loopback port, for one test; as a
    context manager, ready on entry and stopped on exit."""

    def __init__(self, model: Path, db: Path, *args: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "collabfilter.serve", str(model), "--port",
                   str(self.port), "--db", str(db), "--no-access-log", *args]  # fmt: skip
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "COLLABFILTER_PROGRESS": "0"}
        self.log = log
        self._log_file = open(log, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, env=environment, cwd=ROOT
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout} s:\n{self.log.read_text()}")

    def __enter__(self) -> ServerProcess:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log_file.close()
