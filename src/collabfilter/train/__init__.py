"""Training: the learner, its step forms, loop, optimizer and schedules."""

from collabfilter.fitted import EpochRecord
from collabfilter.train.learner import (
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
