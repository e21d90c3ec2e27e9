"""Automatic top-N: pick a model and its settings on the training ratings, then refit.

A per-user hold-out is carved out of the *training* ratings (the test part is never
seen here), every candidate setting is fitted on the rest and ranked by NDCG@k on the
carved part, and the winner is refitted on all training ratings with the same absolute
settings. Candidates share work where they can (the weighted rows of each weighting,
one decomposition for EASE's penalties, one pass for item-kNN's neighbour counts, warm
starts for iALS), so the later points of a grid cost less than its first. Grids that
depend on the data's scale are stated relative to it
(:class:`~collabfilter.models.ranking.config.TopNConfig`); candidates whose fit would not fit in the
memory budget are skipped and reported as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from collabfilter.data import Ratings, split_by_user
from collabfilter.data.csr import SparseRows
from collabfilter.data.tensors import tensor_of
from collabfilter.errors import DataError
from collabfilter.metrics import ItemSets, evaluate_top_n, relevant_items, seen_items
from collabfilter.models.ranking.base import TopNModel, interaction_rows, weights_from_settings
from collabfilter.models.ranking.config import TopNConfig
from collabfilter.models.ranking.ease import (
    GramSpectrum,
    ease_from_rows,
    ease_peak_bytes,
    spectrum_pays,
)
from collabfilter.models.ranking.ials import ImplicitALS, ials_from_rows
from collabfilter.models.ranking.knn import (
    ItemKNN,
    NeighbourLists,
    item_knn_from_lists,
    item_knn_from_rows,
)

Settings = dict[str, Any]


@dataclass(frozen=True)
class TopNReport:
    """What :func:`fit_topn` chose and why.

    Attributes:
        kind: the chosen model (``"ease"``, ``"ials"`` or ``"item_knn"``).
        settings: its settings as refitted (absolute values, JSON-ready).
        candidates: one row per candidate: ``model``, ``settings``, ``ndcg`` (at k) and
            ``recall`` (at 2k) on the carved part, ``seconds``, and a ``note``
            (``"chosen"``, or why it was skipped). ``seconds`` times building the
            candidate's scorer only (not scoring the carved part), and work shared by a
            grid (a weighting's rows, EASE's decomposition, item-kNN's neighbour lists)
            is charged to the first candidate that needs it, so later points of a grid
            look cheaper than a fit of their own would be.
        reason: one sentence on the choice.
        carve: what the choice was made on.
        select_seconds: time spent choosing.
        fit_seconds: time of the final refit.
    """

    kind: str
    settings: Settings
    candidates: pd.DataFrame
    reason: str
    carve: str
    select_seconds: float
    fit_seconds: float

    def __str__(self) -> str:
        table = self.candidates.copy()
        table["settings"] = table["settings"].map(_short)
        return "\n".join(
            [
                f"top-N model: {self.kind} {_short(self.settings)}",
                f"why: {self.reason}",
                f"chosen on: {self.carve} ({self.select_seconds:.1f} s); "
                f"refit on all training ratings in {self.fit_seconds:.1f} s",
                table.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            ]
        )


def _short(settings: Settings) -> str:
    shown = {k: v for k, v in settings.items() if k != "kind"}
    weights = shown.pop("weights", None)
    if weights and weights.get("positive") is not None:
        shown["low_rating_weight"] = weights["low_weight"]
    parts = (f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
    return ", ".join(parts)


def fit_model(
    train: Ratings,
    settings: Settings,
    *,
    seed: int = 42,
    sweeps: int = 10,
    start: tuple[Tensor, Tensor] | None = None,
    rows: SparseRows | None = None,
) -> TopNModel:
    """Fit the top-N model ``settings`` describe (as in :meth:`TopNModel.settings`);
    ``start``: iALS's initial factors (a warm start); ``rows``: ``train``'s weighted
    rows for these settings (:func:`weighted_rows`), if already built."""
    kind = settings["kind"]
    if kind not in ("ease", "item_knn", "ials"):
        raise DataError(f"unknown top-N model kind {kind!r}")
    weights = weights_from_settings(settings)
    rows = weighted_rows(train, settings) if rows is None else rows
    if kind == "ease":
        return ease_from_rows(rows, weights, settings["l2"])
    if kind == "item_knn":
        return item_knn_from_rows(rows, weights, int(settings["n_neighbours"]))
    return ials_from_rows(
        rows, weights, n_factors=int(settings["n_factors"]), l2=settings["l2"],
        unobserved_weight=settings["unobserved_weight"],
        frequency_exponent=settings.get("frequency_exponent", 1.0),
        sweeps=sweeps, seed=seed, start=start,
    )  # fmt: skip


def weighted_rows(train: Ratings, settings: Settings) -> SparseRows:
    """The weighted interaction rows a model with ``settings`` is fitted on."""
    return interaction_rows(
        torch.from_numpy(train.user_idx.astype(np.int64)),
        torch.from_numpy(train.item_idx.astype(np.int64)),
        train.n_users, train.n_items, tensor_of(train.rating),
        weights_from_settings(settings),
    )  # fmt: skip


def memory_needed(train: Ratings, settings: Settings) -> int:
    """Estimated peak bytes of fitting ``settings`` on ``train``."""
    sizes = (train.n_users, train.n_items, len(train))
    kind = settings["kind"]
    if kind == "ease":
        return ease_peak_bytes(*sizes)
    if kind == "item_knn":
        return ItemKNN.memory_bytes(*sizes, int(settings["n_neighbours"]))
    return ImplicitALS.memory_bytes(*sizes, int(settings["n_factors"]))


@dataclass(frozen=True)
class Grid:
    """One setting's values in a coordinate search, sorted and without repeats: the
    search starts at the middle value (the upper one of an even count), or at the first
    where the values are ordered by cost (``cheapest_first``), and climbs
    (:meth:`climb`)."""

    name: str
    values: tuple[Any, ...]
    cheapest_first: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))

    @property
    def start(self) -> Any:
        return self.values[0 if self.cheapest_first else len(self.values) // 2]

    def climb(self, score: Callable[[Any], float]) -> Any:
        """The best value, from the start outward: up the grid while the score rises,
        else down, stopping at the first point that does not improve. Where the score
        has one peak along the grid (as it mostly has along a penalty, a weight or a
        size) that is the full sweep's best; otherwise a local best."""
        at = self.values.index(self.start)
        best, top = at, score(self.values[at])
        for direction in (1, -1):
            step = at + direction
            while 0 <= step < len(self.values) and (value := score(self.values[step])) > top:
                best, top = step, value
                step += direction
            if best != at:
                break
        return self.values[best]


class _Candidates:
    """Each model's search space: settings as functions of grid values and data scale."""

    def __init__(self, train: Ratings, config: TopNConfig) -> None:
        self.config = config
        self.train = train
        self.weighted: dict[str, SparseRows] = {}
        self.spectra: dict[str, GramSpectrum | None] = {}
        self.lists: dict[str, NeighbourLists] = {}
        self.warm: dict[int, tuple[Tensor, Tensor]] = {}  # by factor count
        # items with ratings, not the vocabulary: ids seen only in a test part must
        # not move the grids
        self.active_items = max(1, int((train.item_counts() > 0).sum()))
        positive = config.relevance
        self.weight_of = {
            w: {"positive": positive, "low_weight": w} for w in config.low_rating_weights
        }
        if positive is None:
            self.weight_of = {1.0: {"positive": None, "low_weight": 1.0}}

    def rows(self, settings: Settings) -> SparseRows:
        """The weighted rows of this training part for ``settings``'s weighting, built
        once per weighting (every model of that weighting is fitted on them)."""
        key = repr(settings["weights"])
        if key not in self.weighted:
            self.weighted[key] = weighted_rows(self.train, settings)
        return self.weighted[key]

    def scorer(self, settings: Settings) -> Callable[[np.ndarray], Tensor]:
        """Scores of every item for blocks of users, from a model with ``settings``
        fitted on this training part. Where a closed form allows, a grid shares the
        work per weighting: item-kNN's neighbour counts one pass over the item pairs
        (:class:`~collabfilter.models.ranking.knn.NeighbourLists`), EASE's penalties
        one decomposition when that is cheaper than an inverse per penalty
        (:class:`~collabfilter.models.ranking.ease.GramSpectrum`); iALS starts from the
        previous fit's factors, else from the rows' own low-rank fit (:meth:`_ials`)."""
        config, kind, train = self.config, settings["kind"], self.train
        key = repr(settings["weights"])
        if kind == "item_knn":
            if key not in self.lists:
                counts = config.knn_neighbours
                self.lists[key] = NeighbourLists(self.rows(settings), max(counts), counts)
            weights = weights_from_settings(settings)
            neighbours = int(settings["n_neighbours"])
            knn = item_knn_from_lists(self.rows(settings), weights, self.lists[key], neighbours)
            return lambda block: knn.score_items(torch.from_numpy(block))
        if kind == "ease":
            if key not in self.spectra:
                self.spectra[key] = None
                if spectrum_pays(train.n_users, train.n_items, len(config.ease_l2_scales)):
                    self.spectra[key] = GramSpectrum(self.rows(settings))
            if (spectrum := self.spectra[key]) is not None:
                scores = spectrum.scorer(settings["l2"])
                return lambda block: scores(torch.from_numpy(block))
        if kind == "ials":
            return self._ials(settings)
        model = fit_model(
            train, settings, seed=config.seed, sweeps=config.ials_sweeps, rows=self.rows(settings)
        )
        return lambda block: model.score_items(torch.from_numpy(block))

    def _ials(self, settings: Settings) -> Callable[[np.ndarray], Tensor]:
        """iALS for a third of the sweeps, from a start near its solution: the last fit
        with as many factors (the coordinate search moves one setting at a time, the
        interaction weighting included: a nearby problem), else the rows' own low-rank
        fit (:func:`~collabfilter.models.ranking.ials.initial_factors`)."""
        config = self.config
        key = int(settings["n_factors"])
        start = self.warm.get(key)
        sweeps = max(1, config.ials_sweeps // 3)
        model = fit_model(
            self.train, settings, seed=config.seed, sweeps=sweeps, start=start,
            rows=self.rows(settings),
        )  # fmt: skip
        assert isinstance(model, ImplicitALS)
        self.warm[key] = (model.user_factors, model.item_factors)
        return lambda block: model.score_items(torch.from_numpy(block))

    def _weights(self, low_weight: float) -> np.ndarray:
        train, positive = self.train, self.config.relevance
        if positive is None:
            return np.ones(len(train), dtype=np.float32)
        return np.where(train.rating >= positive, 1.0, low_weight).astype(np.float32)

    def space(self, kind: str) -> list[Grid]:
        """The grids, in the order they are searched."""
        config, weights = self.config, tuple(self.weight_of)
        if kind == "ease":
            return [Grid("low_rating_weight", weights), Grid("l2_scale", config.ease_l2_scales)]
        if kind == "item_knn":
            return [
                Grid("low_rating_weight", weights),
                Grid("n_neighbours", config.knn_neighbours),
            ]
        return [
            Grid("low_rating_weight", weights),
            Grid("unobserved_scale", config.ials_unobserved_scales),
            Grid("l2", config.ials_l2),
            # the fit's cost grows with the factor count: the other settings are tuned
            # at the smallest and larger counts tried last (Rendle et al. 2022's protocol)
            Grid("n_factors", config.ials_factors, cheapest_first=True),
        ]

    def settings(self, kind: str, point: dict[str, Any]) -> Settings:
        """Absolute settings of a grid point on this training part."""
        low_weight = point["low_rating_weight"]
        weights = self._weights(low_weight)
        settings: Settings = {"kind": kind, "weights": self.weight_of[low_weight]}
        if kind == "ease":
            mean_diagonal = float((weights.astype(np.float64) ** 2).sum() / self.active_items)
            settings["l2"] = point["l2_scale"] * mean_diagonal
        elif kind == "item_knn":
            settings["n_neighbours"] = int(point["n_neighbours"])
        else:
            active = max(1, int((self.train.user_counts() > 0).sum()))
            per_user = float(weights.sum(dtype=np.float64)) / active
            settings |= {
                "n_factors": int(point["n_factors"]),
                "l2": float(point["l2"]),
                "unobserved_weight": point["unobserved_scale"] * per_user / self.active_items,
            }
        return settings


def _sample_users(train: Ratings, config: TopNConfig) -> Ratings:
    """The ratings of at most ``max_select_users`` seeded random users."""
    users = np.flatnonzero(train.user_counts() > 0)
    if len(users) <= config.max_select_users:
        return train
    picked = np.random.RandomState(config.seed).choice(users, config.max_select_users, False)
    keep = np.zeros(train.n_users, dtype=bool)
    keep[picked] = True
    return train.subset(keep[train.user_idx])


@dataclass(frozen=True)
class _Carve:
    """The hold-out the choice is made on, with its item sets built once for every
    candidate."""

    seen: ItemSets
    relevant: ItemSets

    @classmethod
    def of(cls, train: Ratings, held_out: Ratings, config: TopNConfig) -> _Carve:
        return cls(seen_items(train), relevant_items(held_out, config.relevance))

    def score(self, scores_for: Callable[[np.ndarray], Tensor], k: int) -> tuple[float, float]:
        """NDCG@k and recall@2k of a scorer (user indices -> scores)."""
        ks = (k, min(2 * k, self.relevant.n_items))
        rows = evaluate_top_n(scores_for, self.seen, self.relevant, ks=ks)
        return rows[0]["ndcg"], rows[-1]["recall"]


def select_topn(train: Ratings, config: TopNConfig) -> tuple[Settings, pd.DataFrame, str]:
    """Search every candidate's grid on a hold-out carved from ``train``.

    Returns:
        The best settings (absolute, for ``train``'s scale), the table of candidates,
        and a description of the carve.

    Raises:
        DataError: if every candidate is over the memory budget or nothing can be carved.
    """
    sample = _sample_users(train, config)
    carve = split_by_user(sample, frac=config.carve_fraction, seed=config.seed)
    if carve.report.n_valid == 0:
        raise DataError("too few ratings per user to carve a hold-out for the choice")
    space = _Candidates(carve.train, config)
    held_out = _Carve.of(carve.train, carve.valid, config)
    rows: list[dict[str, Any]] = []
    for kind in config.candidates:
        rows += _search(kind, space, held_out, train, config)
    table = pd.DataFrame(rows)
    fitted = table[table.note == ""]
    if fitted.empty:
        raise DataError(
            f"no top-N candidate fits in memory_budget={config.memory_budget:,} bytes; "
            "raise TopNConfig.memory_budget"
        )
    best = int(np.argmax(fitted.ndcg.to_numpy(dtype=float)))
    best = int(fitted.index[best])
    table.loc[best, "note"] = "chosen"
    described = (
        f"{carve.report.n_valid:,} ratings of {len(np.unique(carve.valid.user_idx)):,} users "
        f"carved from {len(sample):,} training ratings (fraction {config.carve_fraction:g}, "
        f"seed {config.seed})"
    )
    return rows[best]["settings"], table, described


def _search(
    kind: str,
    space: _Candidates,
    carve: _Carve,
    full: Ratings,
    config: TopNConfig,
) -> list[dict[str, Any]]:
    """One model's coordinate search: every grid at its start value, then each grid in
    turn climbed from there (:meth:`Grid.climb`)."""
    grids = space.space(kind)
    point = {grid.name: grid.start for grid in grids}
    seen: dict[str, dict[str, Any]] = {}
    for grid in grids:

        def score(value: Any, name: str = grid.name) -> float:
            row = _evaluate(kind, {**point, name: value}, space, carve, full, config, seen)
            return float(row["ndcg"]) if row["note"] == "" else -1.0

        point[grid.name] = grid.climb(score)
    return list(seen.values())


def _evaluate(
    kind: str,
    point: dict[str, Any],
    space: _Candidates,
    carve: _Carve,
    full: Ratings,
    config: TopNConfig,
    seen: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Fit and score one grid point (once: ``seen`` caches by settings)."""
    settings = space.settings(kind, point)
    key = repr(sorted(settings.items()))
    if key in seen:
        return seen[key]
    row: dict[str, Any] = {"model": kind, "settings": settings, "ndcg": np.nan,
                           "recall": np.nan, "seconds": np.nan, "note": ""}  # fmt: skip
    needed = memory_needed(full, settings)
    if needed > config.memory_budget:
        row["note"] = f"skipped: needs ~{needed / 2**30:.1f} GiB > budget"
    else:
        start = time.perf_counter()
        scores_for = space.scorer(settings)
        row["seconds"] = time.perf_counter() - start
        row["ndcg"], row["recall"] = carve.score(scores_for, config.k)
    seen[key] = row
    return row


def fit_topn(train: Ratings, config: TopNConfig | None = None) -> tuple[TopNModel, TopNReport]:
    """Choose a top-N model on ``train`` alone and refit it on all of ``train``.

    Args:
        train: the training ratings (a test part, if any, must not be in them).
        config: candidates, grids, budget and carve (defaults: :class:`TopNConfig`).

    Returns:
        The fitted module and a :class:`TopNReport` saying what was chosen and why.

    Raises:
        DataError: if nothing can be carved or no candidate fits the memory budget.
    """
    config = config or TopNConfig()
    start = time.perf_counter()
    settings, table, carve = select_topn(train, config)
    selected = time.perf_counter()
    model = fit_model(train, settings, seed=config.seed, sweeps=config.ials_sweeps)
    fitted = time.perf_counter()
    chosen = table[table.note == "chosen"].iloc[0]
    others = table[(table.note == "") & (table.model != chosen.model)]
    runner_up = others.loc[others.ndcg.idxmax()] if not others.empty else None
    reason = f"best NDCG@{config.k} on the carved hold-out ({chosen.ndcg:.4f}"
    if runner_up is not None:
        reason += f"; best other model {runner_up.model}: {runner_up.ndcg:.4f}"
    skipped = table[table.note.str.startswith("skipped")].model.unique()
    reason += ")" + (f"; over the memory budget: {', '.join(skipped)}" if len(skipped) else "")
    report = TopNReport(
        kind=model.kind, settings=model.settings(), candidates=table, reason=reason,
        carve=carve, select_seconds=selected - start, fit_seconds=fitted - selected,
    )  # fmt: skip
    return model, report
