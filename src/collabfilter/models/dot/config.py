"""The dot family's model config and recipes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from collabfilter.config import ModelConfig, require
from collabfilter.errors import ConfigError
from collabfilter.models.dot.terms import check_range
from collabfilter.sgd import TrainConfig

YRange = tuple[float, float] | Literal["data"] | None


def output_range(value: object) -> tuple[float, float] | Literal["data"]:
    """A model config's ``y_range`` checked: ``"data"``, or ``(low, high)`` as floats.

    Raises:
        ConfigError: for anything else.
    """
    if value == "data":
        return "data"
    try:
        bounds = check_range(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        bounds = None
    if bounds is None:
        raise ConfigError(f"y_range must be (low, high) with low < high, or 'data', got {value!r}")
    return bounds


@dataclass(frozen=True)
class DotConfig(ModelConfig):
    """User and item factors, with or without biases (``kind`` ``"dot_bias"``/``"dot"``)."""

    KINDS: ClassVar[tuple[str, ...]] = ("dot_bias", "dot")

    n_factors: int = 64
    """Length of the user and item factor vectors."""
    biases: bool = True
    """User and item biases (fastai's ``EmbeddingDotBias``); False: fastai's
    ``DotProduct``, factors only."""
    y_range: YRange = "data"
    """Predictions are squashed into this ``(low, high)``; ``"data"`` derives it from the
    rating scale (half a step beyond each end: (0.5, 5.5) for 1-5 stars); None leaves
    them unsquashed (the lesson's first model)."""
    init_std: float = 0.01
    """Standard deviation of the normal initial factors."""
    activity_prior: bool = True
    """With biases: centre them on a learned function of log activity."""

    @property
    def kind(self) -> str:
        return "dot_bias" if self.biases else "dot"

    def __post_init__(self) -> None:
        require(self.n_factors >= 1, f"n_factors must be >= 1, got {self.n_factors}")
        if self.y_range is not None:
            object.__setattr__(self, "y_range", output_range(self.y_range))
        require(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")


RECIPES: dict[str, tuple[DotConfig, TrainConfig]] = {
    "dot_bias": (DotConfig(), TrainConfig(tune_decay=True)),
    "dot": (DotConfig(n_factors=50, biases=False), TrainConfig(tune_decay=True)),
    "dot_bias_large": (
        DotConfig(),
        TrainConfig(
            epochs=8, batch_size=32_768, lr=0.2, rate_exponent=1.0, weight_decay=0.06,
            item_weight_decay=0.08, bias_weight_decay=0.06, user_decay_exponent=0.75,
            item_decay_exponent=0.4,
        ),
    ),
}  # fmt: skip
"""``dot_bias``, the default, adapts to the data: batches of about a fortieth of the
ratings, rates of rows crowded in a batch divided by the fourth root of their crowding,
one decay strength for every table with rarely seen rows shrunk relatively more, and
that strength chosen by ``fit_recipe`` on a part carved out of the training ratings
(``tune_decay``). ``dot`` is the lessons' factors-only model in the data's range, trained
by the same adaptive recipe (unsquashed, ``DotConfig(y_range=None)``, per-rating sgd can
diverge on long-tailed catalogues). ``dot_bias_large`` was
chosen on validation carved out of synthetic ratings in ml-25m's shape
(``benchmarks/bench_scale.py``): larger batches and fewer epochs."""
