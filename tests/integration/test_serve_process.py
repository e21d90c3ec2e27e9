"""The real server process: killed mid-write, and several workers sharing a database."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
import time

import httpx2 as httpx
import pytest
from serve_helpers import ServerProcess, synthetic_ratings, train_and_save

from collabfilter.serve import read_stored_ratings


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return train_and_save(synthetic_ratings(), tmp_path_factory.mktemp("process") / "model.cf")


@pytest.fixture
def server(request, model_file, tmp_path):
    servers: list[ServerProcess] = []

    def start(*args: str, model=model_file) -> ServerProcess:
        process = ServerProcess(model, tmp_path / "ratings.db", *args, log=tmp_path / "log")
        servers.append(process)
        process.wait_ready()
        return process

    yield start
    for process in servers:
        process.stop()


def test_sigkill_in_a_stream_of_writes_loses_no_acknowledged_write(server, tmp_path):
    process = server()
    acknowledged: list[tuple[int, int, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(writer: int) -> None:
        with httpx.Client(base_url=process.url, timeout=5.0) as client:
            for step in range(10_000):
                if stop.is_set():
                    return
                user, item = 10_000 + writer * 1000 + step // 50, 1 + step % 50
                rating = float(1 + (user + item) % 5)
                body = {"ratings": [{"item": item, "rating": rating}]}
                try:
                    response = client.post(f"/users/{user}/ratings", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: this write was never acknowledged
                assert response.status_code == 200, response.text
                with lock:
                    acknowledged.append((user, item, rating))

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.process.send_signal(signal.SIGKILL)  # mid-stream: writes are in flight
    process.process.wait(10)
    stop.set()
    for thread in writers:
        thread.join(10)
    assert len(acknowledged) >= 150

    db = tmp_path / "ratings.db"
    with sqlite3.connect(db) as connection:  # opening recovers from the WAL
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = read_stored_ratings(db)
    found = set(zip(stored["user"], stored["item"], stored["rating"], strict=True))
    assert set(acknowledged) <= found
    assert len(found) <= len(acknowledged) + 4  # at most one unacknowledged write per writer


def test_workers_share_writes_and_follow_a_new_model_file(server, model_file, tmp_path):
    served = tmp_path / "served.cf"
    shutil.copy(model_file, served)
    process = server("--workers", "2", "--reload-poll", "0.1", model=served)
    with httpx.Client(base_url=process.url, timeout=10.0) as client:
        body = {"ratings": [{"item": 5, "rating": 5}, {"item": 9, "rating": 1}]}
        assert client.post("/users/7777/ratings", json=body).status_code == 200
        # every answer, from whichever worker, reflects the write
        for _ in range(20):
            listed = client.get("/users/7777/recommendations?n=5").json()
            assert listed["rated"] == 2, listed
        original = client.get("/health").json()["model"]["training_ratings"]
        other = train_and_save(synthetic_ratings(3000, seed=2), tmp_path / "incoming.cf")
        other.replace(served)
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while time.monotonic() < deadline:
            # fresh connections spread over the workers
            seen = {httpx.get(f"{process.url}/health").json()["model"]["training_ratings"]
                    for _ in range(12)}  # fmt: skip
            if original not in seen:
                break
            time.sleep(0.2)
        assert original not in seen
