"""Connections: idle and slow clients are dropped so that others keep being served.

uvicorn keeps a connection open as long as its client likes until the client sends a
request, and refuses every new request (503) once ``limit_concurrency`` connections are
open: a few thousand idle sockets from one machine would shut everyone else out. So
every connection here:

* must send complete request headers within :data:`HEADER_TIMEOUT` of opening, and
  again of each response (the keep-alive wait), however it trickles them in, and in
  at most :data:`MAX_HEADER_BYTES` (431 otherwise: the parser alone bounds nothing);
* counts against :data:`MAX_CONNECTIONS_PER_CLIENT` for its address and against
  :data:`MAX_CONNECTIONS` for the worker. A connection over a bound makes room by
  closing the connection of that address (or of anyone, for the worker's bound) that
  has been idle longest; when every one is busy with a request the newcomer gets a
  JSON 503 with ``Retry-After`` and is closed.

Request bodies have their own deadline (:data:`~collabfilter.serve.security.BODY_TIMEOUT`,
enforced where the application reads them). Behind a proxy every connection comes from
the proxy's address: its upstream connections then share the per-address bound.

The protocol is uvicorn's httptools one with these rules added; uvicorn runs one server
per process, so the table of connections is one per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

HEADER_TIMEOUT = 5.0
"""Seconds a connection has to send a request's complete headers, from opening or from
the previous response; then it is closed. Long enough for any client that means to ask
(headers are one packet), short enough that idle sockets cannot pile up."""
MAX_HEADER_BYTES = 64 << 10
"""Bytes a request line and headers may take (a request here needs well under 4 KiB;
browsers' cookies for other paths of a shared host may add some)."""
MAX_CONNECTIONS_PER_CLIENT = 256
"""Connections one address may hold open in one worker: room for a proxy or a load
generator on the same machine (a browser opens six), and a quarter of the worker's."""
MAX_CONNECTIONS = 1000
"""Connections one worker holds open (below the usual limit of 1024 open files)."""
RETRY_AFTER = 1
"""Seconds a client refused for want of a free connection is told to wait."""

log = logging.getLogger("collabfilter.serve")


class Connection(Protocol):
    """What the table needs of a connection."""

    @property
    def idle(self) -> bool:
        """Whether it waits for a request (rather than being in the middle of one)."""

    def close(self) -> None:
        """Close it now."""


class ConnectionTable:
    """Open connections by client address, least recently active first.

    Args:
        per_client: connections one address may hold.
        total: connections held in all.
    """

    def __init__(self, per_client: int = MAX_CONNECTIONS_PER_CLIENT,
                 total: int = MAX_CONNECTIONS) -> None:  # fmt: skip
        self.per_client = per_client
        self.total = total
        self._all: OrderedDict[Connection, Hashable] = OrderedDict()
        self._by_client: dict[Hashable, OrderedDict[Connection, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def of(self, client: Hashable) -> int:
        """How many connections ``client`` holds."""
        return len(self._by_client.get(client, ()))

    def admit(self, connection: Connection, client: Hashable) -> bool:
        """Add a new connection, closing idle ones over the bounds; returns False (and
        adds nothing) when a bound is reached and every connection under it is busy."""
        mine = self._by_client.get(client, OrderedDict())
        if len(mine) >= self.per_client and not self._close_oldest_idle(mine):
            return False
        if len(self._all) >= self.total and not self._close_oldest_idle(self._all):
            return False
        self._all[connection] = client
        self._by_client.setdefault(client, OrderedDict())[connection] = None
        return True

    def touch(self, connection: Connection) -> None:
        """Mark a connection as the most recently active."""
        if connection in self._all:
            self._all.move_to_end(connection)
            self._by_client[self._all[connection]].move_to_end(connection)

    def remove(self, connection: Connection) -> None:
        """Forget a connection (no-op for one not held: closed to make room, or refused)."""
        if connection not in self._all:
            return
        client = self._all.pop(connection)
        mine = self._by_client[client]
        mine.pop(connection, None)
        if not mine:
            del self._by_client[client]

    def _close_oldest_idle(self, connections: Mapping[Connection, object]) -> bool:
        # Forgotten at once, not when its transport reports it lost: until then another
        # newcomer would find it again and count it as room made.
        for connection in connections:
            if connection.idle:
                self.remove(connection)
                connection.close()
                return True
        return False


TABLE = ConnectionTable()
"""This process's connections (uvicorn runs one server per process)."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and bounded connections."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._requests = 0
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """Whether no request is under way (waiting for headers, or kept alive)."""
        return self._requests == 0

    def close(self) -> None:
        """Close the connection (closing an idle one to make room)."""
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        client = self.client[0] if self.client else None
        if not TABLE.admit(self, client):
            log.warning("refusing a connection from %s: %d connections busy", client,
                        TABLE.of(client))  # fmt: skip
            self.transport.write(_busy_response(client, TABLE.of(client) >= TABLE.per_client))
            self.transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        TABLE.remove(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.idle and not self.transport.is_closing():  # still reading headers
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                detail = f"request line and headers over {MAX_HEADER_BYTES} bytes"
                self.transport.write(_response(431, "Request Header Fields Too Large", detail))
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._requests += 1
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._requests = max(self._requests - 1, 0)
        TABLE.touch(self)
        super().on_response_complete()
        if self.idle and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self.close)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _busy_response(client: object, per_client: bool) -> bytes:
    if per_client:
        detail = (f"too many connections from {client} ({MAX_CONNECTIONS_PER_CLIENT} per "
                  f"address, all busy); reuse a connection or retry later")  # fmt: skip
    else:
        detail = f"the server holds {MAX_CONNECTIONS} connections, all busy; retry later"
    return _response(503, "Service Unavailable", detail, f"retry-after: {RETRY_AFTER}\r\n")


def _response(status: int, reason: str, detail: str, extra: str = "") -> bytes:
    """A JSON error response written straight to the socket, before any request was
    read whole; the connection is closed after it."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
    )
    return head.encode() + body
