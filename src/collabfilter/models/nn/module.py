"""The neural model: concatenated user and item embeddings through an MLP.

fastai's ``collab_learner(use_nn=True)`` (``EmbeddingNN``, a ``TabularModel`` with two
categorical inputs), with embedding sizes from fastai's rule of thumb.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from collabfilter.data import RatingScale
from collabfilter.data.csr import SparseRows
from collabfilter.models.dot.fold_in import new_user_decays
from collabfilter.models.dot.formula import TORCH
from collabfilter.models.dot.terms import BiasTerms, check_range
from collabfilter.models.family import FoldContext, FoldedUser, RatingModule
from collabfilter.models.nn.dropout import Dropout
from collabfilter.models.rows import gather_rows
from collabfilter.models.side import FeatureEmbedding, SideFeatured
from collabfilter.sgd import RowTrained
from collabfilter.sgd.decay import Tables

PAIR_CHUNK = 262_144
"""Pairs through the MLP at once when scoring every item (bounds the activations)."""


def embedding_size(n_categories: int, *, max_size: int = 600) -> int:
    """fastai's rule of thumb: ``min(600, round(1.6 * n ** 0.56))``.

    It grows slower than the number of categories, so large catalogues do not get
    huge tables. ml-100k: 943 users -> 74, 1682 items -> 102 (fastai reports (944, 74)
    and (1665, 102) because it adds a ``#na#`` row and fits items on the training part).
    """
    if n_categories < 1:
        raise ValueError(f"n_categories must be >= 1, got {n_categories}")
    return int(min(max_size, round(1.6 * n_categories**0.56)))


@dataclass(frozen=True)
class NNUser(FoldedUser):
    """A folded-in user of the nn model: embedding, bias and activity."""

    embedding: Tensor
    bias: float
    activity: float


class EmbeddingNN(BiasTerms, RatingModule, RowTrained, SideFeatured):
    """``r(u, i) = low + (high - low) * sigmoid(MLP([e_u, e_i]) + bias terms)``.

    Each hidden layer is ``Linear -> ReLU [-> BatchNorm1d] [-> Dropout]`` (fastai's
    ``LinBnDrop`` with ``lin_first=True``); the last layer is a plain ``Linear`` to one
    output. With ``biases`` (the default) the MLP output is added to the same bias
    terms as ``DotProductBias`` (:mod:`collabfilter.models.dot.terms`), so the network
    only has to learn interactions; ``biases=False, batch_norm=True`` is fastai's model.

    Args:
        n_users: rows of the user table.
        n_items: rows of the item table.
        user_size: user embedding width (default: :func:`embedding_size`).
        item_size: item embedding width (default: :func:`embedding_size`).
        layers: widths of the hidden layers.
        dropout: dropout after each hidden layer (one value, or one per layer).
        embedding_dropout: dropout on the concatenated embeddings.
        batch_norm: whether hidden layers use batch normalisation.
        y_range: the ``(low, high)`` predictions are squashed into.
        init_std: standard deviation of the normal initial embeddings.
        biases: add user/item biases (and the activity prior) to the MLP output.
        activity_prior: with ``biases``, learn the activity prior.
        n_user_features, n_item_features: encoded side-feature columns of each side (0:
            none); an id's embedding is then its own plus its features' part
            (:mod:`collabfilter.models.side`), set by :meth:`attach_features`.
        user_feature_entries, item_feature_entries: stored entries of the encoded
            features (for a model file's state).
    """

    family = "nn"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        *,
        user_size: int | None = None,
        item_size: int | None = None,
        layers: Sequence[int] = (100, 50),
        dropout: float | Sequence[float] = 0.0,
        embedding_dropout: float = 0.0,
        batch_norm: bool = True,
        y_range: tuple[float, float] = (0.5, 5.5),
        init_std: float = 0.01,
        biases: bool = True,
        activity_prior: bool = True,
        n_user_features: int = 0,
        n_item_features: int = 0,
        user_feature_entries: int = 0,
        item_feature_entries: int = 0,
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1:
            raise ValueError("n_users and n_items must be >= 1")
        widths = [int(w) for w in layers]
        if any(w < 1 for w in widths):
            raise ValueError(f"layer widths must be >= 1, got {widths}")
        drops = (
            [float(dropout)] * len(widths) if isinstance(dropout, float | int) else list(dropout)
        )
        if len(drops) != len(widths) or not all(0.0 <= p < 1.0 for p in drops):
            raise ValueError(
                f"dropout needs one value in [0, 1) per layer ({len(widths)}), got {drops}"
            )
        bounds = check_range(y_range)
        if bounds is None:
            raise ValueError("the nn model needs a y_range")
        self.y_range = bounds
        self.biased = biases
        self.activity_prior = activity_prior and biases
        if biases:
            self.init_bias_terms(n_users, n_items)
        user_size = user_size or embedding_size(n_users)
        item_size = item_size or embedding_size(n_items)
        self._spec: dict[str, Any] = {
            "n_users": n_users, "n_items": n_items, "user_size": user_size,
            "item_size": item_size, "layers": widths, "dropout": drops,
            "embedding_dropout": float(embedding_dropout), "batch_norm": batch_norm,
            "y_range": list(self.y_range), "init_std": init_std, "biases": biases,
            "activity_prior": activity_prior,
        }  # fmt: skip
        self.user_embedding = nn.Parameter(torch.randn(n_users, user_size) * init_std)
        self.item_embedding = nn.Parameter(torch.randn(n_items, item_size) * init_std)
        self.user_features: FeatureEmbedding | None = None
        self.item_features: FeatureEmbedding | None = None
        self._set_feature_tables(
            (n_user_features, user_feature_entries), (n_item_features, item_feature_entries)
        )
        self.embedding_dropout = Dropout(embedding_dropout)
        blocks: list[nn.Module] = []
        width = user_size + item_size
        for out_width, p in zip(widths, drops, strict=True):
            blocks += [nn.Linear(width, out_width), nn.ReLU()]
            if batch_norm:
                blocks.append(nn.BatchNorm1d(out_width))
            if p > 0:
                blocks.append(Dropout(p))
            width = out_width
        blocks.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*blocks)

    # ------------------------------------------------------------------ side features
    def _set_feature_tables(self, user: tuple[int, int], item: tuple[int, int]) -> None:
        """Feature embeddings of ``(columns, entries)`` per side (no columns: none); a
        side whose shape is unchanged keeps its embedding (:meth:`attach_features`
        decides whether it is still learned)."""
        for side, (columns, entries) in (("user", user), ("item", item)):
            table: Tensor = getattr(self, f"{side}_embedding")
            current: FeatureEmbedding | None = getattr(self, f"{side}_features")
            if columns and (
                current is None or (current.n_features, current.n_entries) != (columns, entries)
            ):
                current = FeatureEmbedding(table.shape[0], columns, table.shape[1], entries)
                current.to(table.device)
            setattr(self, f"{side}_features", current if columns else None)

    def attach_features(self, user: SparseRows | None, item: SparseRows | None) -> None:
        """Train (and predict) with these encoded side features, one row per user
        (item) in index order; None: that side has none. A side given the very rows it
        already holds keeps its learned feature embeddings (training goes on); other
        rows start from zero, since a learned column means nothing for another encoding.

        Raises:
            ValueError: for rows that do not match the tables' ids.
        """
        sides = {"user": user, "item": item}
        for side, rows in sides.items():  # checked before anything changes
            size = getattr(self, f"{side}_embedding").shape[0]
            if rows is not None and rows.n_rows != size:
                raise ValueError(f"{side} feature rows must be {size}, got {rows.n_rows}")
        self._set_feature_tables(
            *(
                (0, 0) if rows is None else (rows.n_cols, len(rows.indices))
                for rows in sides.values()
            )
        )
        for side, rows in sides.items():
            embedding: FeatureEmbedding | None = getattr(self, f"{side}_features")
            if rows is not None and embedding is not None:
                if not embedding.holds(rows):
                    embedding.set_rows(rows)
                    torch.nn.init.zeros_(embedding.weight)

    def _vectors(self, side: str, idx: Tensor) -> Tensor:
        """The embeddings of ``idx`` on ``side``: own rows, plus the features' part."""
        own = gather_rows(getattr(self, f"{side}_embedding"), idx)
        features: FeatureEmbedding | None = getattr(self, f"{side}_features")
        return own if features is None else own + features(idx)

    # ------------------------------------------------------------------ model files
    def spec(self) -> dict[str, Any]:
        spec = dict(self._spec)
        for side in ("user", "item"):  # the feature tables' shapes, as they are now
            features: FeatureEmbedding | None = getattr(self, f"{side}_features")
            spec[f"n_{side}_features"] = 0 if features is None else features.n_features
            spec[f"{side}_feature_entries"] = 0 if features is None else features.n_entries
        return spec

    def check_state(self, scale: RatingScale) -> None:
        """The bias terms' checks, and the feature rows' structure."""
        super().check_state(scale)
        for side in ("user", "item"):
            features: FeatureEmbedding | None = getattr(self, f"{side}_features")
            if features is not None:
                features.check(side)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> EmbeddingNN:
        args = dict(spec)
        y_range = tuple(args.pop("y_range"))
        return cls(**args, y_range=y_range)

    # ------------------------------------------------------------------ the formula
    def row_tables(self) -> Tables:
        tables = {"user_embedding": ("user", "factors"), "item_embedding": ("item", "factors")}
        return {**tables, **self.BIAS_TABLES} if self.biased else tables

    def _network(self, users: Tensor, items: Tensor) -> Tensor:
        """The MLP's output for rows of user and item embeddings, ``(batch,)``."""
        features = torch.cat([users, items], dim=1)
        output: Tensor = self.mlp(self.embedding_dropout(features))
        return output.reshape(-1)

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        x = self._network(self._vectors("user", user_idx), self._vectors("item", item_idx))
        if self.biased:
            x = TORCH.logit(x, *self.effects_of(user_idx, item_idx), self.offset)
        rating: Tensor = TORCH.rating(x, *self.low_span)
        return rating

    # ------------------------------------------------------------------ scoring
    def score_items(self, user_idx: Tensor) -> Tensor:
        """Predicted ratings of every item for each user, ``(users, items)``; the MLP
        needs every pair, formed in chunks to bound memory."""
        n_items = self.item_embedding.shape[0]
        users = user_idx.repeat_interleave(n_items)
        items = torch.arange(n_items, device=user_idx.device).repeat(len(user_idx))
        parts = [
            self(users[s : s + PAIR_CHUNK], items[s : s + PAIR_CHUNK])
            for s in range(0, len(users), PAIR_CHUNK)
        ]
        return torch.cat(parts).reshape(len(user_idx), n_items)

    # ------------------------------------------------------------------ new users
    def _folded_logits(self, embedding: Tensor, bias: Tensor | float, activity: float,
                       item_idx: Tensor, items: Tensor) -> Tensor:  # fmt: skip
        """Logits of a folded-in user for ``item_idx``, whose vectors are ``items``."""
        x = self._network(embedding.unsqueeze(0).expand(len(item_idx), -1), items)
        if self.biased:
            beta_user, _ = self.activity_weights()
            user_effect = TORCH.effect(bias, beta_user, activity)
            x = TORCH.logit(x, user_effect, self.item_effect()[item_idx], self.offset)
        return x

    def fold_in(self, item_idx: Tensor, ratings: Tensor, context: FoldContext) -> NNUser:
        """The user's embedding and bias that minimise the training objective restricted
        to them, with the network and the items fixed: half the squared error plus the
        per-rating decay a trained user with as many ratings had. L-BFGS from zero,
        the network in evaluation mode. A model trained with user features adds the
        part of the user's own (``context.user_features``; none given: no part), so
        that a user known by features alone is placed by them.

        Raises:
            CollabFilterError: when the model's sgd training config is unknown.
        """
        n = int(item_idx.numel())
        factor_decay, bias_decay = new_user_decays(context, n)
        device = self.item_embedding.device
        items = item_idx.to(device)
        target = ratings.to(device, torch.float32)
        embedding = torch.zeros(self.user_embedding.shape[1], device=device, requires_grad=True)
        bias = torch.zeros((), device=device, requires_grad=True)
        activity = (
            float(self.activity_of(torch.tensor([n], device=device))[0]) if self.biased else 0.0
        )
        unknowns = [embedding, bias] if self.biased else [embedding]
        part = torch.zeros_like(embedding.detach())  # the user's features' part, fixed
        if self.user_features is not None and context.user_features is not None:
            with torch.no_grad():
                part = self.user_features.of_row(context.user_features.to(device))
        if n == 0:  # nothing to fit: own embedding and bias at the decay's optimum, zero
            return NNUser(part, 0.0, activity)
        was_training = self.training
        self.eval()  # restored below, whatever happens
        solver = torch.optim.LBFGS(unknowns, max_iter=100, line_search_fn="strong_wolfe")
        with torch.no_grad():  # fixed: formed once, not at every evaluation
            item_rows = self._vectors("item", items)

        def objective() -> Any:
            logits = self._folded_logits(embedding + part, bias, activity, items, item_rows)
            error = TORCH.rating(logits, *self.low_span) - target
            loss = 0.5 * (error @ error) + 0.5 * n * factor_decay * (embedding @ embedding)
            loss = loss + 0.5 * n * bias_decay * bias * bias
            # gradients of the user's unknowns only: the shared network is read, never
            # given gradients (several requests may fold users in at once)
            for unknown, grad in zip(unknowns, torch.autograd.grad(loss, unknowns), strict=True):
                unknown.grad = grad
            return loss.detach()

        try:
            with torch.enable_grad():
                solver.step(objective)  # type: ignore[no-untyped-call]
        finally:
            self.train(was_training)
        return NNUser(embedding.detach() + part, float(bias.detach()), activity)

    def _as_user(self, user: FoldedUser) -> NNUser:
        if not isinstance(user, NNUser):
            raise TypeError(f"an nn model scores its own folded users, not {type(user).__name__}")
        return user

    def score_folded(self, user: FoldedUser) -> Tensor:
        return self.predict_folded(user, torch.arange(self.item_embedding.shape[0]))

    def predict_folded(self, user: FoldedUser, item_idx: Tensor) -> Tensor:
        folded = self._as_user(user)
        device = self.item_embedding.device
        items = item_idx.to(device)
        chunks = [items[s : s + PAIR_CHUNK] for s in range(0, len(items), PAIR_CHUNK)]
        parts = [
            TORCH.rating(
                self._folded_logits(folded.embedding.to(device), folded.bias, folded.activity,
                                    chunk, self._vectors("item", chunk)),
                *self.low_span,
            )
            for chunk in chunks
        ]  # fmt: skip
        return torch.cat(parts) if parts else torch.zeros(0, device=device)

    # ------------------------------------------------------------------ interpretation
    @torch.no_grad()
    def item_vectors(self) -> Tensor:
        items = torch.arange(self.item_embedding.shape[0], device=self.item_embedding.device)
        return self._vectors("item", items).detach()

    def parts(self, user_idx: int, item_idx: int) -> dict[str, float]:
        """The logit's terms: ``c``, ``e_u``, ``e_i`` and the network's output."""
        with torch.no_grad():
            device = self.user_embedding.device
            users = self._vectors("user", torch.tensor([user_idx], device=device))
            items = self._vectors("item", torch.tensor([item_idx], device=device))
            network = float(self._network(users, items)[0])
        return {**self.bias_parts(user_idx, item_idx), "network": network}
