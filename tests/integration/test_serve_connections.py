"""Idle and slow clients are dropped while others are served: a real server on loopback
under thousands of idle sockets, slow bodies, trickled and endless headers, and the
connection table's rules on generated sequences of arrivals."""

from __future__ import annotations

import json
import random
import resource
import socket
import time

import httpx2 as httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serve_helpers import ServerProcess, synthetic_ratings, train_and_save

from collabfilter.serve.connections import (
    HEADER_TIMEOUT,
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_HEADER_BYTES,
    ConnectionTable,
)
from collabfilter.serve.security import BODY_TIMEOUT, MIN_BODY_RATE

IDLE_SOCKETS = 2100
"""More than uvicorn's limit_concurrency (2048), which used to shut everyone out."""


def open_sockets(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.setblocking(False)
        sockets.append(connection)
    return sockets


def closed_by_server(connection: socket.socket) -> bytes | None:
    """What the server sent before closing, or None while the connection is open."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except BlockingIOError:
        return None
    except ConnectionResetError:
        pass
    return received


@pytest.fixture
def server(tmp_path):
    model = train_and_save(synthetic_ratings(), tmp_path / "model.cf")
    with ServerProcess(model, tmp_path / "ratings.db", log=tmp_path / "log") as process:
        yield process


def test_idle_and_slow_clients_are_dropped_while_others_are_served(server):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    started = time.monotonic()
    idle = open_sockets(server.port, min(IDLE_SOCKETS, soft - 200))
    slow_bodies = open_sockets(server.port, 5)
    for connection in slow_bodies:  # 10 of 1,000 announced bytes, then nothing
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: "
            b'application/json\r\ncontent-length: 1000\r\n\r\n{"pairs": '
        )
    slow_headers = open_sockets(server.port, 5)
    for connection in slow_headers:  # a request line and half a header, then nothing
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: appl")

    # everyone else is served at once, on fresh connections and on a kept-alive one
    pairs = {"pairs": [{"user": 1, "item": 5}, {"user": 2, "item": 9}]}
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        for _ in range(20):
            begin = time.monotonic()
            assert httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200
            assert client.post("/predict", json=pairs).status_code == 200
            assert time.monotonic() - begin < 1.0
    # endless headers are cut off (one byte over: nothing is left unread to reset with)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as endless:
        start = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        endless.sendall(start + b"a" * (MAX_HEADER_BYTES + 1 - len(start)))
        assert endless.recv(4096).startswith(b"HTTP/1.1 431")
    # the oldest idle sockets made room for the rest (one address, bounded connections)
    still_open = sum(closed_by_server(connection) is None for connection in idle)
    assert still_open <= MAX_CONNECTIONS_PER_CLIENT

    body_deadline = BODY_TIMEOUT + 1000 / MIN_BODY_RATE
    time.sleep(max(HEADER_TIMEOUT, body_deadline) + 1.5 - (time.monotonic() - started))
    assert all(closed_by_server(connection) is not None for connection in idle + slow_headers)
    for connection in slow_bodies:
        answer = closed_by_server(connection)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
        detail = json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]
        assert "10 of 1000 bytes" in detail
    assert httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200
    for connection in idle + slow_bodies + slow_headers:
        connection.close()


# ----------------------------------------------------------------------------- the table
class FakeConnection:
    """A connection as the table sees it: idle or busy, and whether it was closed."""

    def __init__(self, idle: bool) -> None:
        self.idle = idle
        self.closed = False

    def close(self) -> None:
        self.closed = True


ARRIVALS = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 3)), max_size=200)
"""(client, whether it arrives idle, and what happens first: 0 a random open connection
leaves, 1 a random one finishes its request, 2 or 3 nothing)."""


@settings(max_examples=300, deadline=None)
@given(arrivals=ARRIVALS, seed=st.integers(0, 2**32 - 1))
def test_the_table_keeps_its_bounds_and_closes_only_idle_connections(arrivals, seed):
    table = ConnectionTable(per_client=4, total=10)
    chooser = random.Random(seed)
    held: dict[FakeConnection, int] = {}  # what the table should hold, by client
    for client, idle, event in arrivals:
        if event < 2 and held:
            chosen = chooser.choice(list(held))
            if event == 0:
                table.remove(chosen)
                del held[chosen]
            else:
                chosen.idle = True
                table.touch(chosen)
        busy = {c for c in held if not c.idle}
        mine = [c for c, owner in held.items() if owner == client]
        newcomer = FakeConnection(idle)
        admitted = table.admit(newcomer, client)
        closed = {c for c in held if c.closed}
        assert not closed & busy  # a busy connection is never closed
        assert len(closed) <= 2 and all(c.idle for c in closed)
        for connection in closed:
            del held[connection]
        if admitted:
            held[newcomer] = client
        else:  # refused only when a bound is reached and nothing under it is idle
            assert (len(mine) >= 4 and all(not c.idle for c in mine)) or (
                len(held) >= 10 and all(not c.idle for c in held)
            )
        assert len(table) == len(held) <= 10
        for owner in range(4):
            assert table.of(owner) == sum(o == owner for o in held.values()) <= 4


def test_the_longest_idle_connection_of_the_address_makes_room():
    table = ConnectionTable(per_client=2, total=100)
    first, second, third = FakeConnection(True), FakeConnection(True), FakeConnection(True)
    other = FakeConnection(True)
    assert table.admit(first, "a") and table.admit(second, "a") and table.admit(other, "b")
    table.touch(first)  # first was active more recently than second
    assert table.admit(third, "a")
    assert second.closed and not first.closed and not other.closed
    table.remove(second)
    busy = [FakeConnection(False), FakeConnection(False)]
    crowded = ConnectionTable(per_client=2, total=100)
    assert all(crowded.admit(connection, "c") for connection in busy)
    assert not crowded.admit(FakeConnection(True), "c")  # all busy: the newcomer is refused
    assert crowded.of("c") == 2 and len(crowded) == 2
