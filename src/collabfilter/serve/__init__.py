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

from typing import TYPE_CHECKING, Any

from collabfilter.serve.server import ServeSettings, check_settings, default_db_path, run
from collabfilter.serve.store import RatingStore, StoreError, read_stored_ratings

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(model_path: Any, db_path: Any, token: str | None = None, **options: Any) -> FastAPI:
    """See :func:`collabfilter.serve.app.create_app` (imported here on first use)."""
    try:
        from collabfilter.serve.app import create_app as build
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"the service needs FastAPI and uvicorn: pip install 'collabfilter[serve]' ({error})"
        ) from error
    return build(model_path, db_path, token, **options)


__all__ = [
    "RatingStore",
    "ServeSettings",
    "StoreError",
    "check_settings",
    "create_app",
    "default_db_path",
    "read_stored_ratings",
    "run",
]
