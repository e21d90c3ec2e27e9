"""Model files: one safetensors file holding weights, vocabularies and training data.

A model file is what a trained model needs to predict, recommend, fold in new users
and explain itself, and nothing that runs code: tensors in safetensors (no pickle;
``torch.load`` is never called) and one JSON document in the file's metadata
(:mod:`~collabfilter.persist.layout`). Loading checks everything before anything is
trusted (:mod:`~collabfilter.persist.read`); saving is atomic
(:mod:`~collabfilter.persist.write`); older formats are migrated
(:mod:`~collabfilter.persist.migrate`).

A file may hold two models trained on the same data: one that predicts ratings and
one that ranks (``save_model(path, rating_model, ranking=ranking_model)``).
"""

from collabfilter.persist.layout import FORMAT, FORMAT_VERSION
from collabfilter.persist.migrate import MIGRATIONS
from collabfilter.persist.read import load_model
from collabfilter.persist.write import save_model

__all__ = ["FORMAT", "FORMAT_VERSION", "MIGRATIONS", "load_model", "save_model"]
