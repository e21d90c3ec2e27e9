"""Model files: one safetensors file holding weights, vocabularies and training data.

A model file is what a trained model needs to predict, recommend, fold in new users
and explain itself, and nothing that runs code: tensors in safetensors (no pickle;
``torch.load`` is never called) and one JSON document in the file's metadata. The
document records the format version, each model's class and constructor arguments
(rebuilt only from an allow-list of collabfilter modules), its configs, epoch history
and final metrics, the vocabularies with raw ids in their own type ("007" stays text)
and titles, the rating scale, a fingerprint of the training ratings, the versions that
wrote it, and a SHA-256 of every tensor. The document's own SHA-256 sits beside it.

Loading checks everything before anything is built, and every problem - truncation,
flipped bytes, an unknown format version, shapes that disagree - is a
:class:`~collabfilter.errors.ModelFileError` that names the file and what is wrong.
Saving writes a temporary file in the target's folder and renames it over the target,
so a crash mid-save leaves the previous model intact; one file makes replacing a
served model atomic.

A file may hold two models trained on the same data: one that predicts ratings and
one that ranks (``save_model(path, rating_model, ranking=ranking_model)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from collabfilter.config import (
    BayesConfig,
    ModelConfig,
    TopNConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from collabfilter.data import RatingScale, Vocabulary
from collabfilter.data.interactions import Interactions
from collabfilter.errors import CollabFilterError, ModelFileError
from collabfilter.fitted import EpochRecord, FittedModel
from collabfilter.models import (
    EASE,
    BayesianMF,
    DotProduct,
    DotProductBias,
    EmbeddingNN,
    ImplicitALS,
    ItemKNN,
)

FORMAT = "collabfilter-model"
FORMAT_VERSION = 1
"""Version of the file layout this release writes. Older versions load through
:data:`MIGRATIONS`; newer ones are refused with a request to upgrade."""

MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""Document upgrades: ``MIGRATIONS[n]`` turns a version-``n`` document into version
``n + 1``. Version 1 is the first format, so there is nothing to migrate yet."""

MODULES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (DotProduct, DotProductBias, EmbeddingNN, BayesianMF, EASE, ImplicitALS, ItemKNN)
}
"""The only classes a model file can name: loading builds one of these from its
recorded constructor arguments (``from_spec`` where a class has one), then fills in
the weights."""

CONFIGS: dict[str, Any] = {cls.__name__: cls for cls in (TrainConfig, BayesConfig, TopNConfig)}
"""Training-config classes a model file can name."""

ROLES = ("rating", "ranking")
_DATA = ("data.indptr", "data.item_idx", "data.rating")


def save_model(path: str | Path, model: FittedModel, *, ranking: FittedModel | None = None) -> Path:
    """Write ``model`` (and optionally a ranking model of the same data) to exactly
    ``path``, atomically. Returns the path.

    Raises:
        CollabFilterError: if the two models were trained on different data, or a
            model's class cannot be written.
    """
    parts = {("rating" if model.predicts_ratings else "ranking"): model}
    if ranking is not None:
        if "ranking" in parts or ranking.predicts_ratings:
            raise CollabFilterError("ranking= takes a ranking model beside a rating model")
        _require_same_data(model, ranking)
        parts["ranking"] = ranking
    tensors = _data_tensors(model.interactions)
    documents = {}
    for role, part in parts.items():
        documents[role] = _part_document(part)
        for name, value in part.model.state_dict().items():
            tensors[f"{role}.{name}"] = value.detach().cpu().contiguous().clone()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "written_by": {
            "collabfilter": _package_version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": model.users.to_dict(),
        "items": model.items.to_dict(),
        "training_data": {
            "fingerprint": model.interactions.fingerprint(),
            "ratings": len(model.interactions),
            "scale": _scale_dict(model.scale),
        },
        "parts": documents,
        "tensors": {name: _describe(value) for name, value in tensors.items()},
    }
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    metadata = {"collabfilter": text, "sha256": _sha(text.encode())}
    final = Path(path)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(temporary), metadata=metadata)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def load_model(path: str | Path) -> FittedModel:
    """The model saved at ``path``, on the CPU; with its ranking companion as
    ``.ranker`` when the file holds both.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ModelFileError: for anything wrong with the file, naming it and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return _load(path)
    except ModelFileError:
        raise
    except Exception as error:  # anything unforeseen in a damaged file is still one kind
        raise ModelFileError(
            f"{path}: damaged model file ({type(error).__name__}: {error})"
        ) from error


def _load(path: Path) -> FittedModel:
    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}")

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:
        raise fail(f"not a readable safetensors file (truncated or corrupt?): {error}") from error
    with handle:
        metadata: dict[str, str] | None = handle.metadata()  # type: ignore[no-untyped-call]
        document = _document(metadata, fail)
        tensors = _tensors(handle, document, fail)
    users = _vocabulary(document, "users", fail)
    items = _vocabulary(document, "items", fail)
    interactions = _interactions(document, tensors, users, items, fail)
    parts = {
        role: _part(role, spec, tensors, users, items, interactions, fail)
        for role, spec in _mapping(document, "parts", fail).items()
    }
    if not parts or set(parts) - set(ROLES):
        raise fail(f"parts must be some of {ROLES}, got {sorted(parts)}")
    primary = parts.get("rating") or parts["ranking"]
    if "rating" in parts and "ranking" in parts:
        primary.ranker = parts["ranking"]
    return primary


def _document(
    metadata: dict[str, str] | None, fail: Callable[[str], ModelFileError]
) -> dict[str, Any]:
    if not metadata or "collabfilter" not in metadata or "sha256" not in metadata:
        raise fail("no collabfilter metadata: not a model file written by collabfilter")
    text = metadata["collabfilter"]
    if _sha(text.encode()) != metadata["sha256"]:
        raise fail("metadata checksum mismatch: the file was altered or damaged")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise fail(f"metadata is not valid JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise fail(f"not a {FORMAT} file")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise fail(f"format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise fail(
            f"format version {version} is newer than this collabfilter reads "
            f"({FORMAT_VERSION}): upgrade collabfilter (pip install -U collabfilter)"
        )
    while version < FORMAT_VERSION:
        if version not in MIGRATIONS:
            raise fail(
                f"format version {version} cannot be read by this collabfilter (it reads "
                f"{FORMAT_VERSION}); load it with the release that wrote it "
                f"({document.get('written_by', {}).get('collabfilter', 'unknown')}) and "
                "retrain, or install that release to use it"
            )
        document = MIGRATIONS[version](document)
        version += 1
    result: dict[str, Any] = document
    return result


def _tensors(
    handle: Any, document: dict[str, Any], fail: Callable[[str], ModelFileError]
) -> dict[str, Tensor]:
    recorded = _mapping(document, "tensors", fail)
    present = set(handle.keys())
    if present != set(recorded):
        extra, missing = sorted(present - set(recorded)), sorted(set(recorded) - present)
        raise fail(f"tensors do not match the record (extra {extra}, missing {missing})")
    tensors = {}
    for name, record in recorded.items():
        # a copy, not a view of the mapped file: the model must not depend on the file
        # once loaded (a file overwritten in place would pull pages from under it)
        tensor = handle.get_tensor(name).clone()
        if not isinstance(record, dict) or _describe(tensor) != record:
            raise fail(f"tensor {name!r} checksum, dtype or shape mismatch: altered or damaged")
        tensors[name] = tensor
    return tensors


def _vocabulary(
    document: dict[str, Any], key: str, fail: Callable[[str], ModelFileError]
) -> Vocabulary:
    try:
        return Vocabulary.from_dict(_mapping(document, key, fail))
    except ModelFileError:
        raise
    except (CollabFilterError, KeyError, TypeError, ValueError) as error:
        raise fail(f"{key} vocabulary is invalid: {error}") from error


def _interactions(
    document: dict[str, Any],
    tensors: dict[str, Tensor],
    users: Vocabulary,
    items: Vocabulary,
    fail: Callable[[str], ModelFileError],
) -> Interactions:
    summary = _mapping(document, "training_data", fail)
    try:
        scale_fields = summary["scale"]
        scale = RatingScale(scale_fields["low"], scale_fields["high"], scale_fields["step"])
        indptr, item_idx, rating = (tensors[name].numpy() for name in _DATA)
        data = Interactions(indptr, item_idx, rating, len(items), scale)
    except (CollabFilterError, KeyError, TypeError, ValueError) as error:
        raise fail(f"training data is invalid: {error}") from error
    if data.n_users != len(users):
        raise fail(f"training data has {data.n_users} users, the vocabulary {len(users)}")
    if data.fingerprint() != summary.get("fingerprint"):
        raise fail("training data fingerprint mismatch: altered or damaged")
    return data


def _part(
    role: str,
    spec: Any,
    tensors: dict[str, Tensor],
    users: Vocabulary,
    items: Vocabulary,
    interactions: Interactions,
    fail: Callable[[str], ModelFileError],
) -> FittedModel:
    if not isinstance(spec, dict):
        raise fail(f"part {role!r} is not a record")
    module_spec = _mapping(spec, "module", fail)
    cls = MODULES.get(str(module_spec.get("class")))
    if cls is None:
        raise fail(f"unknown model class {module_spec.get('class')!r}; known: {sorted(MODULES)}")
    args = _mapping(module_spec, "args", fail)
    shape = args.get("sizes", args)  # ranking models keep their sizes apart
    if shape.get("n_users") != len(users) or shape.get("n_items") != len(items):
        raise fail(f"{role} model sizes disagree with the vocabularies")
    try:
        build = getattr(cls, "from_spec", None)
        module = build(args) if build is not None else cls(**args)
        prefix = f"{role}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)
        model_config = (
            None if spec.get("model_config") is None
            else config_from_dict(ModelConfig, spec["model_config"])
        )  # fmt: skip
        config = _config(spec.get("config"), fail)
        history = [EpochRecord(**record) for record in spec.get("history", [])]
        metrics = {str(k): float(v) for k, v in dict(spec.get("metrics", {})).items()}
    except ModelFileError:
        raise
    except (CollabFilterError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise fail(f"{role} model cannot be rebuilt: {error}") from error
    for name, value in module.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise fail(f"{role} tensor {name!r} holds values that are not finite")
    module.eval()
    return FittedModel(module, users, items, interactions, model_config, config, history, metrics)


def _config(record: Any, fail: Callable[[str], ModelFileError]) -> Any:
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("type") not in CONFIGS:
        raise fail(f"unknown training config {record!r}; known: {sorted(CONFIGS)}")
    return config_from_dict(CONFIGS[record["type"]], record["fields"])


def _part_document(model: FittedModel) -> dict[str, Any]:
    module = model.model
    name = type(module).__name__
    if MODULES.get(name) is not type(module) or not hasattr(module, "spec"):
        raise CollabFilterError(f"{name} cannot be saved: model files hold {sorted(MODULES)}")
    config = model.config
    args: dict[str, Any] = module.spec()  # type: ignore[operator]
    return {
        "module": {"class": name, "args": args},
        "model_config": None if model.model_config is None else config_to_dict(model.model_config),
        "config": None if config is None
        else {"type": type(config).__name__, "fields": config_to_dict(config)},
        "history": [vars(record) for record in model.history],
        "metrics": model.metrics,
    }  # fmt: skip


def _require_same_data(left: FittedModel, right: FittedModel) -> None:
    same = (
        left.users == right.users
        and left.items == right.items
        and left.interactions.fingerprint() == right.interactions.fingerprint()
    )
    if not same:
        raise CollabFilterError("the rating and ranking models must be trained on the same data")


def _data_tensors(data: Interactions) -> dict[str, Tensor]:
    arrays = (data.indptr, data.item_idx, data.rating)
    return {name: torch.from_numpy(np.array(a)) for name, a in zip(_DATA, arrays, strict=True)}


def _describe(tensor: Tensor) -> dict[str, Any]:
    raw = tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()
    return {"dtype": str(tensor.dtype), "shape": list(tensor.shape), "sha256": _sha(raw.tobytes())}


def _scale_dict(scale: RatingScale) -> dict[str, Any]:
    return {"low": scale.low, "high": scale.high, "step": scale.step}


def _mapping(
    document: dict[str, Any], key: str, fail: Callable[[str], ModelFileError]
) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise fail(f"{key!r} is missing or not a record")
    return value


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_version() -> str:
    try:
        return version("collabfilter")
    except PackageNotFoundError:  # a source tree that was not installed
        return "0+unknown"
