"""The nn family's model config and recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

from collabfilter.config import ModelConfig, require
from collabfilter.models.dot.config import output_range
from collabfilter.sgd import TrainConfig


@dataclass(frozen=True)
class NNConfig(ModelConfig):
    """Concatenated embeddings through an MLP (fastai's ``EmbeddingNN``)."""

    KINDS: ClassVar[tuple[str, ...]] = ("nn",)

    layers: tuple[int, ...] = (100, 50)
    """Hidden layer widths."""
    dropout: float = 0.0
    """Dropout after each hidden layer."""
    embedding_dropout: float = 0.0
    """Dropout on the concatenated embeddings."""
    batch_norm: bool = False
    """Batch normalisation in hidden layers (fastai: True)."""
    user_size: int | None = None
    """User embedding width (None: fastai's rule of thumb)."""
    item_size: int | None = None
    """Item embedding width (None: fastai's rule of thumb)."""
    biases: bool = True
    """Add user/item bias terms to the MLP output (False: fastai's EmbeddingNN)."""
    activity_prior: bool = True
    """With biases: centre them on a learned function of log activity."""
    y_range: tuple[float, float] | Literal["data"] = "data"
    """Predictions are squashed into this ``(low, high)``; ``"data"`` derives it from
    the rating scale (half a step beyond each end)."""
    init_std: float = 0.01
    """Standard deviation of the normal initial embeddings."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))
        require(all(w >= 1 for w in self.layers), f"layers must be >= 1, got {self.layers}")
        for name in ("dropout", "embedding_dropout"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"{name} must lie in [0, 1), got {value}")
        for name in ("user_size", "item_size"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"{name} must be >= 1, got {value}")
        object.__setattr__(self, "y_range", output_range(self.y_range))
        require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")


LESSON_TRAINING = TrainConfig(
    lr=0.04, rate_exponent=0.0, batch_size=8192, weight_decay=0.09, item_weight_decay=0.12,
    bias_weight_decay=0.06, user_decay_exponent=0.75, item_decay_exponent=0.4,
)  # fmt: skip
"""Fixed settings chosen on validation carved out of ml-100k's training files
(``benchmarks/tune_recipe.py``): the base of the ``nn`` recipe."""

RECIPES: dict[str, tuple[NNConfig, TrainConfig]] = {
    "nn": (
        NNConfig(layers=(64,), dropout=0.3),
        dataclasses.replace(
            LESSON_TRAINING, batch_size=4096, weight_decay=0.12, item_weight_decay=0.16
        ),
    ),
}
"""``nn``: one hidden layer of 64 with dropout, settings chosen on validation carved out
of ml-100k's training files (``benchmarks/tune_recipe.py``)."""
