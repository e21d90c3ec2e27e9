"""Reading a model file: everything checked before anything is trusted.

Checksums prove integrity, not sense: a document edited and re-digested (anyone can
write such a tool) must still be refused when it does not make sense. So loading
checks, in order, before it allocates any weight:

1. the document: its digest, format and version (older versions are migrated);
2. every tensor's record against the file (names, dtypes, shapes; safetensors itself
   checks that each tensor's bytes lie inside the file);
3. each model's constructor arguments: the module is built on torch's ``meta`` device
   (no memory), and the dtype and shape of every tensor it expects must be those in
   the file, so a header asking for 200,000 factors in a small file is refused before
   anything is allocated;
4. the vocabularies against the models' and the training data's sizes.

Only then is each tensor read, once: straight from the file into its own memory (no
mapping, no second copy: a loaded model does not depend on the file), its digest
compared, and the modules filled in place. What the tensors will take is known from the
header before anything is read, and a file asking for more than ``max_bytes``
(:data:`MAX_MODEL_BYTES` by default) is refused. Last come the checks of sense: every family's
:meth:`~collabfilter.models.FamilyModule.check_state` (finite values, output ranges
against the rating scale, index ranges) and the training ratings (finite, on the
scale, indices in range). Every problem is a :class:`ModelFileError` naming the file
and what is wrong.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import Tensor

from collabfilter.config import FitConfig, ModelConfig, config_from_dict
from collabfilter.data import RatingScale, Vocabulary
from collabfilter.data.features import FeatureEncoder
from collabfilter.data.interactions import Interactions
from collabfilter.data.popularity import popularity_problem
from collabfilter.errors import CollabFilterError, ModelFileError
from collabfilter.fitted import FittedModel
from collabfilter.models import FAMILIES, MODULES, FamilyModule, family_of
from collabfilter.persist.layout import (
    DATA,
    DATA_DTYPES,
    FORMAT,
    FORMAT_VERSION,
    POPULARITY,
    ROLES,
    digest,
    text_digest,
)
from collabfilter.persist.migrate import MIGRATIONS
from collabfilter.progress import EpochRecord

Fail = Callable[[str], ModelFileError]

MAX_MODEL_BYTES = 16 * 2**30
"""The most bytes of tensors :func:`load_model` reads by default (a file of ml-25m's shape
with the Bayesian model's default sample budget holds about 1 GiB)."""

FIT_CONFIGS: dict[str, type[FitConfig]] = {
    family.fit_config.__name__: family.fit_config for family in FAMILIES
}
"""Fit-config classes a model file can name."""


def load_model(path: str | Path, *, max_bytes: int = MAX_MODEL_BYTES) -> FittedModel:
    """The model saved at ``path``, on the CPU; with its ranking companion as
    ``.ranker`` when the file holds both.

    Args:
        path: the model file.
        max_bytes: refuse a file whose tensors would take more memory than this.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ModelFileError: for anything wrong with the file, naming it and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return _load(path, max_bytes)
    except ModelFileError as error:
        if str(error).startswith(f"{path}: "):
            raise
        raise ModelFileError(f"{path}: {error}") from error
    except Exception as error:  # anything unforeseen in a damaged file is still one kind
        raise ModelFileError(
            f"{path}: damaged model file ({type(error).__name__}: {error})"
        ) from error


def _load(path: Path, max_bytes: int) -> FittedModel:
    def fail(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: {problem}")

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as error:
        raise fail(f"not a readable safetensors file (truncated or corrupt?): {error}") from error
    with handle:
        metadata: dict[str, str] | None = handle.metadata()  # type: ignore[no-untyped-call]
        document = _document(metadata, fail)
        records = _records(handle, document, fail)
        users = _vocabulary(document, "users", fail)
        items = _vocabulary(document, "items", fail)
        scale = _scale(document, fail)
        columns = _columns(document, fail)
        parts = {
            role: _part(role, spec, records, len(users), len(items), fail)
            for role, spec in _mapping(document, "parts", fail).items()
        }
        if not parts or set(parts) - set(ROLES):
            raise fail(f"parts must be some of {ROLES}, got {sorted(parts)}")
        _expect_data(records, len(users), fail)
    tensors = _read_tensors(path, records, max_bytes, fail)
    interactions = _interactions(document, tensors, users, items, scale, fail)
    popularity = _popularity(tensors, interactions, fail)
    fitted = {
        role: _fill(role, part, tensors, users, items, interactions, scale, fail)
        for role, part in parts.items()
    }
    for part in fitted.values():
        part.columns = dict(columns)
        part.item_log_popularity = popularity
    primary = fitted.get("rating") or fitted["ranking"]
    if "rating" in fitted and "ranking" in fitted:
        primary.ranker = fitted["ranking"]
    return primary


# ----------------------------------------------------------------------------- document
def _document(metadata: dict[str, str] | None, fail: Fail) -> dict[str, Any]:
    if not metadata or "collabfilter" not in metadata or "sha256" not in metadata:
        raise fail("no collabfilter metadata: not a model file written by collabfilter")
    text = metadata["collabfilter"]
    if text_digest(text) != metadata["sha256"]:
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
            written_by = document.get("written_by", {})
            release = written_by.get("collabfilter") if isinstance(written_by, dict) else None
            raise fail(
                f"format version {version} cannot be read by this collabfilter (it reads "
                f"{FORMAT_VERSION}); load it with the release that wrote it "
                f"({release or 'unknown'}) and retrain, or install that release to use it"
            )
        try:
            document = MIGRATIONS[version](document)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise fail(f"a format-{version} document that cannot be upgraded: {error!r}") from error
        version += 1
    result: dict[str, Any] = document
    return result


def _records(handle: Any, document: dict[str, Any], fail: Fail) -> dict[str, dict[str, Any]]:
    """The document's tensor records, checked against the file's own header."""
    recorded = _mapping(document, "tensors", fail)
    present = set(handle.keys())
    if present != set(recorded):
        extra, missing = sorted(present - set(recorded)), sorted(set(recorded) - present)
        raise fail(f"tensors do not match the record (extra {extra}, missing {missing})")
    for name, record in recorded.items():
        if not isinstance(record, dict) or set(record) != {"dtype", "shape", "sha256"}:
            raise fail(f"tensor {name!r} has no valid record")
        piece = handle.get_slice(name)
        dtype = _DTYPES.get(piece.get_dtype())
        if str(dtype) != record["dtype"] or list(piece.get_shape()) != record["shape"]:
            raise fail(f"tensor {name!r} is not the {record['dtype']} {record['shape']} recorded")
    return recorded


_DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
"""safetensors' dtype codes and the torch dtypes they are read as."""
_BY_NAME = {str(dtype): dtype for dtype in _DTYPES.values()}


def _mapping(document: dict[str, Any], key: str, fail: Fail) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise fail(f"{key!r} is missing or not a record")
    return value


def _vocabulary(document: dict[str, Any], key: str, fail: Fail) -> Vocabulary:
    try:
        return Vocabulary.from_dict(_mapping(document, key, fail))
    except ModelFileError:
        raise
    except (CollabFilterError, KeyError, TypeError, ValueError, OverflowError) as error:
        raise fail(f"{key} vocabulary is invalid: {error}") from error


def _columns(document: dict[str, Any], fail: Fail) -> dict[str, str]:
    """The training table's column names (absent from files written before them)."""
    columns = document.get("columns", {})
    if not isinstance(columns, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= 1000 for k, v in columns.items()
    ):
        raise fail("columns must map field names to column names")
    return columns


def _features(spec: dict[str, Any], module: FamilyModule, fail: Fail) -> dict[str, FeatureEncoder]:
    """A part's side-feature encoders (absent from files written before them), as
    wide as the module's feature tables."""
    given = spec.get("features", {})
    if not isinstance(given, dict) or not set(given) <= {"user", "item"}:
        raise fail("features must map 'user' and 'item' to feature encoders")
    encoders = {}
    for side, record in given.items():
        if not isinstance(record, dict):
            raise fail(f"{side} features must be a feature encoder's record")
        try:
            encoders[side] = FeatureEncoder.from_dict(record)
        except (CollabFilterError, KeyError, TypeError, ValueError, OverflowError) as error:
            raise fail(f"{side} features are invalid: {error!r}") from error
    sizes = module.spec()
    for side in ("user", "item"):
        if side == "item" and "n_item_features" not in sizes:
            continue  # item features not held as columns (bayes folds them into its rows)
        width = int(sizes.get(f"n_{side}_features", 0))
        encoded = len(encoders[side].names) if side in encoders else 0
        if width != encoded:
            raise fail(
                f"the model reads {width} {side} feature columns; its encoder makes {encoded}"
            )
    return encoders


def _scale(document: dict[str, Any], fail: Fail) -> RatingScale:
    summary = _mapping(document, "training_data", fail)
    try:
        fields = summary["scale"]
        return RatingScale(fields["low"], fields["high"], fields["step"])
    except (CollabFilterError, KeyError, TypeError, ValueError) as error:
        raise fail(f"training data scale is invalid: {error}") from error


# ----------------------------------------------------------------------------- parts
class _Part:
    """A part's module (still on the meta device) and what the document says of it."""

    def __init__(self, module: FamilyModule, spec: dict[str, Any]) -> None:
        self.module = module
        self.spec = spec


def _part(
    role: str, spec: Any, records: dict[str, dict[str, Any]], n_users: int, n_items: int,
    fail: Fail,
) -> _Part:  # fmt: skip
    """The part's module built on the meta device from its recorded arguments, its
    expected tensors compared with the file's before any is read."""
    if not isinstance(spec, dict):
        raise fail(f"part {role!r} is not a record")
    module_spec = _mapping(spec, "module", fail)
    cls = MODULES.get(str(module_spec.get("class")))
    if cls is None:
        raise fail(f"unknown model class {module_spec.get('class')!r}; known: {sorted(MODULES)}")
    args = _mapping(module_spec, "args", fail)
    _bounded(args, len(records), f"{role} model's arguments", fail)
    try:
        with torch.device("meta"):
            module = cls.from_spec(args)
    except (CollabFilterError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise fail(f"{role} model cannot be rebuilt from {args!r}: {error}") from error
    expected = {f"{role}.{name}": value for name, value in module.state_dict().items()}
    recorded = {name for name in records if name.startswith(f"{role}.")}
    if set(expected) != recorded:
        raise fail(
            f"{role} model's tensors do not match its class (missing "
            f"{sorted(set(expected) - recorded)}, unexpected {sorted(recorded - set(expected))})"
        )
    for name, value in expected.items():
        record = records[name]
        if record["dtype"] != str(value.dtype) or record["shape"] != list(value.shape):
            raise fail(
                f"tensor {name!r} is {record['dtype']} {record['shape']}; the recorded "
                f"arguments make it {value.dtype} {list(value.shape)}"
            )
    sizes = args.get("sizes", args)  # ranking models keep their sizes apart
    if sizes.get("n_users") != n_users or sizes.get("n_items") != n_items:
        raise fail(f"{role} model sizes disagree with the vocabularies")
    return _Part(module, spec)


def _bounded(value: Any, limit: int, where: str, fail: Fail) -> None:
    """Refuse arguments holding a list longer than the file has tensors: no module of
    collabfilter takes more list entries (layers, dropouts) than it has tensors, and a
    forged list of millions would cost minutes to build before any shape is compared."""
    if isinstance(value, dict):
        for item in value.values():
            _bounded(item, limit, where, fail)
    elif isinstance(value, list):
        if len(value) > limit:
            raise fail(f"{where} hold a list of {len(value):,} entries for {limit} tensors")
        for item in value:
            _bounded(item, limit, where, fail)


def _expect_data(records: dict[str, dict[str, Any]], n_users: int, fail: Fail) -> None:
    """The training ratings' arrays: their dtypes, one dimension, ``users + 1`` pointers."""
    for name in DATA:
        if name not in records:
            raise fail(f"the training ratings' tensor {name!r} is missing")
        record = records[name]
        if record["dtype"] != DATA_DTYPES[name] or len(record["shape"]) != 1:
            raise fail(f"{name} must be a 1-d {DATA_DTYPES[name]}, not {record['dtype']} "
                       f"{record['shape']}")  # fmt: skip
    if records["data.indptr"]["shape"] != [n_users + 1]:
        raise fail(f"data.indptr must hold {n_users + 1} pointers for {n_users} users")
    if records["data.item_idx"]["shape"] != records["data.rating"]["shape"]:
        raise fail("data.item_idx and data.rating must have one length")


def _read_tensors(
    path: Path, records: dict[str, dict[str, Any]], max_bytes: int, fail: Fail
) -> dict[str, Tensor]:
    """Every tensor, each read straight from the file into memory of its own and its
    digest checked (the header, checked already, gives where each one lies)."""
    if sys.byteorder != "little":  # safetensors stores little-endian bytes
        raise fail("model files are read on little-endian machines only")
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        start = 8 + size
        spans = {name: header[name]["data_offsets"] for name in records}
        needed = sum(end - begin for begin, end in spans.values())
        if needed > max_bytes:
            raise fail(
                f"its tensors would take {needed:,} bytes, more than the limit of "
                f"{max_bytes:,} (load_model's max_bytes)"
            )
        tensors = {}
        for name, record in records.items():
            begin, end = spans[name]
            tensor = torch.empty(record["shape"], dtype=_BY_NAME[record["dtype"]])
            raw = tensor.view(-1).view(torch.uint8).numpy() if tensor.numel() else None
            if raw is not None:
                handle.seek(start + begin)
                if handle.readinto(raw.data) != end - begin:
                    raise fail(f"tensor {name!r} is cut short: the file is truncated")
            if digest(tensor) != record["sha256"]:
                raise fail(f"tensor {name!r} checksum mismatch: altered or damaged")
            tensors[name] = tensor
    return tensors


def _interactions(
    document: dict[str, Any], tensors: dict[str, Tensor], users: Vocabulary,
    items: Vocabulary, scale: RatingScale, fail: Fail,
) -> Interactions:  # fmt: skip
    summary = _mapping(document, "training_data", fail)
    indptr, item_idx, rating = (tensors[name].numpy() for name in DATA)
    if len(rating) and not bool(
        ((rating >= scale.low - 1e-6) & (rating <= scale.high + 1e-6)).all()
    ):  # NaN fails the comparisons too
        raise fail(f"training ratings must be finite and on the scale {scale}")
    try:
        data = Interactions(indptr, item_idx, rating, len(items), scale)
    except (CollabFilterError, ValueError) as error:
        raise fail(f"training data is invalid: {error}") from error
    if data.n_users != len(users):
        raise fail(f"training data has {data.n_users} users, the vocabulary {len(users)}")
    if data.fingerprint() != summary.get("fingerprint"):
        raise fail("training data fingerprint mismatch: altered or damaged")
    return data


def _popularity(
    tensors: dict[str, Tensor], interactions: Interactions, fail: Fail
) -> np.ndarray | None:
    """The items' popularity term, when the file has one: ``log(1 + n_i)`` for every
    rated item, an estimate within the rated items' range for the others."""
    if POPULARITY not in tensors:
        return None
    values = tensors[POPULARITY]
    if values.dtype != torch.float32 or tuple(values.shape) != (interactions.n_items,):
        raise fail(f"{POPULARITY} must be float32 of one value per item ({interactions.n_items})")
    popularity = values.numpy()
    problem = popularity_problem(popularity, interactions.item_counts())
    if problem is not None:
        raise fail(f"{POPULARITY} {problem}")
    return popularity


def _fill(
    role: str, part: _Part, tensors: dict[str, Tensor], users: Vocabulary, items: Vocabulary,
    interactions: Interactions, scale: RatingScale, fail: Fail,
) -> FittedModel:  # fmt: skip
    module, spec = part.module, part.spec
    prefix = f"{role}."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state, strict=True, assign=True)
        module.check_state(scale)
        module.check_training(interactions.item_counts())
        model_config = _model_config(spec.get("model_config"))
        config = _fit_config(spec.get("config"))
        history = [EpochRecord(**record) for record in spec.get("history", [])]
        metrics = {str(k): float(v) for k, v in dict(spec.get("metrics", {})).items()}
    except ModelFileError as error:
        raise fail(f"{role} model: {error}") from error
    except (CollabFilterError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise fail(f"{role} model cannot be rebuilt: {error}") from error
    if model_config is not None and family_of(model_config).name != module.family:
        raise fail(f"{role} model is a {module.family} model with a {model_config.kind} config")
    module.eval()
    fitted = FittedModel(module, users, items, interactions, model_config, config, history, metrics)
    fitted.features = _features(spec, module, fail)
    return fitted


def _model_config(record: Any) -> ModelConfig | None:
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError(f"model config must be a record, got {record!r}")
    family = family_of(str(record.get("kind")))
    config = config_from_dict(family.model_config, dict(record["fields"]))
    if config.kind != record["kind"]:
        raise ValueError(f"model config fields describe {config.kind!r}, not {record['kind']!r}")
    return config


def _fit_config(record: Any) -> FitConfig | None:
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("type") not in FIT_CONFIGS:
        raise ValueError(f"unknown training config {record!r}; known: {sorted(FIT_CONFIGS)}")
    return config_from_dict(FIT_CONFIGS[record["type"]], dict(record["fields"]))
