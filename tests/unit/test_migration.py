"""Model files written by earlier releases still load and answer as they did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

import collabfilter as cf
from collabfilter.persist import FORMAT_VERSION
from collabfilter.recommend import recommend, recommend_new_user

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
PAIRS = EXPECTED["_pairs"]


@pytest.mark.parametrize("name", [name for name in EXPECTED if not name.startswith("_")])
def test_format_1_files_load_and_answer_as_they_did(name):
    path = FIXTURES / name
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["collabfilter"])["format_version"] == 1
    model = cf.load_model(path)
    expected = EXPECTED[name]
    predicted = model.predict(PAIRS["users"], PAIRS["items"])
    # format 1 did not clip predictions to the rating scale; within it they are the same
    scale = model.scale
    assert np.allclose(predicted, np.clip(expected["predict"], scale.low, scale.high), atol=1e-5)
    # the expected lists were made by the rating model (the writer held no companion)
    lists = recommend(model, PAIRS["recommend_users"], k=5, by="rating")
    assert lists.item_idx.tolist() == expected["recommend_items"]
    if "new_user_items" in expected:
        picks = recommend_new_user(model, PAIRS["rated"], k=5, by="rating")
        assert picks["item"].tolist() == expected["new_user_items"]
    assert model.model_config is not None and model.config is not None
    if model.ranker is not None:
        assert not model.ranker.predicts_ratings
        assert len(recommend(model, PAIRS["recommend_users"], k=5).item_idx) == 15


def test_a_migrated_file_is_written_in_the_current_format(tmp_path):
    model = cf.load_model(FIXTURES / "bayes_with_topn.cf")
    path = cf.save_model(tmp_path / "again.cf", model, ranking=model.ranker)
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["collabfilter"])
    assert document["format_version"] == FORMAT_VERSION
    assert document["parts"]["rating"]["model_config"] == {
        "kind": "bayes", "fields": {"n_factors": 10, "implicit": True}
    }  # fmt: skip
    again = cf.load_model(path)
    users, items = PAIRS["users"], PAIRS["items"]
    assert np.array_equal(again.predict(users, items), model.predict(users, items))
