"""Training: the learner (fastai's ``collab_learner`` flow) and its automatic choices.

How each family is fitted lives with the family (:mod:`collabfilter.models`); the
gradient machinery shared by the sgd families in :mod:`collabfilter.sgd`.
"""

from collabfilter.progress import EpochRecord
from collabfilter.train.learner import Learner, collab_learner
from collabfilter.train.lr_find import LRFinderResult
from collabfilter.train.tuning import DecayChoice

__all__ = ["DecayChoice", "EpochRecord", "LRFinderResult", "Learner", "collab_learner"]
