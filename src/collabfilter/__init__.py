"""collabfilter: collaborative filtering on explicit ratings.

Data flows one way: ``data`` (load, encode, split) -> ``models`` -> ``train`` ->
evaluation, interpretation and recommendation -> the CLI and the HTTP service.
"""

from importlib.metadata import PackageNotFoundError, version

from collabfilter.data import (
    Ratings,
    RatingScale,
    Split,
    Vocabulary,
    generate_ratings,
    load_movielens,
    load_movielens_fold,
    split_by_user,
    split_kfold,
    split_random,
    split_temporal,
    split_temporal_by_user,
    train_test_split,
)

try:
    __version__ = version("collabfilter")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "RatingScale",
    "Ratings",
    "Split",
    "Vocabulary",
    "__version__",
    "generate_ratings",
    "load_movielens",
    "load_movielens_fold",
    "split_by_user",
    "split_kfold",
    "split_random",
    "split_temporal",
    "split_temporal_by_user",
    "train_test_split",
]
