"""What a model file holds, and how each part is described: shared by writing and reading.

A model file is one safetensors file: the tensors (each model's state and the training
ratings as CSR arrays) and one JSON document in its metadata, beside that document's
SHA-256. The document (format version :data:`FORMAT_VERSION`)::

    format, format_version, written_by {collabfilter, torch, python}, created
    users, items                    vocabularies (raw ids in their own type, titles)
    columns {field: column}         the training table's column names
    training_data {fingerprint, ratings, scale {low, high, step}}
                                    (tensors data.*: the ratings as CSR arrays, and the
                                    items' popularity when new items have an estimate)
    parts {"rating" | "ranking": {
        module {class, args}        a class of collabfilter.models.MODULES and the
                                    constructor arguments that rebuild its shapes
        model_config {kind, fields} the family's model config (or null)
        config {type, fields}       the family's fit config (or null)
        history [epoch records], metrics {name: number}}}
    tensors {name: {dtype, shape, sha256}}
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from collabfilter.data import RatingScale

FORMAT = "collabfilter-model"
FORMAT_VERSION = 2
"""Version of the layout this release writes; older versions are migrated on reading
(:mod:`collabfilter.persist.migrate`), newer ones refused with a request to upgrade."""

ROLES = ("rating", "ranking")
DATA = ("data.indptr", "data.item_idx", "data.rating")
"""The training ratings as CSR arrays: int64 row pointers, int32 items, float32 ratings."""
DATA_DTYPES = {"data.indptr": "torch.int64", "data.item_idx": "torch.int32",
               "data.rating": "torch.float32"}  # fmt: skip
POPULARITY = "data.item_log_popularity"
"""Optional float32 ``(items,)``: the popularity term of blended lists where an item
without training ratings has its features' estimate (``FittedModel.item_log_popularity``)."""


def digest(tensor: Tensor) -> str:
    """SHA-256 of a CPU tensor's bytes, read in place (no copy of the data)."""
    flat = tensor.detach().contiguous().view(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else np.zeros(0, np.uint8)
    return hashlib.sha256(raw.data).hexdigest()


def describe(tensor: Tensor) -> dict[str, Any]:
    """A tensor's record: dtype, shape and digest."""
    return {"dtype": str(tensor.dtype), "shape": list(tensor.shape), "sha256": digest(tensor)}


def scale_record(scale: RatingScale) -> dict[str, Any]:
    """The rating scale as the document records it."""
    return {"low": scale.low, "high": scale.high, "step": scale.step}


def text_digest(text: str) -> str:
    """SHA-256 of the document's text."""
    return hashlib.sha256(text.encode()).hexdigest()
