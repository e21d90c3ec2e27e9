"""The ranking family's configs: the choice of a top-N model and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from collabfilter.config import FitConfig, ModelConfig, require, require_choice


@dataclass(frozen=True)
class RankingConfig(ModelConfig):
    """A ranking model for top-N lists (``kind`` ``"topn"``): which one, and its sizes,
    are chosen when it is fitted (:class:`TopNConfig`)."""

    KINDS: ClassVar[tuple[str, ...]] = ("topn",)


TopNKind = Literal["ease", "ials", "item_knn"]


def _grid(value: tuple[Any, ...], name: str, low: float, high: float | None = None) -> None:
    require(len(value) >= 1, f"{name} needs at least one value")
    inside = all(v >= low and (high is None or v <= high) for v in value)
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    require(inside, f"{name} values must lie in {bounds}, got {value}")


@dataclass(frozen=True)
class TopNConfig(FitConfig):
    """How :mod:`collabfilter.models.ranking.choose` picks, tunes and fits a top-N model.

    Settings are chosen on a per-user hold-out carved out of the *training* ratings
    (never the test part), by NDCG@``k``; the winner is refitted on all training
    ratings. Grids are relative to the data where the right scale depends on it (EASE's
    penalty on the number of raters per item, iALS's unobserved weight on the ratings
    per user), so the defaults carry from ml-100k to ml-25m. Each model's grid is
    searched one setting at a time: start at each sorted grid's middle value (at the
    smallest iALS factor count, whose cost grows with it), then take the settings in
    turn, each climbed from there while the carved NDCG rises (up the grid, else down).
    The cost is at most the sum of the grid sizes, not their product.
    """

    candidates: tuple[TopNKind, ...] = ("ease", "ials", "item_knn")
    """Models to consider."""
    relevance: float | None = 4.0
    """Carved ratings at least this count as hits, and training ratings below it get a
    ``low_rating_weights`` weight; None: every rating is a hit with weight 1."""
    low_rating_weights: tuple[float, ...] = (1.0, 0.3)
    """Interaction weights tried for ratings below ``relevance`` (in (0, 1])."""
    ease_l2_scales: tuple[float, ...] = (2.5, 5.0, 10.0, 20.0)
    """EASE penalties, as multiples of the mean of ``diag(X'X)`` (weighted raters per
    item) on the carved training part."""
    ials_factors: tuple[int, ...] = (64, 128)
    """iALS factor counts."""
    ials_l2: tuple[float, ...] = (0.01, 0.03, 0.1)
    """iALS frequency-scaled penalties."""
    ials_unobserved_scales: tuple[float, ...] = (1.0, 3.0, 10.0)
    """iALS unobserved weights ``a0``, as multiples of (mean weighted ratings per user)
    / items: at 1, the unobserved pairs of a typical user weigh as much in total as
    their ratings."""
    ials_sweeps: int = 10
    """iALS alternations."""
    knn_neighbours: tuple[int, ...] = (50, 100, 200, 400)
    """Item-kNN neighbours per item."""
    carve_fraction: float = 0.2
    """Share of each user's training ratings held out for the choice."""
    k: int = 10
    """The choice maximises NDCG at this list length."""
    memory_budget: int = 4 * 2**30
    """Bytes a fit may take; candidates estimated above it are skipped (EASE's items x
    items matrices grow with the square of the catalogue)."""
    max_select_users: int = 20_000
    """The choice looks at the ratings of at most this many users (a seeded sample),
    so its cost stays bounded at any scale; the refit uses every user."""
    seed: int = 42
    """Seeds the carve, the user sample and the iALS initialisation (a learner sets it to
    its ``RunOptions.seed``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        require(len(self.candidates) >= 1, "candidates needs at least one model")
        for kind in self.candidates:
            require_choice(kind, TopNKind, "candidates")
        grids = {
            "low_rating_weights": (1e-6, 1.0), "ease_l2_scales": (1e-9, None),
            "ials_factors": (1, None), "ials_l2": (1e-12, None),
            "ials_unobserved_scales": (0.0, None), "knn_neighbours": (1, None),
        }  # fmt: skip
        for name, (low, high) in grids.items():
            object.__setattr__(self, name, tuple(getattr(self, name)))
            _grid(getattr(self, name), name, low, high)
        require(self.ials_sweeps >= 1, f"ials_sweeps must be >= 1, got {self.ials_sweeps}")
        require(
            0.0 < self.carve_fraction < 1.0,
            f"carve_fraction must lie in (0, 1), got {self.carve_fraction}",
        )
        require(self.k >= 1, f"k must be >= 1, got {self.k}")
        require(self.memory_budget > 0, f"memory_budget must be > 0, got {self.memory_budget}")
        require(
            self.max_select_users >= 1,
            f"max_select_users must be >= 1, got {self.max_select_users}",
        )


RECIPES: dict[str, tuple[RankingConfig, TopNConfig]] = {"topn": (RankingConfig(), TopNConfig())}
"""``topn`` is for top-N lists, not ratings: it chooses among EASE, implicit ALS and
item-kNN on ratings carved out of the training data (:class:`TopNConfig`)."""
