"""The FastAPI application: model holder, reload, error mapping, page and API.

One process (worker) holds one :class:`~collabfilter.serve.served.ServedModel` at a
time in a :class:`ModelHolder`. A background task checks the model file's signature
(inode, size, modification time: one ``stat``) and the database's model generation
every ``reload_poll`` seconds; when either changed it loads the new file in a thread
and swaps the reference. A file that fails to load is logged and skipped until it
changes again; the previous model keeps serving. ``POST /admin/reload`` reloads at
once and raises the generation in the database, so the other workers follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from collabfilter.errors import (
    AmbiguousTitleError,
    CollabFilterError,
    DataError,
    ModelFileError,
    UnknownIdError,
)
from collabfilter.serve.routes import router
from collabfilter.serve.security import BodyTooLarge, Guard, JSONBody
from collabfilter.serve.served import FileSignature, ServedModel
from collabfilter.serve.store import RatingStore

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("collabfilter.serve")


def settle_heap() -> None:
    """Collect what is garbage now, then exempt everything alive from later collections.

    A server's heap is mostly libraries and the model, alive until it exits; a full pass
    of the cyclic collector over them stalls every request in flight, at moments nobody
    chooses. So this runs once at start-up and once after each reload (where it also
    frees the old model's cycles), and the collector only ever walks requests' objects.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """The model a worker serves, replaced whole when its file changes.

    Args:
        path: the model file.
        store: the ratings database (holds the model generation shared by workers).
        min_ratings: items with fewer training ratings are never recommended.
    """

    def __init__(self, path: Path, store: RatingStore, *, min_ratings: int | None) -> None:
        self.path = path
        self.store = store
        self.min_ratings = min_ratings
        self.generation = store.model_generation()
        self.current = ServedModel.load(path, min_ratings=min_ratings)
        self._failed: FileSignature | None = None
        self._lock = threading.Lock()

    def reload(self) -> ServedModel:
        """Load the file now and serve it (the old model if loading fails).

        Raises:
            FileNotFoundError, ModelFileError: when the file is missing or damaged.
        """
        with self._lock:
            served = ServedModel.load(self.path, min_ratings=self.min_ratings)
            self.current = served  # one reference: requests see the old or the new
            self._failed = None
            settle_heap()
        log.info("serving %s (loaded %s)", self.path, served.loaded_at)
        return served

    def check(self) -> bool:
        """Reload when the file or the database's model generation changed; returns
        whether a new model is served."""
        signature = FileSignature.of(self.path)
        generation = self.store.model_generation()
        moved = signature is not None and signature not in (self.current.signature, self._failed)
        if not moved and generation == self.generation:
            return False
        self.generation = generation
        try:
            self.reload()
        except (OSError, ModelFileError) as error:
            self._failed = signature
            log.error("keeping the current model: %s", error)
            return False
        return True

    async def watch(self, period: float) -> None:
        """Call :meth:`check` every ``period`` seconds, in a thread (loading is slow)."""
        while True:
            await asyncio.sleep(period)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # a watcher that dies silently would stop reloads for good
                log.exception("model check failed")


@dataclass
class Service:
    """What routes reach through ``request.app.state.service``."""

    holder: ModelHolder
    store: RatingStore
    token: str | None


def create_app(
    model_path: str | Path,
    db_path: str | Path,
    token: str | None = None,
    *,
    reload_poll: float = 1.0,
    min_ratings: int | None = None,
    torch_threads: int | None = None,
) -> FastAPI:
    """The service for the model file at ``model_path``, storing ratings in ``db_path``.

    Args:
        model_path: a model file (``learner.save`` / ``collabfilter.save_model``).
        db_path: the SQLite ratings database (created when absent).
        token: bearer token that write requests must carry; None lets anyone who can
            reach the server write (loopback only: :func:`~collabfilter.serve.run`
            enforces that).
        reload_poll: seconds between checks of the model file; 0 checks never
            (``POST /admin/reload`` still works).
        min_ratings: never recommend items with fewer training ratings.
        torch_threads: set torch's intra-op threads (a server scales by workers).

    Raises:
        FileNotFoundError: if there is no model file.
        ModelFileError: if it is damaged.
        StoreError: if the database cannot be used.
    """
    if reload_poll < 0:
        raise ValueError(f"reload_poll must be >= 0 seconds, got {reload_poll}")
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    store = RatingStore(db_path)
    holder = ModelHolder(Path(model_path), store, min_ratings=min_ratings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settle_heap()
        watcher = asyncio.create_task(holder.watch(reload_poll)) if reload_poll else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            store.close()

    app = FastAPI(
        title="collabfilter",
        summary="Recommendations, rating predictions and a map of the catalogue.",
        version=_version(),
        docs_url=None,  # FastAPI's Swagger page loads scripts from a CDN
        redoc_url=None,
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    app.state.service = Service(holder, store, token)
    app.add_middleware(Guard)
    _add_error_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    return app


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str) -> JSONBody:
        return JSONBody({"detail": message}, status_code=status)

    async def invalid(request: Request, exc: Exception) -> JSONBody:
        assert isinstance(exc, RequestValidationError)
        problems = exc.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return error(400, f"malformed JSON: {problems[0].get('ctx', {}).get('error', '')}")
        if any(problem.get("loc") == ("body",) for problem in problems):
            return error(422, "the body must be a JSON object (Content-Type: application/json)")
        parts = [
            f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg')}"
            for problem in problems[:5]
        ]
        return error(422, "; ".join(parts))

    async def unknown(request: Request, exc: Exception) -> JSONBody:
        return error(404, str(exc))

    async def bad_data(request: Request, exc: Exception) -> JSONBody:
        return error(422, str(exc))

    async def cannot(request: Request, exc: Exception) -> JSONBody:
        return error(409, str(exc))

    async def too_large(request: Request, exc: Exception) -> JSONBody:
        return error(413, "request body too large")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(AmbiguousTitleError, bad_data)
    app.add_exception_handler(UnknownIdError, unknown)
    app.add_exception_handler(DataError, bad_data)
    app.add_exception_handler(CollabFilterError, cannot)
    app.add_exception_handler(BodyTooLarge, too_large)


def _version() -> str:
    from collabfilter import __version__

    return __version__
