"""The HTTP service: recommendations, predictions, new ratings and a page, over FastAPI.

``collabfilter serve MODEL`` (or ``python -m collabfilter.serve MODEL``) starts it with
:func:`run`; :func:`create_app` builds the ASGI application for tests or another
server. Ratings the service receives are kept in SQLite;
:func:`read_stored_ratings` returns them as a DataFrame to train the next model on.

FastAPI and uvicorn come with the ``serve`` extra (``pip install collabfilter[serve]``);
they are imported only when an application is built, so reading the stored ratings
needs neither.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from collabfilter.serve.server import ServeSettings, check_settings, default_db_path, run
from collabfilter.serve.store import (
    RatingStore,
    StoreError,
    StoreUnavailable,
    read_stored_ratings,
)

if TYPE_CHECKING:
    from collabfilter.serve.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        try:
            return import_module("collabfilter.serve.app").create_app
        except ImportError as error:  # depends on the installed extras
            raise ImportError(
                f"the service needs FastAPI and uvicorn: pip install 'collabfilter[serve]' "
                f"({error})"
            ) from error
    raise AttributeError(f"module 'collabfilter.serve' has no attribute {name!r}")


__all__ = [
    "RatingStore",
    "ServeSettings",
    "StoreError",
    "StoreUnavailable",
    "check_settings",
    "create_app",
    "default_db_path",
    "read_stored_ratings",
    "run",
]
