"""The HTTP service through FastAPI's TestClient: every endpoint and every refusal."""

from __future__ import annotations

import gc
import json
import math
import re
import shutil
import threading
import time
import weakref

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from serve_helpers import synthetic_ratings, text_id_ratings, train_and_save

import collabfilter as cf
from collabfilter.config import RunOptions
from collabfilter.errors import ConfigError
from collabfilter.interpret import similar_items
from collabfilter.recommend import recommend, recommend_new_user
from collabfilter.serve import check_settings, create_app, read_stored_ratings, schemas
from collabfilter.serve.server import is_loopback
from collabfilter.serve.store import StoreError
from collabfilter.train import collab_learner

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return train_and_save(synthetic_ratings(), tmp_path_factory.mktemp("serve") / "model.cf")


@pytest.fixture(scope="module")
def other_model_file(tmp_path_factory):
    """Another model of the same catalogue (fewer ratings): what a reload brings."""
    path = tmp_path_factory.mktemp("serve") / "other.cf"
    return train_and_save(synthetic_ratings(3000, seed=2), path)


@pytest.fixture(scope="module")
def model(model_file):
    return cf.load_model(model_file)


@pytest.fixture
def client(model_file, tmp_path):
    with TestClient(
        create_app(model_file, tmp_path / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        yield client


def valid(response, schema: type[BaseModel], status: int = 200) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    schema.model_validate(body)
    return body


def refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, detail
    return detail


# ----------------------------------------------------------------------------- reading
def test_health_describes_model_and_database(client, model):
    body = valid(client.get("/health"), schemas.HealthResponse)
    assert body["model"]["users"] == len(model.users)
    assert body["model"]["scale"] == {"low": 1.0, "high": 5.0, "step": 1.0}
    assert body["database"]["writes_need_token"] is False


def test_search_is_forgiving_and_ids_keep_their_type(client):
    body = valid(client.get("/items", params={"q": "movie 17"}), schemas.SearchResponse)
    assert body["items"][0] == {"item": 17, "title": "Movie 17 (1917)", "ratings": pytest.approx(
        body["items"][0]["ratings"])}  # fmt: skip
    assert valid(client.get("/items?q=17"), schemas.SearchResponse)["items"][0]["item"] == 17
    assert client.get("/items?q=zzzz").json()["items"] == []
    refused(client.get("/items?q="), 422, "q")
    refused(client.get("/items", params={"q": "x" * 201}), 422, "q")


def test_similar_items_match_the_library(client, model):
    body = valid(client.get("/items/3/similar?n=5"), schemas.SimilarResponse)
    expected = similar_items(model, 3, k=5)
    assert [e["item"] for e in body["items"]] == expected["item"].tolist()
    assert [e["similarity"] for e in body["items"]] == pytest.approx(
        expected["similarity"].tolist(), abs=1e-4
    )
    assert body["item"]["item"] == 3 and 3 not in [e["item"] for e in body["items"]]
    refused(client.get("/items/999/similar"), 404, "999")
    refused(client.get("/items/003/similar"), 404, "003")  # "003" never finds 3
    refused(client.get("/items/3/similar?n=0"), 422, "n")
    refused(client.get("/items/3/similar?n=101"), 422, "n")
    refused(client.get("/items/3/similar?n=x"), 422, "n")


def test_known_user_list_is_the_librarys(client, model):
    for user in (1, 7, 60):
        body = valid(client.get(f"/users/{user}/recommendations?n=8"), schemas.ItemListResponse)
        expected = recommend(model, [user], k=8)
        items, scores = expected.of(0)
        assert [e["item"] for e in body["items"]] == model.items.id_of(items).tolist()
        assert [e["score"] for e in body["items"]] == pytest.approx(scores.tolist(), abs=1e-4)
        seen = set(model.items.id_of(model.interactions.items_of(model.users.index_of(user))[0]))
        assert not seen & {e["item"] for e in body["items"]}
        assert body["user"] == user and body["known"] and body["rated"] == len(seen)
        for entry in body["items"]:
            if entry["because"] is not None:
                assert entry["because"]["item"] in seen and entry["because"]["rating"] >= 3


def test_unknown_or_malformed_users_are_refused(client):
    refused(client.get("/users/100000/recommendations"), 404, "100000")
    refused(client.get("/users/007/recommendations"), 422, "integers", "007")
    refused(client.get("/users/abc/recommendations"), 422, "abc")
    refused(client.get("/users/1/recommendations?n=1000"), 422, "n")


def test_map_and_biases_for_the_page(client, model):
    body = valid(client.get("/items/map?among=50"), schemas.MapResponse)
    assert len(body["items"]) == 50 and len(body["explained"]) == 2
    assert all(math.isfinite(p["x"]) and math.isfinite(p["y"]) for p in body["items"])
    table = valid(client.get("/items/biases?among=40"), schemas.BiasesResponse)["items"]
    assert len(table) == 40 and [r["bias"] for r in table] == sorted(r["bias"] for r in table)
    refused(client.get("/items/map?among=1"), 422, "among")
    refused(client.get("/items/biases?among=5000"), 422, "among")


def test_page_docs_and_schema_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers[
        "content-security-policy"]  # fmt: skip
    for asset in ("/static/app.js", "/static/style.css", "/docs", "/static/docs.js"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", response.text) is None
    paths = client.get("/openapi.json").json()["paths"]
    expected = ["/health", "/items", "/items/{item_id}/similar", "/items/map", "/items/biases",
                "/users/{user_id}/recommendations", "/users/{user_id}/ratings", "/predict",
                "/recommendations", "/admin/reload"]  # fmt: skip
    assert sorted(paths) == sorted(expected)


# ----------------------------------------------------------------------------- predict
def test_predict_in_order_matches_the_model(client, model):
    pairs = [{"user": 1, "item": 5}, {"user": "2", "item": "9"}, {"user": 1, "item": 7}]
    body = valid(client.post("/predict", json={"pairs": pairs}), schemas.PredictResponse)
    expected = model.predict([1, 2, 1], [5, 9, 7])
    assert body["predictions"] == pytest.approx(expected.tolist(), abs=1e-4)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"pairs": [{"user": 1, "item": 999}]}, 422, ["999"]),
        ({"pairs": [{"user": 100000, "item": 5}]}, 422, ["100000"]),
        ({"pairs": []}, 422, ["pairs"]),
        ({"pairs": [{"user": True, "item": 5}]}, 422, ["user"]),
        ({"pairs": [{"user": 1.5, "item": 5}]}, 422, ["user"]),
        ({"pairs": [{"user": 1, "item": 5, "x": 1}]}, 422, ["x"]),
        ({"pair": []}, 422, ["pairs"]),
        ([1, 2], 422, []),
        ({"pairs": [{"user": 1, "item": 5}] * (schemas.MAX_PAIRS + 1)}, 422, ["pairs"]),
    ],
)
def test_predict_refusals(client, body, status, words):
    refused(client.post("/predict", json=body), status, *words)


def test_malformed_and_oversized_bodies(client):
    headers = {"content-type": "application/json"}
    refused(client.post("/predict", content=b'{"pairs": [', headers=headers), 400, "malformed")
    refused(client.post("/predict", content=b"not json", headers=headers), 400, "malformed")
    refused(client.post("/predict", content=b"{}"), 422)
    huge = b'{"pairs": [' + b" " * (2 << 20) + b"]}"
    refused(client.post("/predict", content=huge, headers=headers), 413, "body")

    def chunks():  # no Content-Length: the limit applies while the body streams in
        for _ in range(40):
            yield b" " * 65536

    refused(client.post("/predict", content=chunks(), headers=headers), 413)
    nan = b'{"ratings": [{"item": 5, "rating": NaN}]}'
    refused(client.post("/recommendations", content=nan, headers=headers), 422, "rating")
    infinite = b'{"ratings": [{"item": 5, "rating": Infinity}]}'
    refused(client.post("/recommendations", content=infinite, headers=headers), 422, "rating")


# ----------------------------------------------------------------------------- new users
def test_new_user_recommendations_fold_in(client, model):
    rated = {5: 5.0, 9: 1.0, 17: 4.0}
    ratings = [{"item": k, "rating": v} for k, v in rated.items()]
    body = valid(client.post("/recommendations?n=6", json={"ratings": ratings}),
                 schemas.ItemListResponse)  # fmt: skip
    expected = recommend_new_user(model, rated, k=6)
    assert [e["item"] for e in body["items"]] == expected["item"].tolist()
    assert body["user"] is None and not body["known"] and body["rated"] == 3
    assert not {e["item"] for e in body["items"]} & set(rated)
    reasons = {e["because"]["item"] for e in body["items"] if e["because"]}
    assert reasons and reasons <= {5, 17}  # only liked items explain


@pytest.mark.parametrize(
    ("ratings", "words"),
    [
        ([{"item": 5, "rating": 6}], ["scale", "1..5"]),
        ([{"item": 5, "rating": 0}], ["scale"]),
        ([{"item": 5, "rating": 3.5}], ["steps of 1"]),
        ([{"item": 5, "rating": 3}, {"item": "5", "rating": 4}], ["twice"]),
        ([{"item": 999, "rating": 3}], ["999"]),
        ([], ["ratings"]),
        ([{"item": 5}], ["rating"]),
        ([{"item": 5, "rating": "4"}], ["rating"]),
    ],
)
def test_new_user_refusals(client, ratings, words):
    refused(client.post("/recommendations", json={"ratings": ratings}), 422, *words)


# ----------------------------------------------------------------------------- writes
def test_stored_ratings_change_lists_at_once_and_can_be_forgotten(client, model, tmp_path):
    before = client.get("/users/1/recommendations?n=5").json()
    top = [e["item"] for e in before["items"]]
    stored = client.post("/users/1/ratings", json={"ratings": [
        {"item": top[0], "rating": 1}, {"item": top[1], "rating": 2}]})  # fmt: skip
    assert valid(stored, schemas.StoredResponse) == {"user": 1, "stored": 2, "total": 2}
    after = valid(client.get("/users/1/recommendations?n=5"), schemas.ItemListResponse)
    assert after["rated"] == before["rated"] + 2 and after["known"]
    assert not {top[0], top[1]} & {e["item"] for e in after["items"]}
    low = client.post("/predict", json={"pairs": [{"user": 1, "item": top[2]}]}).json()
    assert low["predictions"][0] < before["items"][2]["score"]  # disliking neighbours lowers it
    assert valid(client.delete("/users/1/ratings"), schemas.ForgetResponse)["deleted"] == 2
    assert client.get("/users/1/recommendations?n=5").json() == before


def test_new_user_by_stored_ratings(client, model, tmp_path):
    refused(client.get("/users/5000/recommendations"), 404)
    client.post("/users/5000/ratings", json={"ratings": [{"item": 5, "rating": 5}]})
    client.post("/users/5000/ratings", json={"ratings": [{"item": 9, "rating": 2},
                                                         {"item": 5, "rating": 4}]})  # fmt: skip
    body = valid(client.get("/users/5000/recommendations?n=4"), schemas.ItemListResponse)
    expected = recommend_new_user(model, {5: 4.0, 9: 2.0}, k=4)
    assert [e["item"] for e in body["items"]] == expected["item"].tolist()
    assert body == {**body, "user": 5000, "known": False, "rated": 2}
    folded = client.post("/predict", json={"pairs": [{"user": 5000, "item": 11}]})
    assert folded.status_code == 200
    frame = read_stored_ratings(client.app.state.service.store.path)
    assert frame[["user", "item", "rating"]].values.tolist() == [[5000, 5, 4.0], [5000, 9, 2.0]]
    assert frame["user"].dtype == np.int64 and frame["timestamp"].dtype == np.int64
    cf.Ratings.from_df(frame, timestamp="timestamp")  # the trainer reads it as it is
    client.delete("/users/5000/ratings")
    refused(client.get("/users/5000/recommendations"), 404)


def test_write_refusals(client):
    refused(client.post("/users/007/ratings", json={"ratings": [{"item": 5, "rating": 3}]}),
            422, "007")  # fmt: skip
    refused(client.post("/users/1/ratings", json={"ratings": [{"item": 5, "rating": 9}]}),
            422, "scale")  # fmt: skip
    refused(client.post("/users/1/ratings", json={"ratings": [{"item": 5, "rating": 3}] * 1001}),
            422, "ratings")  # fmt: skip


def test_token_guards_writes_only(model_file, tmp_path):
    app = create_app(model_file, tmp_path / "ratings.db", TOKEN, reload_poll=0)
    body = {"ratings": [{"item": 5, "rating": 3}]}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/health").json()["database"]["writes_need_token"] is True
        refused(client.post("/users/1/ratings", json=body), 401, "Bearer")
        wrong = {"Authorization": "Bearer nope"}
        refused(client.post("/users/1/ratings", json=body, headers=wrong), 403)
        refused(client.delete("/users/1/ratings", headers=wrong), 403)
        refused(client.post("/admin/reload"), 401)
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/users/1/ratings", json=body, headers=right).status_code == 200
        assert client.delete("/users/1/ratings", headers=right).json()["deleted"] == 1
        assert client.post("/admin/reload", headers=right).status_code == 200
        # reading and computing for a new user store nothing: no token needed
        assert client.get("/users/1/recommendations").status_code == 200
        assert client.post("/recommendations", json=body).status_code == 200
        assert client.post("/predict", json={"pairs": [{"user": 1, "item": 5}]}).is_success


def test_concurrent_writes_from_two_workers_all_land(model_file, tmp_path):
    """Two apps on one database stand for two worker processes."""
    db = tmp_path / "ratings.db"
    first, second = (create_app(model_file, db, reload_poll=0) for _ in range(2))
    errors: list[str] = []
    with (
        TestClient(first, base_url="http://127.0.0.1") as one,
        TestClient(second, base_url="http://127.0.0.1") as two,
    ):

        def write(client, user):
            for item in range(1, 26):
                rated = {"ratings": [{"item": item, "rating": 1 + item % 5}]}
                response = client.post(f"/users/{user}/ratings", json=rated)
                if response.status_code != 200:
                    errors.append(response.text)

        threads = [threading.Thread(target=write, args=((one, two)[u % 2], 9000 + u))
                   for u in range(8)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        frame = read_stored_ratings(db)
        assert len(frame) == 8 * 25
        # a write through one worker shows in the other's lists at once, even when the
        # other has just answered for that user
        assert two.get("/users/9000/recommendations?n=50").json()["rated"] == 25
        one.post("/users/9000/ratings", json={"ratings": [{"item": 100, "rating": 5}]})
        listed = two.get("/users/9000/recommendations?n=50").json()
        assert listed["rated"] == 26 and 100 not in {e["item"] for e in listed["items"]}


# ----------------------------------------------------------------------------- reload
def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_reload_on_file_change_and_damaged_files(model_file, other_model_file, tmp_path):
    served = tmp_path / "served.cf"
    shutil.copy(model_file, served)
    db = tmp_path / "ratings.db"
    first = create_app(served, db, TOKEN, reload_poll=0.1)
    second = create_app(served, db, TOKEN, reload_poll=0.1)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def ratings(client):
        return client.get("/health").json()["model"]["training_ratings"]

    with (
        TestClient(first, base_url="http://127.0.0.1") as one,
        TestClient(second, base_url="http://127.0.0.1") as two,
    ):
        original = ratings(one)
        temporary = tmp_path / "incoming.cf"
        shutil.copy(other_model_file, temporary)
        temporary.replace(served)  # how save_model replaces a file: atomically
        wait_for(lambda: ratings(one) != original and ratings(two) != original)
        changed = ratings(one)
        served.write_bytes(served.read_bytes()[:1000])  # damaged in place
        time.sleep(0.3)
        assert ratings(one) == changed and one.get("/users/1/recommendations").is_success
        refused(one.post("/admin/reload", headers=auth), 409, "still serving")
        shutil.copy(model_file, temporary)
        temporary.replace(served)
        assert valid(one.post("/admin/reload", headers=auth), schemas.ReloadResponse)["reloaded"]
        assert ratings(one) == original
        wait_for(lambda: ratings(two) == original)


def test_requests_during_reloads_see_one_model_or_the_other(model_file, other_model_file,
                                                            tmp_path):  # fmt: skip
    served = tmp_path / "served.cf"
    shutil.copy(model_file, served)
    expected = {
        json.dumps(TestClient(create_app(path, tmp_path / f"{i}.db", reload_poll=0), base_url="http://127.0.0.1").get(
            "/users/1/recommendations?n=5").json()["items"])
        for i, path in enumerate((model_file, other_model_file))
    }  # fmt: skip
    app = create_app(served, tmp_path / "ratings.db", reload_poll=0.1)
    stop = threading.Event()

    def swap():
        for i in range(10):
            source = (model_file, other_model_file)[i % 2]
            incoming = tmp_path / "incoming.cf"
            shutil.copy(source, incoming)
            incoming.replace(served)
            time.sleep(0.15)
        stop.set()

    with TestClient(app, base_url="http://127.0.0.1") as client:
        swapper = threading.Thread(target=swap)
        swapper.start()
        while not stop.is_set():
            body = client.get("/users/1/recommendations?n=5").json()
            assert json.dumps(body["items"]) in expected
        swapper.join()


# ----------------------------------------------------------------------------- text ids
def test_text_ids_stay_text(tmp_path):
    frame = text_id_ratings()
    learner = collab_learner(cf.Ratings.from_df(frame), options=RunOptions(progress=False))
    learner.fit_recipe()
    path = learner.save(tmp_path / "text.cf")
    with TestClient(
        create_app(path, tmp_path / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        one = client.get("/users/007/recommendations?n=3").json()
        other = client.get("/users/7/recommendations?n=3").json()
        assert one["user"] == "007" and other["user"] == "7" and one["rated"] != other["rated"]
        assert all(isinstance(e["item"], str) for e in one["items"])
        pairs = {"pairs": [{"user": "007", "item": "m01"}, {"user": 7, "item": "m01"}]}
        first, second = client.post("/predict", json=pairs).json()["predictions"]
        assert first != second
        client.post("/users/newbie/ratings", json={"ratings": [{"item": "m03", "rating": 4}]})
        stored = read_stored_ratings(tmp_path / "ratings.db")
        assert stored["user"].tolist() == ["newbie"] and stored["item"].tolist() == ["m03"]


# ----------------------------------------------------------------------------- settings
def test_settings_are_safe_by_default(model_file, tmp_path, monkeypatch):
    monkeypatch.delenv("COLLABFILTER_TOKEN", raising=False)
    settings, token = check_settings(model_file)
    assert settings.host == "127.0.0.1" and token is None
    assert settings.db.endswith("model.cf.ratings.sqlite")
    with pytest.raises(ConfigError, match="without a token"):
        check_settings(model_file, host="0.0.0.0")
    assert check_settings(model_file, host="0.0.0.0", token=TOKEN)[1] == TOKEN
    monkeypatch.setenv("COLLABFILTER_TOKEN", TOKEN)
    assert check_settings(model_file, host="::")[1] == TOKEN
    for bad in ({"port": 70000}, {"workers": 0}, {"reload_poll": -1}, {"token": "short"},
                {"min_ratings": 0}, {"db": tmp_path / "missing" / "x.db"}):  # fmt: skip
        with pytest.raises(ConfigError):
            check_settings(model_file, **bad)
    with pytest.raises(FileNotFoundError):
        check_settings(tmp_path / "nothing.cf")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_stored_ratings_reader_refuses_other_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_stored_ratings(tmp_path / "none.db")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        read_stored_ratings(tmp_path / "junk.db")
    with pytest.raises(StoreError):
        create_app(tmp_path / "x.cf", tmp_path / "junk.db")
    empty = tmp_path / "empty.db"
    from collabfilter.serve import RatingStore

    RatingStore(empty).close()
    frame = read_stored_ratings(empty)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"] and frame.empty
    assert isinstance(frame, pd.DataFrame)


def test_module_entry_point_reports_errors_in_one_line(model_file, tmp_path, capsys):
    from collabfilter.serve.__main__ import main

    assert main([str(model_file), "--host", "0.0.0.0"]) == 1
    assert "without a token" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.cf")]) == 1
    assert "not found" in capsys.readouterr().err
    damaged = tmp_path / "damaged.cf"
    damaged.write_bytes(model_file.read_bytes()[:5000])
    assert main([str(damaged), "--db", str(tmp_path / "ratings.db")]) == 1
    assert f"collabfilter serve: {damaged}: not a readable" in capsys.readouterr().err


def test_heap_is_settled_at_start_and_after_a_reload(model_file, tmp_path):
    """What lives as long as the server is kept out of the collector's full passes
    (which stall every request), and a reload frees the old model."""
    gc.unfreeze()
    with TestClient(
        create_app(model_file, tmp_path / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        assert gc.get_freeze_count() > 0
        old = weakref.ref(client.app.state.service.holder.current)
        assert client.post("/admin/reload").status_code == 200
        assert gc.get_freeze_count() > 0
        assert old() is None
    gc.unfreeze()
