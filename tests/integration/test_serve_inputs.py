"""What clients send: ids of every shape in paths and bodies, the work one request may
ask for, and writes for every model family. Never a 500, always a JSON ``detail``."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import synthetic_ratings, text_id_ratings, train_and_save, train_family

import collabfilter as cf
from collabfilter.serve import create_app, read_stored_ratings
from collabfilter.serve.lists import MAX_FOLDED_USERS
from collabfilter.serve.schemas import MAX_ID_LENGTH

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
INT64 = 1 << 63
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture(scope="module", params=["integer ids", "text ids"])
def client(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    if request.param == "integer ids":
        path = train_and_save(synthetic_ratings(), folder / "model.cf")
    else:
        ratings = cf.Ratings.from_df(text_id_ratings())
        path = train_and_save(ratings, folder / "model.cf", epochs=2, tune_decay=False)
    app = create_app(path, folder / "ratings.db", reload_poll=0)
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as test_client:
        yield test_client


def answered(response) -> None:
    """A 2xx with JSON, or a 4xx with a JSON ``detail`` string: never a 5xx."""
    assert response.status_code < 500, (response.request.url, response.text)
    if response.request.method == "HEAD":
        assert response.content == b""
        return
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body["detail"], str) and body["detail"], body


# Any JSON value in an id's place: integers around and beyond int64, fractions, NaN,
# booleans, null, text with lone surrogates or control characters, overlong text, and
# nested arrays and objects.
INTEGER = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, -1, 7, INT64 - 1, INT64, -INT64, -INT64 - 1, 1 << 64, 10**30]),
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "So"]), max_size=8),
    st.sampled_from(["", "007", "1", " 1", "1 ", "+1", "1e3", "0x10", "m01", "\ud800", "\udfff1"]),
    st.integers(MAX_ID_LENGTH - 1, MAX_ID_LENGTH + 300).map(lambda n: "7" * n),
)
SCALAR = st.one_of(INTEGER, TEXT, st.floats(), st.booleans(), st.none())
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
ID = st.one_of(INTEGER, TEXT, VALUE)
RATING = st.one_of(st.integers(-3, 8), st.floats(), st.booleans(), st.none(), TEXT)


def body_text(value: object) -> bytes:
    """JSON text as a client may send it: NaN and Infinity spelled out, lone surrogates
    escaped (``"\\ud800"``), integers of any size."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def path_id(value: object) -> str:
    """An id in a URL: its text, UTF-8 percent-encoded (lone surrogates too)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


@FUZZ
@given(user=ID, item=ID, rating=RATING, n=st.one_of(st.integers(-5, 200), TEXT))
def test_any_id_anywhere_gets_a_clear_answer(client, user, item, rating, n):
    pairs = {"pairs": [{"user": user, "item": item}, {"user": 1, "item": item}]}
    ratings = {"ratings": [{"item": item, "rating": rating}]}
    in_path = path_id(user)
    requests = [
        ("POST", "/predict", body_text(pairs)),
        ("POST", f"/recommendations?n={path_id(n)}", body_text(ratings)),
        ("POST", f"/users/{in_path}/ratings", body_text(ratings)),
        ("DELETE", f"/users/{in_path}/ratings", None),
        ("GET", f"/users/{in_path}/recommendations?n={path_id(n)}", None),
        ("HEAD", f"/users/{in_path}/recommendations", None),
        ("GET", f"/items/{path_id(item)}/similar?n={path_id(n)}", None),
        ("GET", f"/items?q={path_id(item)}", None),
    ]
    for method, url, content in requests:
        answered(client.request(method, url, content=content, headers=JSON_HEADERS))


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda v: b'{"pairs": [{"user": 1, "item": ' + v + b"}]}",
            st.sampled_from(
                [
                    b"9" * 5000,
                    b'"\xff\xfe"',
                    b'"\\ud800"',
                    b"1e999",
                    b"-0",
                    b"[",
                    b"01",
                    b'"\\u0000"',
                ]
            ),
        ),
        st.builds(lambda v: body_text(v)[: len(body_text(v)) // 2], VALUE),
    )
)
def test_malformed_bodies_get_a_clear_answer(client, content):
    for url in ("/predict", "/recommendations", "/users/1/ratings"):
        answered(client.post(url, content=content, headers=JSON_HEADERS))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (INT64, ["pairs.0.user", "int64"]),
        (-INT64 - 1, ["int64"]),
        (-INT64, ["int64"]),
        (10**40, ["int64"]),
        ("\ud800", ["pairs.0.user", "Unicode"]),
        ("x" * (MAX_ID_LENGTH + 1), ["pairs.0.user", f"1 to {MAX_ID_LENGTH}"]),
        ("", ["1 to"]),
        (1.5, ["fraction"]),
        (1.0, ["fraction"]),
        (True, ["boolean"]),
        (None, ["null"]),
        ({"id": 1}, ["object"]),
        ([1], ["array"]),
    ],
)
def test_each_kind_of_bad_id_is_named(client, value, words):
    body = body_text({"pairs": [{"user": value, "item": 5}]})
    response = client.post("/predict", content=body, headers=JSON_HEADERS)
    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]


def test_ids_at_the_edge_of_int64_are_unknown_not_errors(client):
    if not client.app.state.service.holder.current.users.integral:
        for value in (INT64 - 1, INT64, -INT64):  # text to a text-id model: just unknown
            assert client.get(f"/users/{value}/recommendations").status_code == 404
        return
    for value in (INT64 - 1, -INT64 + 1):
        assert client.get(f"/users/{value}/recommendations").status_code == 404
        assert client.get(f"/items/{value}/similar").status_code == 404
        pairs = {"pairs": [{"user": value, "item": 5}]}
        assert "unknown user" in client.post("/predict", json=pairs).json()["detail"]
    for value in (INT64, -INT64):  # the library refuses -2**63 as an id too
        beyond = client.get(f"/users/{value}/recommendations")
        assert beyond.status_code == 422 and "int64" in beyond.json()["detail"]


# ----------------------------------------------------------------------------- work bounds
def test_one_prediction_request_folds_in_a_bounded_number_of_users(tmp_path):
    path = train_and_save(synthetic_ratings(), tmp_path / "model.cf")
    with TestClient(
        create_app(path, tmp_path / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        store = client.app.state.service.store
        users = list(range(50_000, 50_000 + MAX_FOLDED_USERS + 20))
        for user in users:  # straight into the database: the writes are not under test
            store.add(user, [(5, 4.0), (1 + user % 100, 2.0)])
        pairs = [{"user": user, "item": 7} for user in users[:MAX_FOLDED_USERS]] * 3
        answer = client.post("/predict", json={"pairs": pairs})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == len(pairs)
        for extra in (1, 20):
            over = [{"user": user, "item": 7} for user in users[: MAX_FOLDED_USERS + extra]]
            answer = client.post("/predict", json={"pairs": over + [{"user": 1, "item": 3}]})
            assert answer.status_code == 422
            detail = answer.json()["detail"]
            assert (
                f"at most {MAX_FOLDED_USERS}" in detail and str(MAX_FOLDED_USERS + extra) in detail
            )
        # known users without stored ratings are not folded in: any number of them
        known = [{"user": user, "item": 7} for user in range(1, 121)] * 80
        assert client.post("/predict", json={"pairs": known}).status_code == 200


# ----------------------------------------------------------------------------- families
@pytest.fixture(scope="module", params=["dot", "dot_bias", "nn", "bayes", "topn"])
def family(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    path = train_family(synthetic_ratings(), request.param, folder / "model.cf")
    with TestClient(
        create_app(path, folder / "ratings.db", reload_poll=0), base_url="http://127.0.0.1"
    ) as test_client:
        yield cf.load_model(path), test_client


def test_writes_for_every_family_are_accepted_and_read_back(family):
    model, client = family
    known = int(model.users.ids[2])
    sent = [{"item": int(item), "rating": float(model.scale.high)} for item in model.items.ids[:3]]
    for user in (known, 770_001):
        stored = client.post(f"/users/{user}/ratings", json={"ratings": sent})
        assert stored.status_code == 200, stored.text
        listed = client.get(f"/users/{user}/recommendations?n=5")
        assert listed.status_code == 200, listed.text
        items = [entry["item"] for entry in listed.json()["items"]]
        assert len(items) == 5 and not {entry["item"] for entry in sent} & set(items)
        pair = {"pairs": [{"user": user, "item": items[0]}]}
        predicted = client.post("/predict", json=pair)
        assert predicted.status_code == (200 if model.predicts_ratings else 409), predicted.text
        assert client.delete(f"/users/{user}/ratings").json()["deleted"] == 3
    assert read_stored_ratings(client.app.state.service.store.path).empty
