"""Which host names the service answers to: its defence against DNS rebinding.

A page on ``attacker.example`` can re-point that name at 127.0.0.1 after it loaded; the
victim's browser then sends the page's requests to a server on the victim's loopback,
same-origin as far as the browser knows, with ``Host: attacker.example``. Without a
token such a server would let the page read and write ratings and reload the model.
The browser always names the host it resolved, so a server that answers only to the
names it listens as cannot be reached this way; an IP literal in ``Host`` cannot be
rebound, so a server listening on every address (``0.0.0.0``, ``::``) answers to any
IP literal. Names a proxy forwards (``--allow-host``) are added explicitly.

Writes also check ``Origin`` when a browser sends one: a form or script on another
site that posts to the service is refused even though its ``Host`` is right.

This module imports nothing beyond the standard library: settings are checked with it
before FastAPI is imported.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""What a client on this machine may call a loopback server."""
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
"""Bind addresses that mean every address of the machine."""
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_PORT = re.compile(r"^[0-9]{1,5}$")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def normal_name(name: str) -> str | None:
    """``name`` as compared: lower case, without brackets or a final dot, IP literals in
    their canonical form; None when it is neither a host name nor an IP literal."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    name = name.removesuffix(".")
    return name if _NAME.match(name) else None


def check_allowed_name(name: str) -> str:
    """A name given to ``--allow-host``, normalised.

    Raises:
        ValueError: for anything but a host name or an IP literal (no scheme, port,
            path or wildcard), naming the value.
    """
    normal = normal_name(name)
    if normal is None:
        raise ValueError(
            f"--allow-host takes a host name or an IP address such as api.example.org or "
            f"10.0.0.5 (no scheme, port or wildcard); got {name[:80]!r}"
        )
    return normal


@dataclass(frozen=True)
class HostRule:
    """The names a server answers to.

    Attributes:
        names: normalised host names and IP literals accepted.
        any_address: whether any IP literal is accepted too (a wildcard bind).
    """

    names: frozenset[str]
    any_address: bool = False

    @classmethod
    def listening_on(cls, host: str, allow: Iterable[str] = ()) -> HostRule:
        """The rule of a server listening on ``host`` that also answers to ``allow``.

        A loopback server answers to ``localhost``, ``127.0.0.1`` and ``[::1]``; a
        server on every address to those and to any IP literal; any other to the
        address or name it listens on.
        """
        names = {check_allowed_name(name) for name in allow}
        if host in WILDCARD_ADDRESSES:
            return cls(frozenset(names | set(LOOPBACK_NAMES)), any_address=True)
        own = normal_name(host)
        if own is not None:
            names.add(own)
        if is_loopback(host):
            names.update(LOOPBACK_NAMES)
        return cls(frozenset(names))

    @classmethod
    def of_names(cls, names: Iterable[str]) -> HostRule:
        """The rule answering to ``names`` only.

        Raises:
            ValueError: for a name that is not a host name or IP literal.
        """
        return cls(frozenset(check_allowed_name(name) for name in names))

    @classmethod
    def same_origin(cls, host_header: str | None) -> HostRule:
        """The rule of a server that does not know where it listens: only the name the
        request itself was sent to (used for ``Origin``; ``Host`` is not checked)."""
        name = _split_host(host_header) if host_header is not None else None
        return cls(frozenset() if name is None else frozenset({name}))

    def allows(self, name: str) -> bool:
        """Whether the host name or IP literal ``name`` is one of this server's."""
        normal = normal_name(name)
        if normal is None:
            return False
        if normal in self.names:
            return True
        if not self.any_address:
            return False
        try:
            ipaddress.ip_address(normal)
        except ValueError:
            return False
        return True

    def allows_host(self, header: str) -> bool:
        """Whether a ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names
        this server; the port is not compared (a proxy may forward its own)."""
        name = _split_host(header)
        return name is not None and self.allows(name)

    def allows_origin(self, header: str) -> bool:
        """Whether an ``Origin`` header (``http://name:port``) is a page of this
        server. ``null`` (sandboxed frames, files) never is."""
        try:
            parts = urlsplit(header.strip())
            name = parts.hostname
            parts.port  # noqa: B018 -- raises ValueError for a malformed port
        except ValueError:
            return False
        # a browser's Origin is scheme://host[:port], nothing more
        if (parts.scheme not in ("http", "https") or not name or parts.path
                or parts.query or parts.fragment or "@" in parts.netloc):  # fmt: skip
            return False
        return self.allows(name)

    def describe(self) -> str:
        """The names accepted, for error messages."""
        shown = ", ".join(sorted(f"[{n}]" if ":" in n else n for n in self.names))
        return f"{shown} or any IP address" if self.any_address else shown


def _split_host(header: str) -> str | None:
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[: end + 1], header[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            return None
    else:
        name, colon, port_text = header.partition(":")
        port = port_text if colon else None
    if port is not None and not _PORT.match(port):
        return None
    return normal_name(name)
