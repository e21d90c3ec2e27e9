"""Who may ask the service what: Host and Origin (DNS rebinding, other sites' pages),
tokens for writes and private reads, HEAD, and what /health lets out."""

from __future__ import annotations

import math
import string

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import synthetic_ratings, train_and_save

from collabfilter.errors import ConfigError
from collabfilter.serve import check_settings, create_app, read_stored_ratings
from collabfilter.serve.security import token_matches
from collabfilter.serve.server import MIN_RELOAD_POLL, check_reload_poll

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "http://127.0.0.1:8000"
RATED = {"ratings": [{"item": 5, "rating": 4}]}
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return train_and_save(synthetic_ratings(), tmp_path_factory.mktemp("doors") / "model.cf")


@pytest.fixture
def loopback(model_file, tmp_path):
    """A server listening on 127.0.0.1 without a token, user 5 having stored ratings."""
    app = create_app(model_file, tmp_path / "ratings.db", reload_poll=0, host="127.0.0.1")
    with TestClient(app, base_url=BASE) as client:
        assert client.post("/users/5/ratings", json=RATED).status_code == 200
        yield client


def state_of(client) -> tuple:
    """Everything a write could change: the stored ratings and the model served."""
    service = client.app.state.service
    stored = read_stored_ratings(service.store.path)
    return (
        stored[["user", "item", "rating"]].values.tolist(),
        service.store.model_generation(),
        service.holder.current,
    )


def writes(client, headers: dict[str, str]) -> list:
    """Every write endpoint, with these headers."""
    return [
        client.post(
            "/users/5/ratings", json={"ratings": [{"item": 9, "rating": 1}]}, headers=headers
        ),
        client.post("/users/4242/ratings", json=RATED, headers=headers),
        client.delete("/users/5/ratings", headers=headers),
        client.post("/admin/reload", headers=headers),
    ]


# Names an attacker's page may carry: its own domain, lookalikes of ours, foreign IPs,
# ports, and malformed values. None of them is this server's.
LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
DOMAIN = st.builds(
    lambda a, b, tld: f"{a}.{b}.{tld}" if b else f"{a}.{tld}",
    LABEL,
    st.one_of(st.just(""), LABEL),
    st.sampled_from(["example", "com", "test", "io", "nip.io", "local"]),
)
OURS = st.sampled_from(["localhost", "127.0.0.1", "[::1]"])
LOOKALIKE = st.one_of(
    st.builds(lambda ours, evil: f"{ours}.{evil}", OURS.filter(lambda o: o[0] != "["), DOMAIN),
    st.builds(lambda evil, ours: f"{evil}-{ours}", LABEL, st.just("localhost")),
    st.builds(lambda ours, evil: f"{evil}@{ours}", OURS, LABEL),
    st.builds(lambda ours, text: f"{ours}:{text}", OURS, LABEL.filter(lambda t: not t.isdigit())),
)
FOREIGN_IP = st.one_of(
    st.ip_addresses(v=4).filter(lambda ip: not ip.is_loopback).map(str),
    st.ip_addresses(v=6)
    .filter(lambda ip: not ip.is_loopback and not ip.ipv4_mapped)
    .map(lambda ip: f"[{ip}]"),
)
FORGED_NAME = st.one_of(DOMAIN, LOOKALIKE, FOREIGN_IP, st.sampled_from(["", " ", "[::1", "::1"]))
FORGED_HOST = st.one_of(
    FORGED_NAME,
    st.builds(
        lambda name, port: f"{name}:{port}", st.one_of(DOMAIN, FOREIGN_IP), st.integers(1, 65535)
    ),
    FORGED_NAME.map(str.upper),
)
FORGED_ORIGIN = st.one_of(
    st.builds(
        lambda scheme, host: f"{scheme}://{host}",
        st.sampled_from(["http", "https"]),
        FORGED_HOST.filter(bool),
    ),
    st.sampled_from(
        [
            "null",
            "file://",
            "chrome-extension://abcdef",
            "http://localhost/page",
            "ftp://127.0.0.1",
            "http://127.0.0.1:notaport",
        ]
    ),
)


@FUZZ
@given(host=FORGED_HOST)
def test_dns_rebinding_forged_hosts_change_nothing(loopback, host):
    before = state_of(loopback)
    for answer in [
        *writes(loopback, {"host": host}),
        loopback.get("/health", headers={"host": host}),
        loopback.get("/users/5/recommendations", headers={"host": host}),
    ]:
        assert answer.status_code == 421, (host, answer.text)
        assert "Host" in answer.json()["detail"]
    assert state_of(loopback) == before


@FUZZ
@given(origin=FORGED_ORIGIN)
def test_pages_of_other_sites_cannot_write(loopback, origin):
    before = state_of(loopback)
    for answer in writes(loopback, {"origin": origin}):
        assert answer.status_code == 403, (origin, answer.text)
        assert "page" in answer.json()["detail"]
    assert state_of(loopback) == before
    # reading from elsewhere is harmless: the browser keeps the answer from that page
    assert loopback.get("/health", headers={"origin": origin}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST:8000",
        "localhost.",
        "127.0.0.1",
        "127.0.0.1:8000",
        "[::1]",
        "[::1]:65535",
        "[0:0::1]:80",
    ],
)
def test_the_names_of_a_loopback_server_are_answered(loopback, host):
    assert loopback.get("/health", headers={"host": host}).status_code == 200
    origin = f"http://{host}"
    answer = loopback.post("/users/5/ratings", json=RATED, headers={"host": host, "origin": origin})
    assert answer.status_code == 200, answer.text


def test_allowed_hosts_wildcard_binds_and_unknown_addresses(model_file, tmp_path):
    db = tmp_path / "ratings.db"
    proxied = create_app(
        model_file, db, reload_poll=0, host="127.0.0.1", allow_hosts=["api.example.org"]
    )
    with TestClient(proxied, base_url="https://api.example.org") as client:
        assert client.get("/health").status_code == 200
        same = {"origin": "https://api.example.org"}
        assert client.post("/users/1/ratings", json=RATED, headers=same).status_code == 200
        assert client.get("/health", headers={"host": "evil.example.org"}).status_code == 421
    everywhere = create_app(model_file, db, TOKEN, reload_poll=0, host="0.0.0.0")
    with TestClient(everywhere, base_url="http://192.0.2.7:8000") as client:
        for host in ("192.0.2.7:8000", "[2001:db8::1]", "localhost", "10.1.2.3"):
            assert client.get("/health", headers={"host": host}).status_code == 200
        assert client.get("/health", headers={"host": "attacker.example"}).status_code == 421
    unplaced = create_app(model_file, db, reload_poll=0, host=None)  # same origin only
    with TestClient(unplaced) as client:
        assert (
            client.post(
                "/recommendations", json=RATED, headers={"origin": "http://testserver"}
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/recommendations", json=RATED, headers={"origin": "http://evil.example"}
            ).status_code
            == 403
        )
    for bad in ("http://api.example.org", "api.example.org:443", "*.example.org", "a b", ""):
        with pytest.raises(ConfigError, match="allow-host"):
            check_settings(model_file, allow_hosts=[bad])
        with pytest.raises(ConfigError):
            create_app(model_file, db, host="127.0.0.1", allow_hosts=[bad])


# ----------------------------------------------------------------------------- tokens
def get_endpoints(client) -> list[str]:
    """A request for every GET endpoint of the API, from its schema."""
    filled = {
        "/items": "/items?q=movie",
        "/items/{item_id}/similar": "/items/3/similar",
        "/users/{user_id}/recommendations": "/users/1/recommendations",
        "/items/map": "/items/map?among=20",
        "/items/biases": "/items/biases?among=20",
    }
    paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops]
    assert set(paths) - set(filled) == {"/health"}, paths  # a new endpoint must be listed
    return [filled.get(path, path) for path in paths]


PUBLIC = ["/", "/docs", "/static/app.js", "/static/style.css", "/openapi.json"]
"""Code and the schema, no data: public even on a private server."""


def test_a_private_server_needs_the_token_for_every_read(model_file, tmp_path):
    app = create_app(model_file, tmp_path / "ratings.db", TOKEN, reload_poll=0, private=True)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in get_endpoints(client):
            for method in (client.get, client.head):
                assert method(path).status_code == 401, path
                assert (
                    method(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 403
                ), path
                assert method(path, headers=AUTH).status_code == 200, path
            assert "Bearer" in client.get(path).json()["detail"]
        for path in PUBLIC:
            assert client.get(path).status_code == 200, path
        pairs = {"pairs": [{"user": 1, "item": 5}]}
        assert client.post("/predict", json=pairs).status_code == 401
        assert client.post("/predict", json=pairs, headers=AUTH).status_code == 200
        assert client.post("/recommendations", json=RATED).status_code == 401
        assert client.get("/health", headers=AUTH).json()["database"] == {
            "writes_need_token": True,
            "reads_need_token": True,
        }
    with pytest.raises(ConfigError, match="token"):
        create_app(model_file, tmp_path / "ratings.db", reload_poll=0, private=True)
    with pytest.raises(ConfigError, match="token"):
        check_settings(model_file, private=True, token=None)


def test_reads_are_open_without_private(model_file, tmp_path):
    app = create_app(model_file, tmp_path / "ratings.db", TOKEN, reload_poll=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in [*get_endpoints(client), *PUBLIC]:
            assert client.get(path).status_code == 200, path
            assert client.get(path, headers=AUTH).status_code == 200, path


@settings(max_examples=200, deadline=None)
@given(token=st.text(min_size=8, max_size=40).filter(lambda t: any(not "!" <= c <= "~" for c in t)))
def test_tokens_a_client_could_not_send_are_refused(model_file, token):
    with pytest.raises(ConfigError, match="visible ASCII"):
        check_settings(model_file, token=token)
    with pytest.raises(ConfigError, match="visible ASCII"):
        create_app(model_file, model_file.with_name("unused.db"), token)


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=40)
)
def test_every_visible_ascii_token_is_accepted_and_matches(model_file, token):
    assert check_settings(model_file, token=token)[1] == token
    assert token_matches(f"Bearer {token}", token)
    assert not token_matches(f"Bearer {token}x", token)


def test_a_token_of_every_visible_character_opens_writes(model_file, tmp_path):
    token = string.punctuation + string.ascii_letters + string.digits
    app = create_app(model_file, tmp_path / "ratings.db", token, reload_poll=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.delete("/users/1/ratings").status_code == 401
        ok = client.delete("/users/1/ratings", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_health_shows_no_server_paths(loopback, model_file, tmp_path):
    text = loopback.get("/health").text
    body = loopback.get("/health").json()
    assert body["model"]["file"] == model_file.name
    assert body["database"] == {"writes_need_token": False, "reads_need_token": False}
    for folder in (str(model_file.parent), str(tmp_path), "ratings.db"):
        assert folder not in text


# ----------------------------------------------------------------------------- HEAD
def test_head_answers_every_get_like_get_without_a_body(loopback):
    paths = [
        *get_endpoints(loopback),
        *PUBLIC,
        "/users/100000/recommendations",
        "/items/999/similar",
        "/static/missing.js",
        "/nowhere",
    ]
    for path in paths:
        got, head = loopback.get(path), loopback.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert loopback.head("/predict").status_code == 405


# ----------------------------------------------------------------------------- reload_poll
@settings(max_examples=200, deadline=None)
@given(
    seconds=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(
            lambda x: not (x == 0 or (math.isfinite(x) and x >= MIN_RELOAD_POLL))
        ),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e-300, 5e-324, 0.05, 0.0999, -1.0]),
    )
)
def test_reload_polls_that_never_or_always_check_are_refused(seconds):
    with pytest.raises(ConfigError, match="reload_poll"):
        check_reload_poll(seconds)


def test_reload_poll_zero_or_at_least_the_minimum(model_file, tmp_path):
    for seconds in (0, 0.0, MIN_RELOAD_POLL, 1, 3600.5):
        assert check_settings(model_file, reload_poll=seconds)[0].reload_poll == seconds
    for seconds in (math.nan, 1e-300):
        with pytest.raises(ConfigError, match=str(seconds)):
            check_settings(model_file, reload_poll=seconds)
        with pytest.raises(ConfigError):
            create_app(model_file, tmp_path / "ratings.db", reload_poll=seconds)
