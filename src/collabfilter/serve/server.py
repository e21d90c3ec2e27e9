"""Starting the service: checked settings, a listening socket, then uvicorn with one or
several workers.

The socket is bound here, once, so that an address in use or not this machine's is a
:class:`~collabfilter.errors.ListenError` naming it (rather than uvicorn's exit). With
one worker the application is built in this process. With several, uvicorn spawns
worker processes that each build their own from the settings passed in the environment
(uvicorn needs an import string then); each loads the model once and all share the
ratings database, where everything a request changes lives. A worker whose master is
gone (killed without a chance to stop its workers) stops itself, freeing the port.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collabfilter.errors import ConfigError, ListenError
from collabfilter.serve.hosts import check_allowed_name, is_loopback

TOKEN_VARIABLE = "COLLABFILTER_TOKEN"
MIN_RELOAD_POLL = 0.1
"""The shortest ``reload_poll`` (seconds) other than 0: checking the model file more
often finds nothing sooner and only keeps a core busy."""
PARENT_POLL = 0.5
"""Seconds between a worker's checks that its master process is still there."""
BACKLOG = 2048
"""Connections the kernel queues before the server accepts them."""
_SETTINGS_VARIABLE = "COLLABFILTER_SERVE_SETTINGS"
_MAX_WORKERS = 64
log = logging.getLogger("collabfilter.serve")

__all__ = ["ServeSettings", "check_settings", "default_db_path", "is_loopback", "run"]


@dataclass(frozen=True)
class ServeSettings:
    """Checked settings of a server (see :func:`run`)."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    db: str = ""
    workers: int = 1
    reload_poll: float = 1.0
    min_ratings: int | None = None
    log_level: str = "info"
    access_log: bool = True
    allow_hosts: tuple[str, ...] = ()
    private: bool = False


def default_db_path(model: str | Path) -> Path:
    """Where ratings go when no database is named: beside the model file."""
    model = Path(model)
    return model.with_name(f"{model.name}.ratings.sqlite")


def check_token(token: str | None) -> str | None:
    """The bearer token if it is usable: 8 or more visible ASCII characters (what a
    client sends in a header byte for byte, whatever its encoding).

    Raises:
        ConfigError: for a shorter token or one with spaces or other characters.
    """
    if token is None:
        return None
    if len(token) < 8 or not all("!" <= character <= "~" for character in token):
        raise ConfigError(
            "the token must be at least 8 visible ASCII characters (letters, digits, "
            "punctuation; no spaces or accents)"
        )
    return token


def check_reload_poll(seconds: float) -> float:
    """``reload_poll`` if allowed: 0 (never check the model file) or a finite number of
    seconds of at least :data:`MIN_RELOAD_POLL`.

    Raises:
        ConfigError: naming the value otherwise (NaN would never check, a tiny value
            would check without pause).
    """
    if seconds == 0 or (math.isfinite(seconds) and seconds >= MIN_RELOAD_POLL):
        return float(seconds)
    raise ConfigError(
        f"reload_poll must be 0 (never check the model file) or a number of seconds "
        f">= {MIN_RELOAD_POLL}; got {seconds}"
    )


def check_settings(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | Path | None = None,
    token: str | None = None,
    workers: int = 1,
    reload_poll: float = 1.0,
    *,
    min_ratings: int | None = None,
    log_level: str = "info",
    access_log: bool = True,
    allow_hosts: Sequence[str] = (),
    private: bool = False,
) -> tuple[ServeSettings, str | None]:
    """Settings and token after checking them (the token from ``COLLABFILTER_TOKEN``
    when not given).

    Raises:
        ConfigError: for a value out of range, a non-loopback host or a private server
            without a token, or a malformed ``allow_hosts`` name.
        FileNotFoundError: if the model file does not exist.
    """
    if token is None:
        token = os.environ.get(TOKEN_VARIABLE) or None
    check_token(token)
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: writes would be open to the "
            f"network; pass --token or set {TOKEN_VARIABLE} (or listen on 127.0.0.1)"
        )
    if private and token is None:
        raise ConfigError(f"a private server needs a token: pass --token or set {TOKEN_VARIABLE}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535, got {port}")
    if not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"workers must be in 1..{_MAX_WORKERS}, got {workers}")
    reload_poll = check_reload_poll(reload_poll)
    if min_ratings is not None and min_ratings < 1:
        raise ConfigError(f"min_ratings must be >= 1, got {min_ratings}")
    try:
        names = tuple(check_allowed_name(name) for name in allow_hosts)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    model_path = Path(model)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    db_path = Path(db) if db is not None else default_db_path(model_path)
    if not db_path.parent.is_dir():
        raise ConfigError(f"the database's folder does not exist: {db_path.parent}")
    settings = ServeSettings(
        str(model_path.resolve()), host, port, str(db_path.resolve()), workers, reload_poll,
        min_ratings, log_level, access_log, names, private,
    )  # fmt: skip
    return settings, token


def run(
    model: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | Path | None = None,
    token: str | None = None,
    workers: int = 1,
    reload_poll: float = 1.0,
    *,
    min_ratings: int | None = None,
    log_level: str = "info",
    access_log: bool = True,
    allow_hosts: Sequence[str] = (),
    private: bool = False,
) -> None:
    """Serve the model file ``model`` over HTTP until interrupted.

    Args:
        model: a model file.
        host: the address to listen on; anything but loopback needs a token.
        port: the TCP port (0: any free one).
        db: the ratings database (default: ``<model>.ratings.sqlite`` beside it).
        token: the bearer token writes need (default: ``COLLABFILTER_TOKEN``).
        workers: worker processes, each with its own copy of the model.
        reload_poll: seconds between checks of the model file for a new version (0:
            never; ``POST /admin/reload`` reaches every worker either way).
        min_ratings: never recommend items with fewer training ratings.
        log_level: uvicorn's log level.
        access_log: log every request.
        allow_hosts: more names the server answers to in ``Host`` (behind a proxy);
            it always answers to the address it listens on.
        private: reads need the token too.

    Raises:
        ConfigError: for bad settings (the message says which and why).
        FileNotFoundError, ModelFileError: for a missing or damaged model file.
        StoreError: if the database cannot be used.
        ListenError: if the address is in use or not this machine's.
    """
    settings, token = check_settings(
        model, host, port, db, token, workers, reload_poll, min_ratings=min_ratings,
        log_level=log_level, access_log=access_log, allow_hosts=allow_hosts, private=private,
    )  # fmt: skip
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from collabfilter.serve.connections import HEADER_TIMEOUT, MAX_CONNECTIONS

    with listen(settings.host, settings.port) as listener:
        _log_to_stderr(log_level)
        _allow_open_files(MAX_CONNECTIONS)
        app: Any = _build(settings, token)  # fails here, once, for a damaged model or database
        if settings.workers > 1:
            os.environ[_SETTINGS_VARIABLE] = json.dumps(asdict(settings))
            if token is not None:
                os.environ[TOKEN_VARIABLE] = token
            app = "collabfilter.serve.server:app_from_environment"
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=log_level,
            access_log=access_log, timeout_graceful_shutdown=5, server_header=False,
            http="collabfilter.serve.connections:GuardedHttpProtocol", ws="none",
            timeout_keep_alive=math.ceil(HEADER_TIMEOUT), backlog=BACKLOG,
            factory=settings.workers > 1, workers=settings.workers,
        )  # fmt: skip
        name = listener.getsockname()
        log.info("listening on http://%s:%d", f"[{name[0]}]" if ":" in name[0] else name[0],
                 name[1])  # fmt: skip
        if settings.workers == 1:
            uvicorn.Server(config).run(sockets=[listener])
        else:
            Multiprocess(config, sockets=[listener]).run()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening (port 0: any free one).

    Raises:
        ListenError: naming the address and what to do when it cannot be had.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # a restarted server may bind again while the old connections linger
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host.strip("[]"), port))
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        hints = {
            errno.EADDRINUSE: "another program listens there: stop it or choose another --port",
            errno.EADDRNOTAVAIL: "the address is not one of this machine's: choose another --host",
            errno.EACCES: "ports below 1024 need privileges: choose a higher --port",
        }
        hint = hints.get(error.errno or 0, "check --host and --port")
        reason = error.strerror or str(error)
        raise ListenError(f"cannot listen on {address}: {reason}; {hint}") from error
    listener.set_inheritable(True)  # worker processes accept on it
    return listener


def app_from_environment() -> Any:
    """The application of a worker process, from the settings :func:`run` exported."""
    values = json.loads(os.environ[_SETTINGS_VARIABLE])
    values["allow_hosts"] = tuple(values["allow_hosts"])
    settings = ServeSettings(**values)
    _log_to_stderr(settings.log_level)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        threading.Thread(
            target=_end_with_parent, args=(parent.pid,), name="end-with-master", daemon=True
        ).start()
    return _build(settings, os.environ.get(TOKEN_VARIABLE) or None)


def _end_with_parent(parent: int) -> None:
    """Stop this worker as SIGTERM would (finishing the requests under way) once its
    master is gone: killed outright, it could not stop its workers, which would serve
    on as orphans holding the port."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    log.warning("the master process %d is gone: this worker stops", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def _build(settings: ServeSettings, token: str | None) -> Any:
    from collabfilter.serve.app import create_app

    app = create_app(
        settings.model, settings.db, token, reload_poll=settings.reload_poll,
        min_ratings=settings.min_ratings, torch_threads=1, host=settings.host,
        allow_hosts=settings.allow_hosts, private=settings.private,
    )  # fmt: skip
    return app


def _allow_open_files(connections: int) -> None:
    """Raise this process's limit of open files (inherited by its workers) to what
    ``connections`` need, when the system allows: each connection is one."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    needed = connections + 256  # the model, the database, logs, the listener
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        if wanted < needed:
            log.warning("open files are limited to %d: fewer than %d connections fit", wanted,
                        connections)  # fmt: skip


def _log_to_stderr(level: str) -> None:
    logger = logging.getLogger("collabfilter")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level.upper())
