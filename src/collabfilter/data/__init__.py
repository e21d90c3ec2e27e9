"""Getting ratings in: MovieLens and generic tables, id vocabularies, splits, synthetic data."""

from collabfilter.data.encoded import load_encoded, save_encoded
from collabfilter.data.encoding import Vocabulary
from collabfilter.data.io import ColumnMap, LoadReport
from collabfilter.data.movielens import REGISTRY, load_movielens, load_movielens_fold
from collabfilter.data.ratings import Ratings, RatingScale, RatingsSummary
from collabfilter.data.split import (
    Split,
    SplitReport,
    split_by_user,
    split_cold_items,
    split_cold_users,
    split_kfold,
    split_random,
    split_temporal,
    split_temporal_by_user,
    train_test_split,
)
from collabfilter.data.synthetic import SyntheticRatings, generate_ratings

__all__ = [
    "REGISTRY",
    "ColumnMap",
    "LoadReport",
    "RatingScale",
    "Ratings",
    "RatingsSummary",
    "Split",
    "SplitReport",
    "SyntheticRatings",
    "Vocabulary",
    "generate_ratings",
    "load_encoded",
    "load_movielens",
    "load_movielens_fold",
    "save_encoded",
    "split_by_user",
    "split_cold_items",
    "split_cold_users",
    "split_kfold",
    "split_random",
    "split_temporal",
    "split_temporal_by_user",
    "train_test_split",
]
