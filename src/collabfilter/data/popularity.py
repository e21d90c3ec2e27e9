"""How popular each item is, or would be: ``log(1 + ratings)``, estimated from an
item's features when it has no rating yet.

Blended lists rank by ``score + w * log(1 + n_i)`` (:func:`collabfilter.recommend.
recommend`): a rating model knows nothing of what people watch, and the popularity
prior lifts its lists. A new item has ``n_i = 0`` and would sink under every rated
one; what its features say of items like it (how many ratings films of its genres and
year got) is the best guess of how much it will be watched.
"""

from __future__ import annotations

import numpy as np
import torch

from collabfilter.data.ratings import Ratings
from collabfilter.runtime import quiet_csr

RIDGE = 1.0
"""Ridge penalty of the estimate, in items: feature rows have norm one, so this is one
item's weight of shrinkage towards the average, next to hundreds of rated items."""


def observed_log_popularity(counts: np.ndarray) -> np.ndarray:
    """``log(1 + n_i)`` of training ratings per item, float32."""
    return np.log1p(np.asarray(counts, dtype=np.float64)).astype(np.float32)


def log_popularity(ratings: Ratings) -> np.ndarray | None:
    """``log(1 + training ratings)`` per item, float32 ``(n_items,)``, where an item
    without ratings but with a row of item features gets the estimate of a ridge
    regression on the features of the rated items (within the rated items' range) and
    one without either 0; None when there is nothing to estimate (no item features, no
    unrated item, or no rated one)."""
    features = ratings.item_features
    if features is None:  # decided before counting the ratings
        return None
    counts = ratings.item_counts().astype(np.float64)
    observed = observed_log_popularity(counts).astype(np.float64)
    cold = counts == 0
    if not cold.any() or cold.all():
        return None
    quiet_csr()
    encoded = ratings.feature_rows("item")
    assert encoded is not None  # the features checked above
    rated = encoded.select(torch.from_numpy(np.flatnonzero(~cold)))
    columns, transposed = rated.to_torch_coo().double(), rated.transpose().to_torch_coo().double()
    target = torch.from_numpy(observed[~cold]).unsqueeze(1)
    sums = torch.sparse.mm(transposed, torch.ones_like(target))
    width = encoded.n_cols
    normal = torch.zeros(width + 1, width + 1, dtype=torch.float64)  # features, intercept
    normal[:width, :width] = torch.sparse.mm(transposed, columns).to_dense()
    normal[:width, :width] += RIDGE * torch.eye(width, dtype=torch.float64)
    normal[:width, width:], normal[width:, :width] = sums, sums.T
    normal[width, width] = len(target)  # the intercept is not shrunk
    moments = torch.cat([torch.sparse.mm(transposed, target), target.sum(0, keepdim=True)])
    coefficients = torch.linalg.solve(normal, moments)
    guessed = np.flatnonzero(cold & (encoded.lengths() > 0).numpy())
    rows = encoded.select(torch.from_numpy(guessed)).to_torch_coo().double()
    estimate = torch.sparse.mm(rows, coefficients[:width]) + coefficients[width]
    observed[guessed] = estimate[:, 0].numpy().clip(0.0, observed.max())
    return observed.astype(np.float32)


def popularity_problem(values: np.ndarray, counts: np.ndarray) -> str | None:
    """What is wrong with ``values`` as the items' popularity term given their training
    ``counts`` (the rule :func:`log_popularity` keeps), or None."""
    observed, rated = observed_log_popularity(counts), np.asarray(counts) > 0
    sane = (
        values.shape == observed.shape
        and bool(np.isfinite(values).all())
        and np.allclose(values[rated], observed[rated], rtol=0.0, atol=1e-4)
        and bool((values[~rated] >= 0).all())
        and bool((values[~rated] <= observed.max(initial=0.0) + 1e-4).all())
    )
    if sane:
        return None
    return (
        "must be log(1 + training ratings) for every rated item and lie between 0 and "
        "the most rated item's for the others"
    )
