"""Upgrades of older model-file documents, one version at a time.

``MIGRATIONS[n]`` turns a version-``n`` document into version ``n + 1``; the tensors
never change, only how the document describes them. Each step is pure (a new document
from the old one) and refuses what it cannot read with a ``KeyError``/``TypeError``/
``ValueError`` that the reader turns into a ``ModelFileError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Document = dict[str, Any]

_DOT_FIELDS = ("n_factors", "init_std")
_NN_FIELDS = ("layers", "dropout", "embedding_dropout", "batch_norm", "user_size",
              "item_size", "biases", "activity_prior", "init_std")  # fmt: skip


def _family_config(old: dict[str, Any], fit: dict[str, Any] | None) -> dict[str, Any]:
    """A format-1 ``ModelConfig`` (one class with every family's fields) as format 2's
    ``{kind, fields}`` of the family's own config."""
    kind = old["kind"]
    y_range = old.get("y_range")
    if kind in ("dot", "dot_bias"):
        fields = {name: old[name] for name in _DOT_FIELDS}
        fields["biases"] = kind == "dot_bias"
        fields["activity_prior"] = bool(old["activity_prior"])
        # format 1 left a factors-only model unsquashed without y_range, and derived the
        # range of a model with biases from the data
        fields["y_range"] = y_range if y_range is not None or kind == "dot" else "data"
    elif kind == "nn":
        fields = {name: old[name] for name in _NN_FIELDS}
        fields["y_range"] = "data" if y_range is None else y_range
    elif kind == "bayes":
        implicit = True if fit is None else bool(fit.get("implicit", True))
        fields = {"n_factors": old["n_factors"], "implicit": implicit}
    elif kind == "topn":
        fields = {}
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return {"kind": kind, "fields": fields}


def _part_1_to_2(part: dict[str, Any]) -> dict[str, Any]:
    part = copy.deepcopy(part)
    config = part.get("config")
    fit_fields = None
    if isinstance(config, dict) and config.get("type") == "BayesConfig":
        fit_fields = dict(config["fields"])
        # the model's sizes moved into its model config (BayesMFConfig)
        config["fields"] = {
            k: v for k, v in fit_fields.items() if k not in ("n_factors", "implicit")
        }
    module = part["module"]
    if module["class"] == "BayesianMF":
        args = module["args"]
        sampler = dict(args["config"])
        module["args"] = {
            "n_users": args["n_users"], "n_items": args["n_items"],
            "n_samples": args["n_samples"], "n_factors": sampler["n_factors"],
            "implicit": bool(sampler.get("implicit", True)),
        }  # fmt: skip
        fit_fields = fit_fields or sampler
    if part.get("model_config") is not None:
        part["model_config"] = _family_config(part["model_config"], fit_fields)
    return part


def _1_to_2(document: Document) -> Document:
    """Format 2 gave each family its own model config, and the Bayesian model its sizes
    as constructor arguments instead of its sampler's config."""
    upgraded = dict(document)
    upgraded["parts"] = {role: _part_1_to_2(part) for role, part in document["parts"].items()}
    upgraded["format_version"] = 2
    return upgraded


MIGRATIONS: dict[int, Callable[[Document], Document]] = {1: _1_to_2}
