"""Writing a model file: every tensor and the document, atomically.

The file is written under a temporary name in the target's folder, flushed to disk,
given the permissions a new file gets under the process's umask (or those of the file
it replaces), and renamed over the target: a crash mid-save leaves the previous model
intact, and a served model is replaced in one step.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from collabfilter.config import config_to_dict
from collabfilter.data.interactions import Interactions
from collabfilter.errors import CollabFilterError
from collabfilter.fitted import FittedModel
from collabfilter.models import MODULES
from collabfilter.persist.layout import (
    DATA,
    FORMAT,
    FORMAT_VERSION,
    POPULARITY,
    describe,
    scale_record,
    text_digest,
)


def save_model(path: str | Path, model: FittedModel, *, ranking: FittedModel | None = None) -> Path:
    """Write ``model`` (and optionally a ranking model of the same data) to exactly
    ``path``, atomically. Returns the path.

    Raises:
        CollabFilterError: if the two models were trained on different data, or a
            model's class cannot be written.
        OSError: if the folder is missing or cannot be written, or ``path`` is a folder
            (checked before anything is written).
    """
    final = Path(path)
    if final.is_dir():
        raise IsADirectoryError(f"cannot write the model file {final}: it is a folder")
    if not final.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write the model file {final}: its folder {final.parent} does not exist"
        )
    parts = {("rating" if model.predicts_ratings else "ranking"): model}
    if ranking is not None:
        if "ranking" in parts or ranking.predicts_ratings:
            raise CollabFilterError("ranking= takes a ranking model beside a rating model")
        _require_same_data(model, ranking)
        parts["ranking"] = ranking
    tensors = _data_tensors(model.interactions)
    if model.item_log_popularity is not None:
        tensors[POPULARITY] = torch.from_numpy(np.array(model.item_log_popularity, np.float32))
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
        "columns": model.columns,
        "training_data": {
            "fingerprint": model.interactions.fingerprint(),
            "ratings": len(model.interactions),
            "scale": scale_record(model.scale),
        },
        "parts": documents,
        "tensors": {name: describe(value) for name, value in tensors.items()},
    }
    text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    metadata = {"collabfilter": text, "sha256": text_digest(text)}
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(temporary), metadata=metadata)
        os.chmod(temporary, _mode_for(final))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def _mode_for(target: Path) -> int:
    """The permissions of the file being replaced, else those a new file gets."""
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system says it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)  # elsewhere: read by setting it, and put it back at once
    os.umask(current)
    return current


def _part_document(model: FittedModel) -> dict[str, Any]:
    module = model.model
    name = type(module).__name__
    if MODULES.get(name) is not type(module):
        raise CollabFilterError(f"{name} cannot be saved: model files hold {sorted(MODULES)}")
    config, model_config = model.config, model.model_config
    return {
        "module": {"class": name, "args": module.spec()},
        "model_config": None if model_config is None
        else {"kind": model_config.kind, "fields": config_to_dict(model_config)},
        "config": None if config is None
        else {"type": type(config).__name__, "fields": config_to_dict(config)},
        "history": [vars(record) for record in model.history],
        "metrics": model.metrics,
        "features": {side: encoder.to_dict() for side, encoder in model.features.items()},
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
    return {name: torch.from_numpy(np.array(a)) for name, a in zip(DATA, arrays, strict=True)}


def _package_version() -> str:
    try:
        return version("collabfilter")
    except PackageNotFoundError:  # a source tree that was not installed
        return "0+unknown"
