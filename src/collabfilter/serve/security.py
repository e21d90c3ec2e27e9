"""The service's guards: who may write, how large a request may be, safe responses.

* Writes (storing or forgetting ratings, reloading the model) need the bearer token
  when one is set; a server listening beyond loopback must have one
  (:func:`~collabfilter.serve.server.run` refuses to start otherwise).
* Bodies larger than the limit are refused with 413 before they are read whole, from
  their ``Content-Length`` or while they stream in.
* Responses are JSON without NaN or infinity (rendering one is a bug, not a number),
  and the page may load nothing from elsewhere (a ``Content-Security-Policy``).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1 << 20
"""Request bodies above this many bytes get 413 (10,000 pairs take ~400 KB)."""

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


class BodyTooLarge(Exception):
    """A request body exceeded :data:`MAX_BODY_BYTES` while streaming in."""


class Guard:
    """ASGI middleware: bounded bodies and security headers on every response."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(send)
            return
        received = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                exceeded = True
                raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn the error raised while reading into a response of
            # its own (FastAPI: 400); the client is told the real reason instead.
            if exceeded:
                if message["type"] == "http.response.start":
                    await self._too_large(send)
                return
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_body} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
