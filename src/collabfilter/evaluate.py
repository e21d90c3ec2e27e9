"""Rating-prediction metrics: pure functions that return numbers and never print.

Every function refuses misaligned inputs instead of broadcasting them, and ignores
nothing silently: NaN predictions are an error unless the caller drops them first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from collabfilter.errors import DataError


def _aligned(predictions: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
    actual = np.asarray(truth, dtype=np.float64).reshape(-1)
    if predicted.shape != actual.shape:
        raise DataError(
            f"predictions and truth must align: {predicted.shape[0]} vs {actual.shape[0]} values"
        )
    if predicted.size == 0:
        raise DataError("no predictions to evaluate")
    if np.isnan(predicted).any():
        raise DataError(
            f"{int(np.isnan(predicted).sum())} predictions are NaN (unknown users or items?); "
            "drop them or predict with a fallback"
        )
    return predicted, actual


def mse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error."""
    predicted, actual = _aligned(predictions, truth)
    return float(np.mean((predicted - actual) ** 2))


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(predictions, truth)))


def mae(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error."""
    predicted, actual = _aligned(predictions, truth)
    return float(np.mean(np.abs(predicted - actual)))


def error_metrics(predictions: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"rmse", "mae", "mse"}`` in one call."""
    return {
        "rmse": rmse(predictions, truth),
        "mae": mae(predictions, truth),
        "mse": mse(predictions, truth),
    }


def error_by_bucket(
    predictions: np.ndarray,
    truth: np.ndarray,
    counts: np.ndarray,
    edges: tuple[int, ...] = (0, 1, 6, 21, 101),
    *,
    label: str = "train ratings",
) -> pd.DataFrame:
    """RMSE/MAE per bucket of ``counts`` (e.g. the item's training ratings per pair).

    Buckets are ``[edges[k], edges[k+1])`` and a last open one; ``0`` alone is the cold
    bucket (never seen in training). Empty buckets are kept with a count of 0.
    """
    predicted, actual = _aligned(predictions, truth)
    counts = np.asarray(counts).reshape(-1)
    if counts.shape != predicted.shape:
        raise DataError("counts must align with predictions")
    bounds = list(edges) + [np.iinfo(np.int64).max]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (counts >= low) & (counts < high)
        name = (
            f"{low}"
            if high == low + 1
            else (f"{low}+" if high == bounds[-1] else f"{low}-{high - 1}")
        )
        errors = predicted[inside] - actual[inside]
        rows.append(
            {
                label: name,
                "ratings": int(inside.sum()),
                "rmse": float(np.sqrt(np.mean(errors**2))) if inside.any() else float("nan"),
                "mae": float(np.mean(np.abs(errors))) if inside.any() else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def ranking_metrics(
    top_items: np.ndarray, relevant: np.ndarray, k: int, n_items: int | None = None
) -> dict[str, float]:
    """Top-N metrics from each user's ranked list and relevance matrix.

    Args:
        top_items: item indices ranked best first, shape ``(users, >= k)``.
        relevant: boolean ``(users, items)``: the held-out items that count as hits.
        k: list length evaluated.
        n_items: catalogue size for coverage (default: ``relevant.shape[1]``).

    Returns:
        Means over users with at least one relevant item of ``precision``, ``recall``,
        ``ndcg``, ``map`` and ``hit_rate`` at ``k``, plus catalogue ``coverage`` (share
        of items recommended to anyone) and ``users`` evaluated.
    """
    if top_items.ndim != 2 or top_items.shape[1] < k:
        raise DataError(f"top_items must be (users, >= {k}), got {top_items.shape}")
    if relevant.shape[0] != top_items.shape[0]:
        raise DataError("top_items and relevant must have one row per user")
    ranked = top_items[:, :k]
    hits = np.take_along_axis(relevant, ranked, axis=1).astype(np.float64)
    n_relevant = relevant.sum(axis=1)
    users = n_relevant > 0
    hits, n_relevant = hits[users], n_relevant[users]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, k) - 1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at * hits).sum(axis=1) / np.minimum(n_relevant, k)
    catalogue = n_items or relevant.shape[1]
    return {
        "precision": float(np.mean(hits.sum(axis=1) / k)),
        "recall": float(np.mean(hits.sum(axis=1) / n_relevant)),
        "ndcg": float(np.mean((hits * discounts).sum(axis=1) / ideal)),
        "map": float(np.mean(average_precision)),
        "hit_rate": float(np.mean(hits.any(axis=1))),
        "coverage": float(len(np.unique(ranked)) / catalogue),
        "users": float(users.sum()),
    }
