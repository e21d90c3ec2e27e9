"""Per-row weight decay and per-row rates of the embedding tables under sgd.

Decay is applied each time a training rating touches a row, scaled by the row's
frequency (see :class:`~collabfilter.sgd.config.TrainConfig`); rates of rows crowded in a
batch are divided by their crowding. Training and fold-in of a new user share these
rules, so a folded-in user is regularised as a trained one with as many ratings.
"""

from __future__ import annotations

import torch
from torch import Tensor

from collabfilter.sgd.config import TrainConfig

Tables = dict[str, tuple[str, str]]
"""A model's row tables: parameter name -> (``"user"``/``"item"``, ``"factors"``/``"bias"``)."""


def frequency_weight(n: Tensor, counts: Tensor, power: float) -> Tensor:
    """``n ** power`` divided by its mean over the training ratings (``counts``: ratings
    per row), so that the weights average 1 per rating whatever the data size. ``n``
    holds rows' numbers of ratings: training's rows, or a new user's count at fold-in."""
    counts = counts.double()
    norm = float((counts * counts.clamp(min=1) ** power).sum() / counts.sum())
    return n**power / norm


def row_decays(tables: Tables, config: TrainConfig, counts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-row decay coefficient (float32) of each table, by parameter name.

    Args:
        tables: the model's row tables.
        config: decay strengths and frequency exponents.
        counts: training ratings per row of the ``"user"`` and ``"item"`` sides.
    """
    decays = {}
    for name, (side, role) in tables.items():
        strength, exponent = config.decay_for(side, role)
        n = counts[side].clamp(min=1).double()
        decays[name] = (strength * frequency_weight(n, counts[side], exponent - 1.0)).float()
    return decays


def side_rates(
    config: TrainConfig, counts: dict[str, Tensor], batch_size: int
) -> dict[str, Tensor]:
    """Per-row rate multipliers ``(1 + c_row) ** -rate_exponent`` of the user and item
    sides, ``c_row`` being the row's expected occurrences in a batch of ``batch_size``
    (none at exponent 0)."""
    if config.rate_exponent == 0.0:
        return {}
    n_ratings = int(counts["user"].sum())
    share = min(batch_size, n_ratings) / n_ratings
    return {
        side: ((1.0 + side_counts.double() * share) ** -config.rate_exponent).float()
        for side, side_counts in counts.items()
    }


def new_user_decay(config: TrainConfig, user_counts: Tensor, n: int) -> tuple[float, float]:
    """Per-rating ``(factor, bias)`` decay a user with ``n`` ratings had in training."""

    def coefficient(role: str) -> float:
        strength, exponent = config.decay_for("user", role)
        n_ratings = torch.tensor(float(n), dtype=torch.float64)
        return float(strength * frequency_weight(n_ratings, user_counts, exponent - 1))

    return coefficient("factors"), coefficient("bias")
