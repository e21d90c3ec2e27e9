"""Training: the learner, its step forms, loop, optimizer and schedules; the Gibbs
sampler of BayesianMF."""

from collabfilter.fitted import EpochRecord
from collabfilter.train.gibbs import GibbsSampler, run_gibbs
from collabfilter.train.learner import (
    Learner,
    LRFinderResult,
    collab_learner,
    default_y_range,
)
from collabfilter.train.optim import RowOptimizer

__all__ = [
    "EpochRecord",
    "GibbsSampler",
    "LRFinderResult",
    "Learner",
    "RowOptimizer",
    "collab_learner",
    "default_y_range",
    "run_gibbs",
]
