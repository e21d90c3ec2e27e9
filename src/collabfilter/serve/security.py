"""The service's guards: who may ask, how large and how slow a request may be, safe
responses.

* Requests must name this server in ``Host``, and writes sent by a browser must come
  from one of its pages (``Origin``): see :mod:`collabfilter.serve.hosts`
  (:class:`HostCheck`).
* Writes (storing or forgetting ratings, reloading the model) need the bearer token
  when one is set, and so do reads when the server is private; a server listening
  beyond loopback must have one (:func:`~collabfilter.serve.server.run` refuses to
  start otherwise).
* Bodies larger than the limit are refused with 413 before they are read whole, from
  their ``Content-Length`` or while they stream in; bodies that do not arrive in time
  get 408 (:class:`Guard`).
* ``HEAD`` is answered for every ``GET``, with the headers ``GET`` would give.
* Responses are JSON without NaN or infinity (rendering one is a bug, not a number),
  and the page may load nothing from elsewhere (a ``Content-Security-Policy``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collabfilter.serve.hosts import HostRule

MAX_BODY_BYTES = 1 << 20
"""Request bodies above this many bytes get 413 (the largest batch the API takes,
10,000 pairs, fits well within it)."""
BODY_TIMEOUT = 5.0
"""Seconds a request body may take beyond what :data:`MIN_BODY_RATE` allows its size:
a client that announces a body and stops sending gets 408 instead of holding a task."""
MIN_BODY_RATE = 64 << 10
"""Bytes per second a body is allowed to arrive at, at the slowest (the largest body
allowed then has about 16 s more)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing, so that ``Origin`` is not checked for them."""

_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant time)."""
    if header is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class JSONBody(Response):
    """Compact JSON; NaN or infinity raise instead of producing invalid JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        ).encode()


class Refusal(Exception):
    """A request refused while its body streamed in: the status and the reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def refuse(send: Send, status: int, detail: str, *, close: bool = False,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    """Send a JSON ``{"detail": ...}`` response straight from a middleware."""
    body = json.dumps({"detail": detail}).encode()
    extra = [(b"connection", b"close")] if close else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
                *(headers or []),
                *_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    """ASGI middleware: ``Host`` must name this server (421 otherwise) and a browser's
    ``Origin`` on anything but GET/HEAD/OPTIONS must be one of its pages (403).

    Args:
        app: the application.
        rule: the names this server answers to; None when the server does not know
            where it listens: ``Host`` is then not checked, and ``Origin`` must name
            the host the request was sent to.
    """

    def __init__(self, app: ASGIApp, *, rule: HostRule | None) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = _values(scope, b"host")
        wrong = [h for h in hosts if self.rule is not None and not self.rule.allows_host(h)]
        if self.rule is not None and (wrong or len(hosts) > 1):
            shown = wrong[0] if wrong else ", ".join(hosts)
            await refuse(send, 421, f"this server does not answer to Host {shown[:100]!r}; it "
                         f"answers to one Host among {self.rule.describe()} (a server behind "
                         f"a proxy names more with --allow-host)", close=True)  # fmt: skip
            return
        host = hosts[0] if len(hosts) == 1 else None
        origins = _values(scope, b"origin")
        origin = origins[0] if len(origins) == 1 else "null" if origins else None
        if origin is not None and scope["method"] not in SAFE_METHODS:
            rule = self.rule or HostRule.same_origin(host)
            if not rule.allows_origin(origin):
                await refuse(send, 403, f"refusing a {scope['method']} from a page of "
                             f"{origin[:100]!r}: only this server's own pages may send "
                             f"one (Origin {rule.describe() or 'of the Host'})")  # fmt: skip
                return
        await self.app(scope, receive, send)


class Guard:
    """ASGI middleware: HEAD as GET without the body, bounded bodies that must arrive
    in time, and security headers on every response."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:  # the route of GET answers; the body is dropped below
            scope = {**scope, "method": "GET"}
        lengths = set(_values(scope, b"content-length"))
        length = next(iter(lengths)) if lengths else None
        if length is not None and (len(lengths) > 1 or not _is_count(length)):
            await refuse(send, 400, "Content-Length must be one number of bytes", close=True)
            return
        if length is not None and int(length) > self.max_body:
            await refuse(send, 413, f"request body over {self.max_body} bytes", close=True)
            return
        announced = int(length) if length is not None else self.max_body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_TIMEOUT + announced / MIN_BODY_RATE
        received = 0
        complete = False
        refusal: Refusal | None = None

        async def limited_receive() -> Message:
            nonlocal received, complete, refusal
            if complete:  # waiting for a disconnect is not reading the body
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                refusal = Refusal(408, _late_body(length, received))
                raise refusal from None
            received += len(message.get("body", b""))
            if received > self.max_body:
                refusal = Refusal(413, f"request body over {self.max_body} bytes")
                raise refusal
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # The framework may turn the error raised while reading into a response of
            # its own (FastAPI: 400); the client is told the real reason instead.
            if refusal is not None:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await refuse(send, refusal.status, refusal.detail, close=True)
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Refusal as error:  # raised outside a handler that would answer for it
            if not started:
                await refuse(send, error.status, error.detail, close=True)


def _late_body(length: str | None, received: int) -> str:
    announced = f"{received} of {length} bytes" if length else f"{received} bytes"
    return (f"the request body did not arrive in time ({announced} received; a body may "
            f"take {BODY_TIMEOUT:.0f} s plus one per {MIN_BODY_RATE >> 10} KiB)")  # fmt: skip


def _is_count(text: str) -> bool:
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


def _values(scope: Scope, name: bytes) -> list[str]:
    """Every value of the request header ``name`` (lower case), in order."""
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]
