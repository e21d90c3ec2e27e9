"""Model files: exact round trips, refusal of anything damaged, atomic replacement."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.errors import ModelFileError
from collabfilter.interpret import item_pca, similar_items
from collabfilter.models import RECIPES, BayesConfig
from collabfilter.persist import layout, write
from collabfilter.recommend import fold_in, recommend, recommend_new_user
from collabfilter.train import collab_learner

QUIET = RunOptions(progress=False, seed=7)


@pytest.fixture(scope="module")
def split():
    synthetic = cf.generate_ratings(120, 200, 4000, n_factors=3, seed=1)
    titles = {k: f"Movie {k} (19{k % 100:02d})" for k in range(1, 201)}
    return cf.split_random(synthetic.ratings.with_titles(titles), 0.1, seed=1)


def short(kind):
    """The recipe of ``kind``, shortened for tests."""
    recipe = RECIPES[kind][1]
    if isinstance(recipe, BayesConfig):
        return replace(recipe, sweeps=12, burn_in=2)
    return replace(recipe, epochs=2, tune_decay=False)


def trained(split, kind):
    config = short(kind)
    learner = collab_learner(split.train, split.valid, model=kind, config=config, options=QUIET)
    learner.fit_recipe()
    return learner


@pytest.fixture(scope="module")
def saved(split, tmp_path_factory):
    learner = trained(split, "dot_bias")
    path = tmp_path_factory.mktemp("model") / "model.cf"
    learner.save(path)
    return learner, path


@pytest.mark.parametrize("kind", ["dot_bias", "dot", "nn", "bayes"])
def test_round_trip_predicts_recommends_and_interprets_exactly(split, tmp_path, kind):
    learner = trained(split, kind)
    path = tmp_path / "my model"  # no suffix is added
    assert learner.save(path) == path and path.is_file() and list(tmp_path.iterdir()) == [path]
    loaded = cf.load_model(path)
    assert type(loaded.model) is type(learner.model) and loaded.device.type == "cpu"
    assert np.array_equal(loaded.predict_ratings(split.valid), learner.predict_ratings(split.valid))
    users = learner.users.ids[:20]
    ours, theirs = recommend(learner, users, k=8), recommend(loaded, users, k=8)
    assert np.array_equal(ours.item_idx, theirs.item_idx)
    assert np.array_equal(ours.scores, theirs.scores)
    assert loaded.history == learner.history and loaded.metrics == learner.metrics
    assert loaded.config == learner.config and loaded.model_config == learner.model_config
    assert loaded.users == learner.users and loaded.items == learner.items
    assert loaded.interactions.fingerprint() == learner.interactions.fingerprint()
    pd.testing.assert_frame_equal(similar_items(loaded, 3, k=5), similar_items(learner, 3, k=5))
    assert np.array_equal(item_pca(loaded, 2).coordinates, item_pca(learner, 2).coordinates)


@pytest.mark.parametrize("kind", ["dot_bias", "bayes", "nn"])
def test_fold_in_after_loading_is_identical(split, tmp_path, kind):
    learner = trained(split, kind)
    learner.save(tmp_path / "m")
    loaded = cf.load_model(tmp_path / "m")
    rated = {"Movie 3 (1903)": 5, 10: 1, 11: 4}
    assert torch.equal(loaded.score_folded(fold_in(loaded, rated)),
                       learner.score_folded(fold_in(learner, rated)))  # fmt: skip
    pd.testing.assert_frame_equal(
        recommend_new_user(loaded, rated, k=5), recommend_new_user(learner, rated, k=5)
    )


def test_text_ids_keep_their_type(tmp_path):
    frame = pd.DataFrame(
        {"user": ["007", "7", "007", "7", "a"] * 8, "item": [str(i) for i in range(40)],
         "rating": [1.0, 2.0, 3.0, 4.0, 5.0] * 8}
    )  # fmt: skip
    ratings = cf.Ratings.from_df(frame)
    assert set(ratings.users.ids) == {"007", "7", "a"}
    learner = collab_learner(ratings, config=replace(RECIPES["dot_bias"][1], epochs=1),
                             options=QUIET)  # fmt: skip
    learner.save(tmp_path / "m")
    loaded = cf.load_model(tmp_path / "m")
    assert loaded.users.ids.tolist() == learner.users.ids.tolist()
    assert np.array_equal(loaded.predict(["007", "7"], ["3", "3"]),
                          learner.predict(["007", "7"], ["3", "3"]))  # fmt: skip


def test_every_flipped_byte_or_truncation_loads_identically_or_is_refused(saved, tmp_path):
    """A fuzz loop over a real model file: 2,500 single-byte flips spread over the whole
    file and 600 truncations; each case loads a model that predicts exactly as the
    original or raises ModelFileError, never another exception."""
    learner, path = saved
    original = path.read_bytes()
    expected = learner.predict_ratings(learner.valid_ratings)
    rng = np.random.default_rng(0)
    target = tmp_path / "fuzzed"
    cases = [("flip", int(p), int(rng.integers(1, 256))) for p in
             rng.integers(0, len(original), 2500)]  # fmt: skip
    cases += [("cut", int(n), 0) for n in rng.integers(0, len(original), 600)]
    outcomes = {"refused": 0, "identical": 0}
    for kind, position, mask in cases:
        data = bytearray(original)
        if kind == "flip":
            data[position] ^= mask
        else:
            del data[position:]
        target.write_bytes(bytes(data))
        try:
            model = cf.load_model(target)
        except ModelFileError:
            outcomes["refused"] += 1
            continue
        assert np.array_equal(model.predict_ratings(learner.valid_ratings), expected)
        outcomes["identical"] += 1
    assert outcomes["refused"] >= 3000


def rewrite(path, target, change_document=None, change_tensors=None):
    """Copy a model file with its document or tensors changed and checksums redone,
    as a deliberate forger (or a buggy writer) would."""
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
    tensors = load_file(str(path))
    if change_tensors:
        change_tensors(tensors)
        document["tensors"] = {k: layout.describe(v) for k, v in tensors.items()}
    if change_document:
        change_document(document)
    text = json.dumps(document)
    save_file(
        tensors, str(target), metadata={"collabfilter": text, "sha256": layout.text_digest(text)}
    )
    return target


@pytest.mark.parametrize(
    ("change_document", "change_tensors", "message"),
    [
        (lambda d: d.update(format_version=3), None, "newer than this collabfilter.*upgrade"),
        (lambda d: d.update(format_version=0), None, "format version 0 cannot be read"),
        (lambda d: d.update(format="other"), None, "not a collabfilter-model file"),
        (lambda d: d["parts"]["rating"]["module"].update({"class": "os.system"}), None,
         "unknown model class 'os.system'"),
        (lambda d: d["parts"]["rating"]["module"]["args"].update(n_items=5), None,
         "recorded arguments make it"),
        (lambda d: d["users"]["ids"].pop(), None, "sizes disagree with the vocabularies"),
        (lambda d: d["parts"]["rating"]["config"]["fields"].update(lr=-1), None,
         "cannot be rebuilt: lr must be > 0"),
        (None, lambda t: t["rating.item_bias"].fill_(float("nan")), "not finite"),
        (None, lambda t: t.pop("rating.item_bias"), "(?s)do not match its class.*item_bias"),
        (None, lambda t: t["data.rating"].clamp_(max=3.0), "fingerprint mismatch"),
        (None, lambda t: t["data.rating"].add_(1.0), "training ratings must be finite and on"),
    ],
)  # fmt: skip
def test_inconsistent_files_are_refused_with_the_reason(
    saved, tmp_path, change_document, change_tensors, message
):
    _, path = saved
    forged = rewrite(path, tmp_path / "forged", change_document, change_tensors)
    with pytest.raises(ModelFileError, match=message):
        cf.load_model(forged)


def test_metadata_edited_without_its_checksum_is_refused(saved, tmp_path):
    _, path = saved
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    metadata["collabfilter"] = metadata["collabfilter"].replace('"epoch":1', '"epoch":9')
    save_file(load_file(str(path)), str(tmp_path / "edited"), metadata=metadata)
    with pytest.raises(ModelFileError, match="metadata checksum mismatch"):
        cf.load_model(tmp_path / "edited")


def test_not_model_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        cf.load_model(tmp_path / "absent")
    for name, content in (("empty", b""), ("text", b"hello world" * 10)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelFileError, match="not a readable safetensors file"):
            cf.load_model(tmp_path / name)
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain"))
    with pytest.raises(ModelFileError, match="no collabfilter metadata"):
        cf.load_model(tmp_path / "plain")


def test_a_crash_mid_save_leaves_the_old_model(saved, tmp_path, monkeypatch):
    learner, path = saved
    target = tmp_path / "served.cf"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(write, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        learner.save(target)
    assert target.read_bytes() == before and list(tmp_path.iterdir()) == [target]
    assert np.array_equal(
        cf.load_model(target).predict_ratings(learner.valid_ratings),
        learner.predict_ratings(learner.valid_ratings),
    )


def test_the_file_holds_what_recommendation_needs(saved):
    learner, path = saved
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
        names = set(handle.keys())
    assert {"data.indptr", "data.item_idx", "data.rating"} <= names
    assert document["users"]["id_type"] == "int" and document["items"]["titles"][0]
    assert document["training_data"]["ratings"] == len(learner.train_ratings)
    assert set(document["written_by"]) == {"collabfilter", "torch", "python"}
    assert document["parts"]["rating"]["history"][0]["epoch"] == 1


def test_a_loaded_model_does_not_depend_on_its_file(saved, tmp_path):
    learner, path = saved
    target = tmp_path / "m.cf"
    target.write_bytes(path.read_bytes())
    loaded = cf.load_model(target)
    expected = loaded.predict_ratings(learner.valid_ratings)
    with open(target, "r+b") as handle:  # overwritten in place, then cut short
        handle.write(b"\0" * len(path.read_bytes()))
        handle.truncate(10)
    assert np.array_equal(loaded.predict_ratings(learner.valid_ratings), expected)


@pytest.mark.parametrize("candidate", ["ease", "ials", "item_knn"])
def test_round_trip_of_ranking_models(split, tmp_path, candidate):
    from collabfilter.models import TopNConfig

    config = TopNConfig(candidates=(candidate,), ials_sweeps=2)
    learner = collab_learner(split.train, model="topn", config=config, options=QUIET)
    learner.fit_recipe()
    assert learner.report.kind == candidate
    loaded = cf.load_model(learner.save(tmp_path / "ranker.cf"))
    assert type(loaded.model) is type(learner.model) and not loaded.predicts_ratings
    users = np.arange(20)
    assert torch.equal(loaded.score_users(users), learner.score_users(users))
    ours, theirs = (
        recommend(learner, learner.users.ids[:5]),
        recommend(loaded, loaded.users.ids[:5]),
    )
    assert np.array_equal(ours.item_idx, theirs.item_idx)
    rated = {3: 5.0, 11: 2.0}
    pd.testing.assert_frame_equal(
        recommend_new_user(loaded, rated), recommend_new_user(learner, rated)
    )
