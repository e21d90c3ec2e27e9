"""Checksums prove integrity, not sense: model files whose contents were edited and
whose digests were recomputed (a tool anyone can write) are refused when they do not
make sense, before anything large is allocated; those that still make sense answer
within the rating scale."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.errors import ModelFileError
from collabfilter.models import RECIPES, BayesConfig, TopNConfig
from collabfilter.persist import layout
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=3)
Document = dict[str, Any]
Tensors = dict[str, torch.Tensor]


def short(recipe: str):
    model_config, config = RECIPES[recipe]
    if isinstance(config, BayesConfig):
        return model_config, replace(config, sweeps=6, burn_in=1)
    if isinstance(config, TopNConfig):
        return model_config, replace(config, candidates=("item_knn",), knn_neighbours=(10,))
    return model_config, replace(config, epochs=2, tune_decay=False)


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    synthetic = cf.generate_ratings(80, 120, 2500, n_factors=3, seed=2)
    folder = tmp_path_factory.mktemp("originals")
    files = {}
    for recipe in ("dot_bias", "nn", "bayes", "topn"):
        model_config, config = short(recipe)
        learner = collab_learner(synthetic.ratings, model=model_config, config=config,
                                 options=QUIET)  # fmt: skip
        learner.fit_recipe()
        files[recipe] = learner.save(folder / f"{recipe}.cf")
    return files


def forge(
    path: Path, target: Path, edit_document: Callable[[Document], None] | None = None,
    edit_tensors: Callable[[Tensors], None] | None = None,
) -> Path:  # fmt: skip
    """``path`` with its document or tensors edited and every digest recomputed."""
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
    tensors = load_file(str(path))
    if edit_tensors is not None:
        edit_tensors(tensors)
        document["tensors"] = {k: layout.describe(v.contiguous()) for k, v in tensors.items()}
    if edit_document is not None:
        edit_document(document)
    text = json.dumps(document)
    metadata = {"collabfilter": text, "sha256": layout.text_digest(text)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(target), metadata=metadata)
    return target


def part(document: Document) -> Document:
    return next(iter(document["parts"].values()))


def answers(model: cf.FittedModel) -> torch.Tensor:
    """What a model says of a few users: its scores of every item."""
    return model.score_users(np.arange(3))


def load_or_refuse(path: Path, original: Path | None = None) -> str:
    """'refused', or 'loaded' after checking the model answers within its scale (and,
    given the original file, exactly as the original does: an edit that loads must be
    one that changes nothing)."""
    try:
        model = cf.load_model(path)
    except ModelFileError as error:
        assert str(path) in str(error)
        return "refused"
    users, items = model.users.ids[:10], model.items.ids[:10]
    if model.predicts_ratings:
        predicted = model.predict(users, items)
        scale = model.scale
        assert np.isfinite(predicted).all()
        assert ((predicted >= scale.low) & (predicted <= scale.high)).all()
    assert torch.isfinite(answers(model)).all()
    if original is not None:
        assert torch.equal(answers(model), answers(cf.load_model(original)))
    return "loaded"


HOSTILE_VALUES = [0, -1, 2.5, 200_000, 10**12, None, "7", [], {}, True, float("nan")]


def argument_records(args: Document) -> list[Document]:
    """The records holding a module's numeric arguments (a ranking model keeps its sizes
    and settings apart)."""
    return [args["sizes"], args["settings"]] if "sizes" in args else [args]


def argument_edits(document: Document) -> list[tuple[int, str, Any]]:
    edits = []
    for position, record in enumerate(argument_records(part(document)["module"]["args"])):
        numeric = [k for k, v in record.items() if isinstance(v, int | float)
                   and not isinstance(v, bool)]  # fmt: skip
        edits += [(position, key, value) for key in numeric for value in HOSTILE_VALUES]
    return edits


@pytest.mark.parametrize("recipe", ["dot_bias", "nn", "bayes", "topn"])
def test_edited_constructor_arguments_are_refused_or_harmless(originals, tmp_path, recipe):
    path = originals[recipe]
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
    edits = argument_edits(document)
    assert len(edits) >= 20
    outcomes = {"refused": 0, "loaded": 0}
    for number, (position, key, value) in enumerate(edits):

        def edit(document: Document, position=position, key=key, value=value) -> None:
            argument_records(part(document)["module"]["args"])[position][key] = value

        outcomes[load_or_refuse(forge(path, tmp_path / f"{number}.cf", edit), path)] += 1
    # what loads changed nothing (an initial scale, a setting used only in training)
    assert outcomes["refused"] >= len(edits) // 2


def test_a_header_asking_for_huge_tables_is_refused_before_allocating(originals, tmp_path):
    def huge(document: Document) -> None:
        part(document)["module"]["args"]["n_factors"] = 200_000

    forged = forge(originals["dot_bias"], tmp_path / "huge.cf", huge)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="recorded arguments make it"):
        cf.load_model(forged)
    assert time.perf_counter() - start < 2.0  # nothing of 200,000 x users was built


def tensor_edits() -> list[tuple[str, Callable[[Tensors], None], str]]:
    """(name, edit, what must happen) for every kind of nonsense a tensor can hold."""

    def floats(name: str) -> Callable[[Tensors], None]:
        return lambda t: t.update({name: t[name].float()})

    def scaled(name: str, factor: float) -> Callable[[Tensors], None]:
        return lambda t: t.update({name: t[name] * factor})

    def poisoned(name: str, value: float) -> Callable[[Tensors], None]:
        def edit(t: Tensors) -> None:
            t[name] = t[name].clone()
            t[name].view(-1)[0] = value

        return edit

    return [
        ("item index as floats", floats("data.item_idx"), "refused"),
        ("pointers as floats", floats("data.indptr"), "refused"),
        ("ratings in float64", lambda t: t.update({"data.rating": t["data.rating"].double()}),
         "refused"),
        ("NaN rating", poisoned("data.rating", float("nan")), "refused"),
        ("rating off the scale", poisoned("data.rating", 75.0), "refused"),
        ("item index past the catalogue", poisoned("data.item_idx", 10_000), "refused"),
        ("negative item index", poisoned("data.item_idx", -3), "refused"),
        ("decreasing pointers", poisoned("data.indptr", 7), "refused"),
    ]  # fmt: skip


@pytest.mark.parametrize("recipe", ["dot_bias", "bayes", "topn"])
@pytest.mark.parametrize("case", range(len(tensor_edits())))
def test_nonsense_in_the_training_ratings_is_refused(originals, tmp_path, recipe, case):
    name, edit, expected = tensor_edits()[case]
    forged = forge(originals[recipe], tmp_path / "forged.cf", edit_tensors=edit)
    assert load_or_refuse(forged) == expected, name


def weight_edits(tensors: Tensors, role: str) -> list[tuple[str, Callable[[Tensors], None]]]:
    edits: list[tuple[str, Callable[[Tensors], None]]] = []
    for name, value in tensors.items():
        if not name.startswith(f"{role}."):
            continue
        if value.is_floating_point() and value.numel():
            for bad in (float("nan"), float("inf"), -float("inf")):

                def poison(t: Tensors, name=name, bad=bad) -> None:
                    t[name] = t[name].clone()
                    t[name].view(-1)[-1] = bad

                edits.append((f"{name} = {bad}", poison))
        if value.dtype == torch.int64 and value.numel():

            def shift(t: Tensors, name=name) -> None:
                t[name] = t[name].clone()
                t[name].view(-1)[-1] = 10**9

            edits.append((f"{name} index out of range", shift))

            def as_float(t: Tensors, name=name) -> None:
                t[name] = t[name].float()

            edits.append((f"{name} as floats", as_float))
    return edits


@pytest.mark.parametrize("recipe", ["dot_bias", "nn", "bayes", "topn"])
def test_nonsense_in_the_weights_is_refused(originals, tmp_path, recipe):
    path = originals[recipe]
    role = "rating" if recipe != "topn" else "ranking"
    edits = weight_edits(load_file(str(path)), role)
    assert edits
    for number, (name, edit) in enumerate(edits):
        forged = forge(path, tmp_path / f"{number}.cf", edit_tensors=edit)
        with pytest.raises(ModelFileError):
            cf.load_model(forged)
        assert name


RANGE_EDITS = [[0.0, 75.0], [-40.0, 5.5], [5.5, 0.5], [0.5, float("nan")], [3.0, 3.0]]


@pytest.mark.parametrize("bounds", RANGE_EDITS)
def test_an_output_range_far_off_the_scale_is_refused(originals, tmp_path, bounds):
    def edit(document: Document) -> None:
        part(document)["module"]["args"]["y_range"] = bounds

    forged = forge(originals["dot_bias"], tmp_path / "range.cf", edit)
    with pytest.raises(ModelFileError, match="y_range|scale|rebuilt"):
        cf.load_model(forged)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["training_data"]["scale"].update(low=5, high=1),
        lambda d: d["training_data"]["scale"].update(low=float("nan")),
        lambda d: d["training_data"]["scale"].update(high=1000),
        lambda d: d["users"].update(ids=d["users"]["ids"][:-1] + [d["users"]["ids"][0]]),
        lambda d: d["users"].update(id_type="float"),
        lambda d: d["items"].update(titles=["x"]),
        lambda d: d.update(columns={"user": 7}),
        lambda d: part(d).update(config={"type": "TrainConfig", "fields": {"lr": -1}}),
        lambda d: part(d).update(model_config={"kind": "nn", "fields": {}}),
        lambda d: part(d).update(history=[{"epoch": "one"}]),
        lambda d: part(d)["module"].update(args={}),
    ],
)
def test_an_inconsistent_document_is_refused(originals, tmp_path, edit):
    forged = forge(originals["dot_bias"], tmp_path / "doc.cf", edit)
    outcome = load_or_refuse(forged)
    assert outcome == "refused"


def test_a_file_larger_than_the_limit_is_refused_before_reading(originals):
    with pytest.raises(ModelFileError, match="more than the limit"):
        cf.load_model(originals["bayes"], max_bytes=1000)


VALID_FEATURES = {
    "separator": "|",
    "fields": [
        {"name": "genres", "kind": "multi", "levels": ["a", "b"], "cuts": []},
        {"name": "year", "kind": "number", "levels": ["<1990", ">=1990"], "cuts": [1990.0]},
    ],
}


def feature_edits() -> list[tuple[str, Callable[[Document], None]]]:
    """Generated edits of a model file's feature encoders: every value of every key of
    a field swapped for hostile ones, and broken wholes."""
    edits: list[tuple[str, Callable[[Document], None]]] = []
    for index in (0, 1):
        for key in ("name", "kind", "levels", "cuts"):
            for value in HOSTILE_VALUES + [["x", "x"], [3.0, 1.0], [float("inf")], "number"]:

                def edit(d, index=index, key=key, value=value):
                    record = json.loads(json.dumps(VALID_FEATURES))
                    record["fields"][index][key] = value
                    part(d)["features"] = {"item": record}

                edits.append((f"{index}.{key}={value!r}", edit))
    doubled = {**VALID_FEATURES, "fields": VALID_FEATURES["fields"] * 2}
    for whole in ([], "x", {"colour": VALID_FEATURES}, {"item": []}, {"item": {"fields": []}},
                  {"item": {**VALID_FEATURES, "separator": ""}}, {"item": doubled}):  # fmt: skip
        edits.append(
            (f"whole={whole!r}"[:60], lambda d, whole=whole: part(d).update(features=whole))
        )
    return edits


def test_forged_feature_encoders_are_refused_or_make_sense(originals, tmp_path):
    from collabfilter.data.features import FeatureEncoder

    refused = 0
    for label, edit in feature_edits():
        forged = forge(originals["bayes"], tmp_path / "features.cf", edit)
        outcome = load_or_refuse(forged, originals["bayes"])
        if outcome == "loaded":  # what loads is a coherent encoder
            encoders = cf.load_model(forged).features
            for encoder in encoders.values():
                assert FeatureEncoder.from_dict(encoder.to_dict()).names == encoder.names, label
        refused += outcome == "refused"
    assert refused >= len(feature_edits()) * 0.8
    valid = forge(originals["bayes"], tmp_path / "valid.cf",
                  lambda d: part(d).update(features={"item": VALID_FEATURES}))  # fmt: skip
    assert load_or_refuse(valid, originals["bayes"]) == "loaded"


def test_a_feature_model_whose_encoder_was_dropped_or_widened_is_refused(tmp_path):
    planted = cf.generate_ratings(80, 120, 2500, n_user_groups=3, seed=2).ratings
    model_config, config = short("bayes")
    learner = collab_learner(planted, model=model_config, config=config, options=QUIET)
    learner.fit_recipe()
    original = learner.save(tmp_path / "features.cf")
    assert load_or_refuse(original) == "loaded"
    wider = json.loads(json.dumps(learner.features["user"].to_dict()))
    wider["fields"][0]["levels"].append("u99")
    for features in ({}, {"user": wider}):
        forged = forge(original, tmp_path / "forged.cf",
                       lambda d, f=features: part(d).update(features=f))  # fmt: skip
        assert load_or_refuse(forged) == "refused"
