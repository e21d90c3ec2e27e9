"""Who rated what, as sparse rows: the input of the top-N models.

Top-N models learn from the *interaction matrix* ``X`` (users x items): ``x_ui`` is a
weight when user ``u`` rated item ``i`` and 0 otherwise. Ratings say more than "seen":
a film rated 2 stars was watched but disliked, and the held-out items that count as
hits are the liked ones, so :class:`InteractionWeights` gives ratings below a threshold
a smaller weight (the choice tries several:
:class:`~collabfilter.models.ranking.config.TopNConfig`).

:class:`TopNModel` is the base of every top-N module: it keeps the training rows as CSR
buffers (so a model file holds everything needed to score its users), turns blocks of
users into sparse CSR tensors, and answers the family contract
(:class:`~collabfilter.models.family.RankingModule`) from each model's own
:meth:`~TopNModel.score_rows` and :meth:`~TopNModel.explain_many`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from collabfilter.data import RatingScale
from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.errors import CollabFilterError, ModelFileError
from collabfilter.models.family import FoldContext, FoldedUser, RankingModule
from collabfilter.models.rows import check_rows


@dataclass(frozen=True)
class InteractionWeights:
    """The weight ``x_ui`` of a rating ``r``: 1, or ``low_weight`` when ``r < positive``.

    Attributes:
        positive: ratings at or above this count fully; None: every rating counts 1
            (implicit data, or to ignore the stars).
        low_weight: the weight of ratings below ``positive``, in ``(0, 1]``: they still
            say the item was seen, with less evidence that it was liked.
    """

    positive: float | None = None
    low_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.low_weight <= 1.0:
            raise ValueError(f"low_weight must lie in (0, 1], got {self.low_weight}")
        if self.positive is not None and not math.isfinite(self.positive):
            raise ValueError(f"positive must be a finite rating or None, got {self.positive}")

    def of(self, ratings: Tensor | None, n: int) -> Tensor:
        """float32 weights of ``n`` interactions with these ratings (None: all 1)."""
        if ratings is None or self.positive is None or self.low_weight == 1.0:
            return torch.ones(n)
        if ratings.shape != (n,):
            raise ValueError(f"ratings must have shape ({n},), got {tuple(ratings.shape)}")
        low = torch.tensor(self.low_weight)
        return torch.where(ratings.float() >= self.positive, torch.tensor(1.0), low)

    def to_dict(self) -> dict[str, Any]:
        return {"positive": self.positive, "low_weight": self.low_weight}


@dataclass(frozen=True)
class RatedItems(FoldedUser):
    """A new user of a ranking model: their weighted row of ``X``, built from what they
    rated (all a ranking model needs to score them)."""

    row: SparseRows


class TopNModel(RankingModule):
    """Base of the top-N modules: the training rows as CSR buffers and the common API.

    Subclasses implement :meth:`score_rows` (scores of every item for sparse weighted
    rows of ``X``) and :meth:`explain_many`, and list their hyper-parameters in
    :meth:`settings`; everything learned is a registered buffer, so ``state_dict``
    holds the whole model and :meth:`from_settings` rebuilds an empty one to load it.

    Args:
        n_users: rows of the interaction matrix.
        n_items: columns.
        n_interactions: stored training interactions (for the buffers' shapes).
        weights: how ratings become interaction weights (for ``score_new`` too).
    """

    family = "ranking"
    reason_kind = "contribution"

    kind: ClassVar[str] = ""

    history_indptr: Tensor
    history_items: Tensor
    history_weights: Tensor

    def __init__(
        self, n_users: int, n_items: int, n_interactions: int, weights: InteractionWeights
    ) -> None:
        super().__init__()
        for name, value in (("n_users", n_users), ("n_items", n_items)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.n_items = n_items
        self.weights = weights
        self.register_buffer("history_indptr", torch.zeros(n_users + 1, dtype=INDEX))
        self.register_buffer("history_items", torch.zeros(n_interactions, dtype=INDEX))
        self.register_buffer("history_weights", torch.zeros(n_interactions))

    @property
    def n_users(self) -> int:
        return len(self.history_indptr) - 1

    def set_history(self, rows: SparseRows) -> None:
        """Keep the (weighted) training rows, shape ``(n_users, n_items)``; the buffers
        share ``rows``'s tensors (no copy: the history is the model's largest part)."""
        if rows.n_rows != self.n_users or rows.n_cols != self.n_items:
            raise ValueError(f"history must be {self.n_users} x {self.n_items}")
        self.history_indptr = rows.indptr
        self.history_items = rows.indices
        self.history_weights = rows.values

    def history(self) -> SparseRows:
        """The weighted training rows of every user."""
        return SparseRows(
            self.history_indptr, self.history_items, self.history_weights, self.n_items
        )

    def new_rows(self, item_idx: Tensor, ratings: Tensor | None = None) -> SparseRows:
        """One weighted row for a user described by rated items (and their ratings).

        Raises:
            ValueError: for no items, items out of range or repeated items.
        """
        item_idx = torch.as_tensor(item_idx, dtype=INDEX).reshape(-1)
        if len(item_idx) == 0:
            raise ValueError("a new user needs at least one rated item")
        given = None if ratings is None else torch.as_tensor(ratings).reshape(-1)
        values = self.weights.of(given, len(item_idx))
        zeros = torch.zeros(len(item_idx), dtype=INDEX)
        return SparseRows.from_pairs(zeros, item_idx, values, 1, self.n_items)

    @torch.no_grad()
    def score_items(self, user_idx: Tensor) -> Tensor:
        """Scores of every item for known users, ``(len(user_idx), n_items)`` float32;
        higher is better (not a rating). Items the users rated are not masked."""
        return self.score_rows(self.history().select(torch.as_tensor(user_idx)))

    @torch.no_grad()
    def score_new(self, item_idx: Tensor, ratings: Tensor | None = None) -> Tensor:
        """Scores of every item, ``(n_items,)``, for a user not in the training data who
        rated ``item_idx`` (with ``ratings``, if known): folded in, no retraining."""
        return self.score_rows(self.new_rows(item_idx, ratings))[0]

    def score_rows(self, rows: SparseRows) -> Tensor:
        """Scores of every item for weighted rows of ``X``, ``(rows, n_items)``."""
        raise NotImplementedError

    def explain(
        self, history_item_idx: Tensor, item_idx: int, ratings: Tensor | None = None
    ) -> Tensor:
        """How much each rated item adds to ``item_idx``'s score, ``(len(history),)``
        float32 in the order given; they sum to ``score_new(history, ratings)[item]``."""
        return self.explain_many(history_item_idx, torch.tensor([item_idx]), ratings)[:, 0]

    def explain_many(
        self, history_item_idx: Tensor, item_idx: Tensor, ratings: Tensor | None = None
    ) -> Tensor:
        """:meth:`explain` for several items at once, ``(len(history), len(item_idx))``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the contract
    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> RatedItems:
        """The user's row of ``X`` (refusing no items, repeats, out-of-range items)."""
        return RatedItems(self.new_rows(item_idx, ratings))

    @torch.no_grad()
    def score_folded(self, user: FoldedUser) -> Tensor:
        if not isinstance(user, RatedItems):
            raise TypeError(f"a ranking model scores rated items, not {type(user).__name__}")
        return self.score_rows(user.row)[0]

    def reasons(
        self, rated_idx: Tensor, ratings: Tensor, item_idx: Tensor, scale: RatingScale
    ) -> Tensor:
        """Each rated item's contribution to each item's score (the model's own
        decomposition); a rated item that adds nothing cannot be the reason."""
        with torch.no_grad():
            parts = self.explain_many(rated_idx, item_idx, ratings.to(rated_idx.device)).float()
        return parts.masked_fill(parts <= 0, -torch.inf)

    def item_vectors(self) -> Tensor:
        """Item-item models have no item vectors (their :meth:`similar_items` is their
        own relation)."""
        raise CollabFilterError(
            f"{type(self).__name__} relates items directly and has no item vectors; "
            "similar items come from its own item-item relation"
        )

    # ------------------------------------------------------------------ new items
    def item_interactions(self) -> Tensor:
        """Training interactions per item, int64."""
        return torch.bincount(self.history_items, minlength=self.n_items)

    def placed(self) -> Tensor:
        """Items without interactions placed from their features
        (:mod:`~collabfilter.models.ranking.placement`), ascending; empty when none."""
        found = self._buffers.get("placed_items")
        return torch.zeros(0, dtype=INDEX) if found is None else found

    def place_items(self, placement: SparseRows) -> None:
        """Write each item with a row in ``placement`` (items x items, rows of weights
        over rated items) as that weighted average of their columns, so that every
        score of it is the same average of the scores of those items.

        Raises:
            ValueError: for a placement of another size, or one that places an item
                with interactions or averages items without.
        """
        if (placement.n_rows, placement.n_cols) != (self.n_items, self.n_items):
            raise ValueError(f"a placement must be {self.n_items} x {self.n_items}")
        targets = torch.nonzero(placement.lengths() > 0).flatten()
        if not len(targets):
            return
        counts = self.item_interactions()
        if bool((counts[targets] > 0).any()) or bool((counts[placement.indices] == 0).any()):
            raise ValueError("a placement writes items without interactions from items with")
        self._place_columns(placement.select(targets), targets)
        placed = torch.unique(torch.cat([self.placed(), targets]))
        self.register_buffer("placed_items", placed)

    def _place_columns(self, weights: SparseRows, targets: Tensor) -> None:
        """Write column ``targets[r]`` as the average of the columns row ``r`` of
        ``weights`` names (see :meth:`place_items`)."""
        raise NotImplementedError

    def placed_unrated(self, side: str) -> Tensor | None:
        """The items placed from their features (:meth:`place_items`)."""
        if side != "item" or not len(self.placed()):
            return None
        mask = torch.zeros(self.n_items, dtype=torch.bool)
        mask[self.placed()] = True
        return mask

    def check_state(self, scale: RatingScale) -> None:
        super().check_state(scale)
        check_rows(self.history(), self.n_items, "history")
        weights = self.history_weights
        if weights.numel() and not bool(((weights > 0) & (weights <= 1)).all()):
            raise ModelFileError("history_weights must lie in (0, 1]")
        placed = self.placed()
        if len(placed):
            counts = self.item_interactions()
            if (
                int(placed.min()) < 0
                or int(placed.max()) >= self.n_items
                or bool((placed[1:] <= placed[:-1]).any())
                or bool((counts[placed] > 0).any())
            ):
                raise ModelFileError("placed_items must be ascending items without interactions")

    def settings(self) -> dict[str, Any]:
        """Hyper-parameters as a JSON-ready dict (with ``kind``)."""
        return {"kind": self.kind, "weights": self.weights.to_dict()}

    def sizes(self) -> dict[str, int]:
        """The shapes :meth:`from_settings` needs to rebuild the buffers (and
        ``n_placed``, when items were placed from their features)."""
        sizes = {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": len(self.history_items),
        }
        if len(self.placed()):
            sizes["n_placed"] = len(self.placed())
        return sizes

    @classmethod
    def from_settings(cls, settings: dict[str, Any], sizes: dict[str, int]) -> TopNModel:
        """An empty module of the right shapes, to ``load_state_dict(strict=True)`` into."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """What a model file records to rebuild this module: settings and sizes."""
        return {"settings": self.settings(), "sizes": self.sizes()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TopNModel:
        """The empty module :meth:`spec` describes (a model file's loader calls this)."""
        if spec.get("settings", {}).get("kind") != cls.kind:
            raise ValueError(
                f"settings of {spec.get('settings', {}).get('kind')!r}, not {cls.kind!r}"
            )
        sizes = {str(k): int(v) for k, v in dict(spec["sizes"]).items()}
        module = cls.from_settings(dict(spec["settings"]), sizes)
        n_placed = sizes.get("n_placed", 0)
        if n_placed < 0:
            raise ValueError(f"n_placed must be >= 0, got {n_placed}")
        if n_placed:  # only then in the state (files without placed items hold none)
            module.register_buffer("placed_items", torch.zeros(n_placed, dtype=INDEX))
        return module

    @torch.no_grad()
    def similar_items(self, item_idx: int) -> Tensor:
        """Scores of every item for someone who rated only ``item``: the model's own
        item-item relation (EASE's weights, kNN's similarities, iALS's fold-in)."""
        return self.score_new(torch.tensor([item_idx], dtype=INDEX))

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.settings().items() if k != "kind"}
        return ", ".join(f"{k}={v}" for k, v in {**self.sizes(), **shown}.items())


def weights_from_settings(settings: dict[str, Any]) -> InteractionWeights:
    """The :class:`InteractionWeights` stored by :meth:`TopNModel.settings`."""
    return InteractionWeights(**settings.get("weights", {}))


def interaction_rows(
    user_idx: Tensor,
    item_idx: Tensor,
    n_users: int,
    n_items: int,
    ratings: Tensor | None,
    weights: InteractionWeights,
) -> SparseRows:
    """The weighted interaction matrix ``X`` as CSR rows (one row per user)."""
    values = weights.of(ratings, len(user_idx))
    return SparseRows.from_pairs(
        torch.as_tensor(user_idx), torch.as_tensor(item_idx), values, n_users, n_items
    )
