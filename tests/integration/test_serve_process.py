"""The real server process: killed mid-write, several workers sharing a database and
following one reload, workers ending with their master, and a port already taken."""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from serve_helpers import ServerProcess, synthetic_ratings, train_and_save

from collabfilter.errors import ListenError
from collabfilter.serve import read_stored_ratings, run
from collabfilter.serve.app import GENERATION_POLL
from collabfilter.serve.server import PARENT_POLL


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


# ----------------------------------------------------------------------------- workers
def worker_pids(master: int) -> list[int]:
    """The worker processes uvicorn spawned from ``master`` (Linux /proc)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]  # fmt: skip


def running(pid: int) -> bool:
    """Whether ``pid`` is alive and not a zombie nobody reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not use
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers_of_every_worker(url: str, timeout: float = 20.0) -> set[tuple[int, str]]:
    """(training ratings, loaded at) of each worker: concurrent fresh connections until
    two distinct loads answered (each worker loads at its own microsecond)."""
    seen: set[tuple[int, str]] = set()
    deadline = time.monotonic() + timeout

    def ask() -> tuple[int, str]:
        model = httpx.get(f"{url}/health", timeout=5.0).json()["model"]
        return model["training_ratings"], model["loaded_at"]

    with ThreadPoolExecutor(8) as pool:
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= set(pool.map(lambda _: ask(), range(16)))
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_reload_reaches_every_worker_and_workers_end_with_their_master(
    server, model_file, tmp_path
):
    served = tmp_path / "served.cf"
    shutil.copy(model_file, served)
    process = server("--workers", "2", "--reload-poll", "0", model=served)  # never looks
    before = answers_of_every_worker(process.url)
    assert len(before) == 2, before  # both workers answered
    original = {ratings for ratings, _ in before}
    other = train_and_save(synthetic_ratings(3000, seed=2), tmp_path / "incoming.cf")
    other.replace(served)
    reloaded = httpx.post(f"{process.url}/admin/reload", timeout=30.0)
    assert reloaded.status_code == 200, reloaded.text
    new = reloaded.json()["model"]["training_ratings"]
    assert {new} != original
    time.sleep(GENERATION_POLL + 1.0)  # the other worker's next look at the generation
    after = answers_of_every_worker(process.url)
    assert len(after) == 2 and {ratings for ratings, _ in after} == {new}, after
    for _ in range(30):  # and it stays so, whichever worker answers
        assert httpx.get(f"{process.url}/health").json()["model"]["training_ratings"] == new

    workers = worker_pids(process.process.pid)
    assert len(workers) == 2
    process.process.send_signal(signal.SIGKILL)
    process.process.wait(10)
    deadline = time.monotonic() + PARENT_POLL + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in workers), process.log.read_text()[-2000:]
    assert port_is_free(process.port)
    assert "master process" in process.log.read_text()


def test_a_port_in_use_is_a_listen_error_with_exit_code_9(model_file, tmp_path, capsys):
    from collabfilter.cli import main as cli_main
    from collabfilter.serve.__main__ import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        arguments = [str(model_file), "--port", str(port), "--db", str(tmp_path / "r.db")]
        assert main(arguments) == 9
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
        assert cli_main(["serve", *arguments]) == 9
        assert f"127.0.0.1:{port}" in capsys.readouterr().err
        with pytest.raises(ListenError, match="another --port"):
            run(model_file, port=port, db=tmp_path / "r.db")
    # an address that is not this machine's (TEST-NET-1, reserved for documentation)
    elsewhere = [str(model_file), "--host", "192.0.2.1", "--token", "s3cret-token",
                 "--db", str(tmp_path / "r.db")]  # fmt: skip
    assert main(elsewhere) == 9
    assert "not one of this machine's" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened
