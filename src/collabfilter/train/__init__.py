"""Training: the learner, its optimizer and schedules."""

from collabfilter.train.learner import (
    EpochRecord,
    Learner,
    LRFinderResult,
    collab_learner,
    default_y_range,
)
from collabfilter.train.optim import RowOptimizer

__all__ = [
    "EpochRecord",
    "LRFinderResult",
    "Learner",
    "RowOptimizer",
    "collab_learner",
    "default_y_range",
]
