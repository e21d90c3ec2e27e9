"""Starting the service: checked settings, then uvicorn with one or several workers.

With one worker the application is built in this process. With several, uvicorn
spawns worker processes that each build their own from the settings passed in the
environment (uvicorn needs an import string then); each loads the model once and all
share the ratings database, where everything a request changes lives.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collabfilter.errors import ConfigError

TOKEN_VARIABLE = "COLLABFILTER_TOKEN"
_SETTINGS_VARIABLE = "COLLABFILTER_SERVE_SETTINGS"
_MAX_WORKERS = 64


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


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def default_db_path(model: str | Path) -> Path:
    """Where ratings go when no database is named: beside the model file."""
    model = Path(model)
    return model.with_name(f"{model.name}.ratings.sqlite")


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
) -> tuple[ServeSettings, str | None]:
    """Settings and token after checking them (the token from ``COLLABFILTER_TOKEN``
    when not given).

    Raises:
        ConfigError: for a value out of range, or a non-loopback host without a token.
        FileNotFoundError: if the model file does not exist.
    """
    if token is None:
        token = os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and (len(token) < 8 or token != token.strip()):
        raise ConfigError("the token must be at least 8 characters without surrounding spaces")
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"refusing to listen on {host!r} without a token: writes would be open to the "
            f"network; pass --token or set {TOKEN_VARIABLE} (or listen on 127.0.0.1)"
        )
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535, got {port}")
    if not 1 <= workers <= _MAX_WORKERS:
        raise ConfigError(f"workers must be in 1..{_MAX_WORKERS}, got {workers}")
    if reload_poll < 0:
        raise ConfigError(f"reload_poll must be >= 0 seconds (0: never), got {reload_poll}")
    if min_ratings is not None and min_ratings < 1:
        raise ConfigError(f"min_ratings must be >= 1, got {min_ratings}")
    model_path = Path(model)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    db_path = Path(db) if db is not None else default_db_path(model_path)
    if not db_path.parent.is_dir():
        raise ConfigError(f"the database's folder does not exist: {db_path.parent}")
    settings = ServeSettings(
        str(model_path.resolve()), host, port, str(db_path.resolve()), workers, reload_poll,
        min_ratings, log_level, access_log,
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
) -> None:
    """Serve the model file ``model`` over HTTP until interrupted.

    Args:
        model: a model file.
        host: the address to listen on; anything but loopback needs a token.
        port: the TCP port (0: any free one).
        db: the ratings database (default: ``<model>.ratings.sqlite`` beside it).
        token: the bearer token writes need (default: ``COLLABFILTER_TOKEN``).
        workers: worker processes, each with its own copy of the model.
        reload_poll: seconds between checks of the model file for a new version.
        min_ratings: never recommend items with fewer training ratings.
        log_level: uvicorn's log level.
        access_log: log every request.

    Raises:
        ConfigError: for bad settings (the message says which and why).
        FileNotFoundError, ModelFileError: for a missing or damaged model file.
        StoreError: if the database cannot be used.
    """
    settings, token = check_settings(
        model, host, port, db, token, workers, reload_poll,
        min_ratings=min_ratings, log_level=log_level, access_log=access_log,
    )  # fmt: skip
    import uvicorn

    _log_to_stderr(log_level)
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": log_level,
        "access_log": access_log, "timeout_graceful_shutdown": 5,
        "limit_concurrency": 2048, "server_header": False,
    }  # fmt: skip
    if settings.workers == 1:
        uvicorn.run(_build(settings, token), **options)
        return
    _build(settings, token)  # fail here, once, for a damaged model or database
    os.environ[_SETTINGS_VARIABLE] = json.dumps(asdict(settings))
    if token is not None:
        os.environ[TOKEN_VARIABLE] = token
    uvicorn.run(
        "collabfilter.serve.server:app_from_environment",
        factory=True, workers=settings.workers, **options,
    )  # fmt: skip


def app_from_environment() -> Any:
    """The application of a worker process, from the settings :func:`run` exported."""
    settings = ServeSettings(**json.loads(os.environ[_SETTINGS_VARIABLE]))
    _log_to_stderr(settings.log_level)
    return _build(settings, os.environ.get(TOKEN_VARIABLE) or None)


def _build(settings: ServeSettings, token: str | None) -> Any:
    from collabfilter.serve.app import create_app

    app = create_app(
        settings.model, settings.db, token, reload_poll=settings.reload_poll,
        min_ratings=settings.min_ratings, torch_threads=1,
    )  # fmt: skip
    # Everything imported and loaded so far lives as long as the process: moved out of
    # the collector's generations, full collections no longer walk it mid-request.
    gc.collect()
    gc.freeze()
    return app


def _log_to_stderr(level: str) -> None:
    logger = logging.getLogger("collabfilter")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(level.upper())
