"""collabfilter: collaborative filtering on explicit ratings.

Data flows one way: ``data`` (load, encode, split) -> ``models`` (one package per
family) -> ``train`` -> interpretation, recommendation and evaluation -> the
DataFrame estimator -> the CLI and the HTTP service.

The data layer is imported eagerly; names that need torch (training, model files, the
DataFrame-in/out recommender) load on first use, so that ``import collabfilter`` and
commands that only read data start quickly.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from collabfilter.data import (
    Ratings,
    RatingScale,
    Split,
    Vocabulary,
    generate_ratings,
    load_movielens,
    load_movielens_fold,
    split_by_user,
    split_cold_items,
    split_cold_users,
    split_kfold,
    split_random,
    split_temporal,
    split_temporal_by_user,
    train_test_split,
)

if TYPE_CHECKING:
    from collabfilter.estimator import Recommender
    from collabfilter.fitted import FittedModel
    from collabfilter.persist import load_model, save_model
    from collabfilter.train import collab_learner

try:
    __version__ = version("collabfilter")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

_LAZY = {
    "FittedModel": "collabfilter.fitted",
    "Recommender": "collabfilter.estimator",
    "collab_learner": "collabfilter.train",
    "load_model": "collabfilter.persist",
    "save_model": "collabfilter.persist",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'collabfilter' has no attribute {name!r}")


__all__ = [
    "FittedModel",
    "RatingScale",
    "Ratings",
    "Recommender",
    "Split",
    "Vocabulary",
    "__version__",
    "collab_learner",
    "generate_ratings",
    "load_model",
    "load_movielens",
    "load_movielens_fold",
    "save_model",
    "split_by_user",
    "split_cold_items",
    "split_cold_users",
    "split_kfold",
    "split_random",
    "split_temporal",
    "split_temporal_by_user",
    "train_test_split",
]
