"""``POST /recommendations`` for a new user described by side features: the library's
list, from the model that reads them, and every generated body answered, never a 500."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import QUIET, train_and_save

import collabfilter as cf
from collabfilter.models import RECIPES, TopNConfig
from collabfilter.recommend import recommend, recommend_new_user
from collabfilter.serve import create_app, schemas
from collabfilter.train import collab_learner

PLANTED = cf.generate_ratings(200, 150, 5000, n_user_groups=4, n_genres=5, seed=4).ratings


def bayes_learner():
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(PLANTED, model=model_config, config=config.with_length(8),
                             options=QUIET)  # fmt: skip
    learner.fit_recipe()
    return learner


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    bayes = bayes_learner()
    model_config, config = RECIPES["topn"]
    ranker = collab_learner(PLANTED, model=model_config, options=QUIET,
                            config=replace(config, candidates=("ease",)))  # fmt: skip
    assert isinstance(ranker.config, TopNConfig)
    ranker.fit_recipe()
    neural = collab_learner(PLANTED, model="nn", options=QUIET)
    neural.fit_one_cycle(3)
    return {
        "nn": neural.save(folder / "nn.cf"),
        "bayes": bayes.save(folder / "bayes.cf"),
        "both": bayes.save(folder / "both.cf", ranking=ranker),
        "dot": train_and_save(PLANTED, folder / "dot.cf"),
    }


def client_of(path, folder):
    app = create_app(path, folder / "ratings.db", reload_poll=0)
    return TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1")


@pytest.mark.parametrize("kind", ["bayes", "both", "nn"])
def test_features_alone_give_the_librarys_list(files, tmp_path, kind):
    model = cf.load_model(files[kind])
    with client_of(files[kind], tmp_path) as client:
        response = client.post("/recommendations?n=5", json={"features": {"group": "u2"}})
        assert response.status_code == 200, response.text
        body = schemas.ItemListResponse.model_validate(response.json()).model_dump()
        expected = recommend_new_user(model, {}, k=5, features={"group": "u2"}, by="rating")
        assert [e["item"] for e in body["items"]] == expected["item"].tolist()
        assert body["rated"] == 0 and body["unknown_feature_values"] == 0
        mixed = client.post("/recommendations?n=5", json={
            "ratings": [{"item": 3, "rating": 5.0}], "features": {"group": "u9"},
        })  # fmt: skip
        assert mixed.status_code == 200 and mixed.json()["unknown_feature_values"] == 1


@pytest.mark.parametrize(
    ("kind", "body", "status", "said"),
    [
        ("dot", {"features": {"group": "u1"}}, 409, "trained without user features"),
        ("bayes", {"features": {"colour": "red"}}, 422, "unknown: ['colour']"),
        ("bayes", {"features": {}}, 422, "ratings, or features"),
        ("bayes", {}, 422, "ratings, or features"),
        ("bayes", {"features": {"group": True}}, 422, "a number or a string"),
        ("bayes", {"features": {"group": 10**400}}, 422, "a finite number"),
        ("bayes", {"features": {"group": "x" * 201}}, 422, "at most 200"),
        ("bayes", {"features": {"": "u1"}}, 422, "features"),
        ("bayes", {"features": ["group"]}, 422, "features"),
    ],
)  # fmt: skip
def test_bad_feature_bodies_are_refused_saying_why(files, tmp_path, kind, body, status, said):
    with client_of(files[kind], tmp_path) as client:
        response = client.post("/recommendations", json=body)
    assert response.status_code == status and said in response.json()["detail"], response.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip


@pytest.fixture(scope="module")
def bayes_client(files, tmp_path_factory):
    with client_of(files["bayes"], tmp_path_factory.mktemp("fuzz")) as client:
        yield client


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(features=st.one_of(JSON, st.dictionaries(st.sampled_from(["group", "x", ""]), JSON)))
def test_generated_feature_bodies_are_answered_never_a_crash(bayes_client, features):
    body = json.dumps({"features": features})  # NaN and Infinity as Python writes them
    response = bayes_client.post("/recommendations", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["detail"]


def test_new_items_are_listed_and_marked_cold(tmp_path):
    """Films known from their features alone (no training rating) are in the lists, as
    the library ranks them, each marked."""
    train = cf.split_cold_items(PLANTED, 0.3, seed=1).train
    model_config, config = RECIPES["bayes"]
    learner = collab_learner(train, model=model_config, config=config.with_length(8),
                             options=QUIET)  # fmt: skip
    learner.fit_recipe()
    path = learner.save(tmp_path / "cold.cf")
    new = set(train.items.ids[train.item_counts() == 0].tolist())
    user = train.users.ids[0]
    expected = recommend(cf.load_model(path), [user], k=40).to_frame(learner)
    with client_of(path, tmp_path) as client:
        response = client.get(f"/users/{user}/recommendations?n=40")
    assert response.status_code == 200, response.text
    items = schemas.ItemListResponse.model_validate(response.json()).items
    assert [i.item for i in items] == expected["item"].tolist()
    marked = {i.item for i in items if i.cold}
    assert marked and marked == {i.item for i in items} & new
