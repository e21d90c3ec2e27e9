"""The neural model: concatenated user and item embeddings through an MLP.

fastai's ``collab_learner(use_nn=True)`` (``EmbeddingNN``, a ``TabularModel`` with two
categorical inputs), with embedding sizes from fastai's rule of thumb.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from collabfilter.models.bias import BiasTerms
from collabfilter.models.ops import gather_rows, sigmoid_range


def embedding_size(n_categories: int, *, max_size: int = 600) -> int:
    """fastai's rule of thumb: ``min(600, round(1.6 * n ** 0.56))``.

    It grows slower than the number of categories, so large catalogues do not get
    huge tables. ml-100k: 943 users -> 74, 1682 items -> 102 (fastai reports (944, 74)
    and (1665, 102) because it adds a ``#na#`` row and fits items on the training part).
    """
    if n_categories < 1:
        raise ValueError(f"n_categories must be >= 1, got {n_categories}")
    return int(min(max_size, round(1.6 * n_categories**0.56)))


PIECES = 1 << 16


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU, from the same torch generator.

    There, eager ``bernoulli_`` is a serial loop (pytorch/pytorch#138199), and ``rand``
    too costs a generator call per element: either way drawing the masks was a quarter
    of the nn recipe's fit. Here one call yields a random int64 whose three low 16-bit
    pieces (the top piece has its sign bit clear) decide three elements: kept when the
    piece reaches a threshold, so with probability ``1 - p`` to within 1/65,536, and
    kept values are scaled by the inverse of that exact probability. Same seed, same
    masks; the state dict is ``nn.Dropout``'s. Other devices use torch's own dropout.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return input
        if input.device.type != "cpu":
            return super().forward(input)
        if self.p == 1.0:
            return input * 0.0
        dropped = min(round(self.p * PIECES), PIECES - 1)  # of every 65,536 piece values
        keep = _pieces_at_least(input.shape, dropped - PIECES // 2)
        return input * keep.to(input.dtype).mul_(PIECES / (PIECES - dropped))


def _pieces_at_least(shape: torch.Size, threshold: int) -> Tensor:
    """A bool tensor of ``shape``: uniform random int16 values ``>= threshold``."""
    n = shape.numel()
    bits = torch.empty(-(-n // 3), dtype=torch.int64).random_()  # in [0, 2**63)
    pieces = bits.view(torch.int16).view(-1, 4)
    low_three = pieces[:, :3] if sys.byteorder == "little" else pieces[:, 1:]
    return (low_three >= threshold).view(-1)[:n].view(shape)


class EmbeddingNN(BiasTerms, nn.Module):
    """``r(u, i) = low + (high - low) * sigmoid(MLP([e_u, e_i]) + bias terms)``.

    Each hidden layer is ``Linear -> ReLU [-> BatchNorm1d] [-> Dropout]`` (fastai's
    ``LinBnDrop`` with ``lin_first=True``); the last layer is a plain ``Linear`` to one
    output. With ``biases`` (the default) the MLP output is added to the same bias
    terms as ``DotProductBias`` (see :mod:`collabfilter.models.bias`), so the network
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
    """

    ROW_TABLES = {"user_embedding": ("user", "factors"), "item_embedding": ("item", "factors")}
    """Parameters indexed by user or item (trained row-wise; decayed per rating)."""

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
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1:
            raise ValueError("n_users and n_items must be >= 1")
        if not y_range[0] < y_range[1]:
            raise ValueError(f"y_range must be (low, high) with low < high, got {y_range}")
        widths = list(layers)
        if any(w < 1 for w in widths):
            raise ValueError(f"layer widths must be >= 1, got {widths}")
        drops = (
            [float(dropout)] * len(widths) if isinstance(dropout, float | int) else list(dropout)
        )
        if len(drops) != len(widths):
            raise ValueError(f"dropout needs one value per layer ({len(widths)}), got {drops}")
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.biases = biases
        self.activity_prior = activity_prior and biases
        if biases:
            self.init_bias_terms(n_users, n_items)
            self.ROW_TABLES = {**type(self).ROW_TABLES, **BiasTerms.BIAS_TABLES}
        user_size = user_size or embedding_size(n_users)
        item_size = item_size or embedding_size(n_items)
        self._spec = {
            "n_users": n_users, "n_items": n_items, "user_size": user_size,
            "item_size": item_size, "layers": widths, "dropout": drops,
            "embedding_dropout": float(embedding_dropout), "batch_norm": batch_norm,
            "y_range": list(self.y_range), "init_std": init_std, "biases": biases,
            "activity_prior": activity_prior,
        }  # fmt: skip
        self.user_embedding = nn.Parameter(torch.randn(n_users, user_size) * init_std)
        self.item_embedding = nn.Parameter(torch.randn(n_items, item_size) * init_std)
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

    def spec(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) that rebuild this module's shapes."""
        return dict(self._spec)

    def forward(self, user_idx: Tensor, item_idx: Tensor) -> Tensor:
        """Predicted ratings, shape ``(batch,)``, for int64 index tensors of that shape."""
        features = torch.cat(
            [
                gather_rows(self.user_embedding, user_idx),
                gather_rows(self.item_embedding, item_idx),
            ],
            dim=1,
        )
        x = self.mlp(self.embedding_dropout(features)).reshape(-1)
        if self.biases:
            x = x + self.bias_terms(user_idx, item_idx)
        return sigmoid_range(x, *self.y_range)

    def score_items(self, user_idx: Tensor, *, chunk: int = 262_144) -> Tensor:
        """Predicted ratings of every item for each user, shape ``(users, items)``.

        The MLP needs every pair, so pairs are formed in chunks to bound memory.
        """
        n_items = self.item_embedding.shape[0]
        users = user_idx.repeat_interleave(n_items)
        items = torch.arange(n_items, device=user_idx.device).repeat(len(user_idx))
        parts = [
            self(users[s : s + chunk], items[s : s + chunk]) for s in range(0, len(users), chunk)
        ]
        return torch.cat(parts).reshape(len(user_idx), n_items)

    def set_data_statistics(
        self, user_counts: Tensor, item_counts: Tensor, mean_rating: float
    ) -> None:
        """See :meth:`BiasTerms.set_data_statistics` (nothing to do without biases)."""
        if self.biases:
            super().set_data_statistics(user_counts, item_counts, mean_rating)
