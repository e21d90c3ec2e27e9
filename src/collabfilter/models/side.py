"""Side features inside an sgd-trained model, by LightFM's rule: an id's vector is its
own embedding plus the weighted sum of the embeddings of its features.

Ids that share features (the films of a genre, the users of an age band) then share
part of their vectors, learned from all of their ratings: a rarely rated id leans on
its features, and a new user known by features alone is placed by them (nn places new
users so; new items with no rating it leaves to the bias baseline). The encoded
features (:mod:`collabfilter.data.features`, one row per id, each row of norm one) are
kept in the module as CSR buffers, so a model file holds all a prediction needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from collabfilter.data.csr import INDEX, SparseRows
from collabfilter.errors import ModelFileError
from collabfilter.models.rows import check_rows


class FeatureEmbedding(nn.Module):
    """``F @ W``: the features' part of each id's vector, for ids by index.

    Args:
        n_rows: ids (rows of ``F``).
        n_features: encoded feature columns (rows of ``W``).
        width: the embedding width.
        n_entries: stored entries of ``F`` (to be set by :meth:`set_rows` or a model
            file's state).

    ``W`` starts at zero: the features add nothing until the ratings say what they
    share, and an embedding added to a trained model (:meth:`set_rows`) draws no random
    numbers outside the model's seeded start.
    """

    indptr: Tensor
    indices: Tensor
    values: Tensor

    def __init__(self, n_rows: int, n_features: int, width: int, n_entries: int = 0) -> None:
        super().__init__()
        if n_rows < 1 or n_features < 1 or width < 1 or n_entries < 0:
            raise ValueError(
                f"a feature embedding needs rows, features and width >= 1, entries >= 0; "
                f"got {n_rows}, {n_features}, {width}, {n_entries}"
            )
        self.n_rows, self.n_features = n_rows, n_features
        self.weight = nn.Parameter(torch.zeros(n_features, width))
        self.register_buffer("indptr", torch.zeros(n_rows + 1, dtype=INDEX))
        self.register_buffer("indices", torch.zeros(n_entries, dtype=INDEX))
        self.register_buffer("values", torch.zeros(n_entries))

    @property
    def n_entries(self) -> int:
        return int(self.indices.numel())

    def rows(self) -> SparseRows:
        """``F``, one row per id."""
        return SparseRows(self.indptr, self.indices, self.values, self.n_features)

    def set_rows(self, rows: SparseRows) -> None:
        """Hold ``rows`` as ``F`` (the encoded features of every id, in index order).

        Raises:
            ValueError: for rows of another shape than this embedding's.
        """
        if (rows.n_rows, rows.n_cols) != (self.n_rows, self.n_features):
            raise ValueError(
                f"feature rows must be {self.n_rows} x {self.n_features}, got "
                f"{rows.n_rows} x {rows.n_cols}"
            )
        device = self.weight.device
        self.indptr = rows.indptr.to(device, INDEX)
        self.indices = rows.indices.to(device, INDEX)
        self.values = rows.values.to(device, torch.float32)

    def holds(self, rows: SparseRows) -> bool:
        """Whether ``F`` is exactly ``rows``."""
        mine = self.rows()
        return (rows.n_rows, rows.n_cols) == (self.n_rows, self.n_features) and all(
            a.shape == b.shape and torch.equal(a.to(b), b)
            for a, b in ((rows.indptr, mine.indptr), (rows.indices, mine.indices),
                         (rows.values, mine.values))
        )  # fmt: skip

    def forward(self, idx: Tensor) -> Tensor:
        """``F[idx] @ W``, ``(len(idx), width)``."""
        block_row, entries = self.rows().positions(idx)
        block = torch.sparse_coo_tensor(
            torch.stack([block_row, self.indices[entries]]), self.values[entries],
            (len(idx), self.n_features), is_coalesced=True, check_invariants=False,
        )  # fmt: skip
        part: Tensor = torch.sparse.mm(block, self.weight)
        return part

    def of_row(self, row: Tensor) -> Tensor:
        """The part of one id known by a dense row of encoded features, ``(width,)``.

        Raises:
            ValueError: for a row of another width than the encoded features.
        """
        if row.shape != (self.n_features,):
            raise ValueError(f"feature rows must be {self.n_features} long, got {tuple(row.shape)}")
        part: Tensor = row.to(self.weight) @ self.weight
        return part

    def check(self, name: str) -> None:
        """Refuse buffers that do not describe ``F`` (a model file's, forged).

        Raises:
            ModelFileError: naming the buffers and what is wrong.
        """
        check_rows(self.rows(), self.n_features, f"{name} features")
        if self.indptr.numel() != self.n_rows + 1:
            raise ModelFileError(f"{name} features need a row pointer per id and one more")
        starts = torch.zeros(self.n_entries, dtype=torch.bool)
        starts[self.indptr[:-1][self.rows().lengths() > 0]] = True
        rising = self.indices[1:] > self.indices[:-1]
        if bool((~rising & ~starts[1:]).any()):  # the step's sparse product relies on it
            raise ModelFileError(f"{name} feature columns must rise within each row")


class SideFeatured(ABC):
    """A module whose vectors take side features in (:class:`FeatureEmbedding`): a
    learner hands it the encoded features of the ids it trains on."""

    @abstractmethod
    def attach_features(self, user: SparseRows | None, item: SparseRows | None) -> None:
        """Train and predict with these encoded features (one row per id in index
        order; None: that side has none)."""
