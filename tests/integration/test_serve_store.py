"""The ratings database when it cannot be used: locked by another writer, full,
read-only, or another program's database."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import synthetic_ratings, train_and_save

from collabfilter.serve import RatingStore, StoreError, create_app, read_stored_ratings
from collabfilter.serve.store import StoreUnavailable, unavailable

RATED = {"ratings": [{"item": 5, "rating": 4}, {"item": 9, "rating": 2}]}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return train_and_save(synthetic_ratings(), tmp_path_factory.mktemp("store") / "model.cf")


def unavailable_answer(response, *words: str) -> dict:
    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail
    return dict(response.headers)


def test_a_database_locked_too_long_gets_503_busy_and_recovers(model_file, tmp_path):
    db = tmp_path / "ratings.db"
    app = create_app(model_file, RatingStore(db, busy_timeout_ms=200), reload_poll=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.post("/users/1/ratings", json=RATED).status_code == 200
        before = read_stored_ratings(db)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another program's long write
        try:
            for response in (
                client.post("/users/1/ratings", json={"ratings": [{"item": 7, "rating": 1}]}),
                client.post("/users/2/ratings", json=RATED),
                client.delete("/users/1/ratings"),
                client.post("/admin/reload"),
            ):
                headers = unavailable_answer(response, "busy", "0.2 s")
                assert headers["retry-after"] == "2"
            # readers still read the last committed state (WAL)
            assert client.get("/users/1/recommendations").json()["rated"] > 0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert read_stored_ratings(db).equals(before)
        assert client.post("/users/2/ratings", json=RATED).status_code == 200


def test_a_full_database_gets_503_full_and_keeps_what_it_had(model_file, tmp_path):
    db = tmp_path / "ratings.db"
    RatingStore(db).close()
    store = RatingStore(db, max_bytes=db.stat().st_size + 8 * 4096)
    with TestClient(
        create_app(model_file, store, reload_poll=0), base_url="http://127.0.0.1"
    ) as client:
        acknowledged = 0
        for user in range(1000, 1200):
            body = {"ratings": [{"item": item, "rating": 3} for item in range(1, 101)]}
            response = client.post(f"/users/{user}/ratings", json=body)
            if response.status_code != 200:
                break
            acknowledged += 1
        headers = unavailable_answer(response, "full", "nothing was stored")
        assert "retry-after" not in headers and 0 < acknowledged < 200
        stored = read_stored_ratings(db)
        assert len(stored) == acknowledged * 100  # every acknowledged write, nothing more
        assert client.delete("/users/1000/ratings").json()["deleted"] == 100
        assert client.get("/users/1/recommendations").status_code == 200


def sqlite_error(statement: str, setup: str = "") -> sqlite3.Error:
    """The error SQLite itself raises for ``statement``."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (x)")
    if setup:
        connection.execute(setup)
    try:
        connection.execute(statement)
    except sqlite3.Error as error:
        return error
    finally:
        connection.close()
    raise AssertionError(f"{statement} did not fail")


def test_each_kind_of_database_failure_is_named(tmp_path):
    read_only = sqlite_error("INSERT INTO t VALUES (1)", "PRAGMA query_only=ON")
    assert "read-only" in str(unavailable(tmp_path, read_only, 1000))
    assert unavailable(tmp_path, read_only, 1000).retry_after is None
    first = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN EXCLUSIVE")
    second = sqlite3.connect(tmp_path / "x.db", timeout=0, isolation_level=None)
    try:
        second.execute("BEGIN IMMEDIATE")
        raise AssertionError("the lock was not held")
    except sqlite3.OperationalError as busy:
        answer = unavailable(tmp_path, busy, 1500)
        assert "busy" in str(answer) and "1.5 s" in str(answer) and answer.retry_after == 2
    finally:
        first.close()
        second.close()
    full = sqlite_error("INSERT INTO t SELECT zeroblob(100000)", "PRAGMA max_page_count=2")
    assert "full" in str(unavailable(tmp_path, full, 1000))
    other = sqlite_error("SELECT * FROM missing")
    assert "failed" in str(unavailable(tmp_path, other, 1000))
    assert isinstance(unavailable(tmp_path, other, 1000), StoreError)


# ----------------------------------------------------------------------------- foreign files
OURS = {"ratings": ["user_id", "item_id", "rating", "timestamp"], "meta": ["key", "value"]}
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: not n.startswith("sqlite")
)
SCHEMA = st.dictionaries(
    NAME, st.lists(NAME, min_size=1, max_size=5, unique=True), min_size=1, max_size=4
).filter(lambda tables: tables != OURS)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused_untouched(path, *words: str) -> None:
    before = digest(path)
    with pytest.raises(StoreError) as raised:
        RatingStore(path)
    for word in (str(path), *words):
        assert word in str(raised.value)
    with pytest.raises(StoreError):
        read_stored_ratings(path)
    assert digest(path) == before  # never stamped with this schema


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tables=SCHEMA, variant=st.integers(0, 10**9))
def test_another_programs_database_is_refused_and_left_alone(tmp_path, tables, variant):
    path = tmp_path / f"foreign-{variant}.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as connection:
        for name, columns in tables.items():
            quoted = ", ".join(f'"{column}"' for column in columns)  # "on" is a keyword
            connection.execute(f'CREATE TABLE "{name}" ({quoted})')
    connection.close()
    refused_untouched(path, "not a collabfilter ratings database", next(iter(sorted(tables))))


@pytest.mark.parametrize(
    ("statements", "words"),
    [
        (["CREATE TABLE ratings (user, item, score)"], ["ratings(user, item, score)"]),
        ([*(f"CREATE TABLE {n} ({', '.join(c)})" for n, c in OURS.items())], ["schema None"]),
        (
            [
                *(f"CREATE TABLE {n} ({', '.join(c)})" for n, c in OURS.items()),
                "INSERT INTO meta VALUES ('schema_version', 2)",
            ],
            ["schema 2"],
        ),
        (
            [
                *(f"CREATE TABLE {n} ({', '.join(c)})" for n, c in OURS.items()),
                "INSERT INTO meta VALUES ('schema_version', 1)",
                "CREATE TABLE orders (id)",
            ],
            ["orders(id)"],
        ),
    ],
)
def test_near_misses_of_the_schema_are_refused(tmp_path, statements, words):
    path = tmp_path / "near.db"
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    refused_untouched(path, *words)


def test_a_real_ratings_database_is_still_accepted(model_file, tmp_path):
    path = tmp_path / "ratings.db"
    store = RatingStore(path)
    store.add(1, [(5, 4.0)])
    store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("ANALYZE")  # SQLite's own tables do not make it foreign
    connection.close()
    assert RatingStore(path).ratings_of(1) == ((5, 4.0),)
    with pytest.raises(StoreError, match="not a collabfilter ratings database"):
        foreign = tmp_path / "foreign.db"
        with sqlite3.connect(foreign) as connection:
            connection.execute("CREATE TABLE users (id, name)")
        connection.close()
        create_app(model_file, foreign)


def test_store_unavailable_is_a_store_error():
    assert issubclass(StoreUnavailable, StoreError)
