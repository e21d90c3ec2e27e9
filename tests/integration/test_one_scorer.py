"""Every door gives one answer: the service's lists, scores, predictions and reasons
are the library's, for every model family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import QUIET, synthetic_ratings

import collabfilter as cf
from collabfilter.models import RECIPES, BayesConfig, TopNConfig
from collabfilter.recommend import explain, recommend, recommend_new_user
from collabfilter.serve import create_app
from collabfilter.train import collab_learner


def short(recipe: str):
    model_config, config = RECIPES[recipe]
    if isinstance(config, BayesConfig):
        return model_config, replace(config, sweeps=12, burn_in=2)
    if isinstance(config, TopNConfig):
        return model_config, replace(config, candidates=("ease", "ials"), ials_sweeps=2,
                                     ials_factors=(16,))  # fmt: skip
    return model_config, replace(config, epochs=3, tune_decay=False)


def trained(ratings, recipe):
    model_config, config = short(recipe)
    learner = collab_learner(ratings, model=model_config, config=config, options=QUIET)
    learner.fit_recipe()
    return learner


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings()


@pytest.fixture(scope="module", params=["dot_bias", "dot", "nn", "bayes", "topn", "bayes+topn"])
def served(request, ratings, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    if request.param == "bayes+topn":
        path = trained(ratings, "bayes").save(folder / "m.cf", ranking=trained(ratings, "topn"))
    else:
        path = trained(ratings, request.param).save(folder / "m.cf")
    model = cf.load_model(path)
    with TestClient(
        create_app(path, folder / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        yield model, client


def reason_of(model, user, item):
    why = explain(model, user, item).because
    return None if why is None else why.item


def test_lists_scores_and_reasons_of_known_users_are_the_librarys(served):
    model, client = served
    for user in model.users.ids[:12].tolist():
        body = client.get(f"/users/{user}/recommendations?n=6").json()
        library = recommend(model, [user], k=6, explain=True)
        items, scores = library.of(0)
        assert [entry["item"] for entry in body["items"]] == model.items.id_of(items).tolist()
        assert [entry["score"] for entry in body["items"]] == pytest.approx(
            scores.tolist(), abs=1e-4
        )
        reasons = [None if e["because"] is None else e["because"]["item"] for e in body["items"]]
        because = library.because
        assert reasons == [None if i < 0 else model.items.id_of([i])[0] for i in because]
        # explain names the very item the list shows, for every listed item
        assert reasons == [reason_of(model, user, entry["item"]) for entry in body["items"]]
        assert any(reason is not None for reason in reasons)


def test_new_users_and_predictions_are_the_librarys(served):
    model, client = served
    rated = {3: 5.0, 11: 4.0, 20: 1.0, 42: 4.0}
    body = client.post(
        "/recommendations?n=5",
        json={"ratings": [{"item": k, "rating": v} for k, v in rated.items()]},
    ).json()
    library = recommend_new_user(model, rated, k=5)
    assert [entry["item"] for entry in body["items"]] == library["item"].tolist()
    score_column = library.columns[3]
    assert [e["score"] for e in body["items"]] == pytest.approx(
        library[score_column].tolist(), abs=1e-4
    )
    titles = [None if e["because"] is None else e["because"]["title"] for e in body["items"]]
    assert titles == library["because you rated"].tolist()
    if model.predicts_ratings:
        users, items = model.users.ids[:20], model.items.ids[20:40]
        pairs = [{"user": int(u), "item": int(i)} for u, i in zip(users, items, strict=True)]
        served_predictions = client.post("/predict", json={"pairs": pairs}).json()["predictions"]
        assert served_predictions == pytest.approx(model.predict(users, items).tolist(), abs=1e-4)
        low, high = model.scale.low, model.scale.high
        assert all(low <= value <= high for value in served_predictions)


def test_stored_ratings_are_folded_in_as_the_library_folds_them(served):
    model, client = served
    user = int(model.users.ids[3])
    sent = {5: 5.0, 6: 1.0}
    answer = client.post(
        f"/users/{user}/ratings",
        json={"ratings": [{"item": k, "rating": v} for k, v in sent.items()]},
    )
    assert answer.status_code == 200, answer.text
    body = client.get(f"/users/{user}/recommendations?n=5").json()
    items, values = model.interactions.items_of(model.users.index_of(user))
    everything = dict(zip(model.items.id_of(items).tolist(), values.tolist(), strict=True))
    everything.update(sent)
    library = recommend_new_user(model, everything, k=5)
    assert [entry["item"] for entry in body["items"]] == library["item"].tolist()
    assert np.all(np.isfinite([entry["score"] for entry in body["items"]]))
    client.delete(f"/users/{user}/ratings")
