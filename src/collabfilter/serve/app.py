"""The FastAPI application: model holder, reload, error mapping, page and API.

One process (worker) holds one :class:`~collabfilter.serve.served.ServedModel` at a
time in a :class:`ModelHolder`. A background task checks the model file's signature
(inode, size, modification time: one ``stat``) every ``reload_poll`` seconds, and the
database's model generation every :data:`GENERATION_POLL` seconds whatever
``reload_poll`` is; when either changed it loads the file in a thread and swaps the
reference. A file that fails to load is logged and skipped until it changes again; the
previous model keeps serving. ``POST /admin/reload`` reloads at once and raises the
generation in the database, so the other workers follow, including those that never
look at the file (``reload_poll=0``).

Errors become JSON ``{"detail": ...}`` with a 4xx status naming the problem, a 503 when
the database cannot be used now (busy, full, read-only), and a 500 (its traceback in
the log, not in the answer) only for a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from collabfilter.errors import (
    AmbiguousTitleError,
    CollabFilterError,
    ConfigError,
    DataError,
    ModelFileError,
    UnknownIdError,
)
from collabfilter.serve.hosts import HostRule
from collabfilter.serve.routes import router
from collabfilter.serve.security import Guard, HostCheck, JSONBody
from collabfilter.serve.served import FileSignature, ServedModel
from collabfilter.serve.server import check_reload_poll, check_token
from collabfilter.serve.store import RatingStore, StoreUnavailable

STATIC = Path(__file__).parent / "static"
GENERATION_POLL = 1.0
"""Seconds between a worker's checks of the database's model generation: how soon a
reload through one worker reaches the others."""
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

    def check(self, *, file: bool = True) -> bool:
        """Reload when the database's model generation changed or (``file``) the file's
        signature did; returns whether a new model is served."""
        signature = FileSignature.of(self.path) if file else None
        generation = self.store.model_generation()
        moved = signature is not None and signature not in (self.current.signature, self._failed)
        if not moved and generation == self.generation:
            return False
        self.generation = generation
        try:
            self.reload()
        except (OSError, ModelFileError) as error:
            self._failed = signature or FileSignature.of(self.path)
            log.error("keeping the current model: %s", error)
            return False
        return True

    async def watch(self, period: float) -> None:
        """Check the generation every :data:`GENERATION_POLL` seconds and the file every
        ``period`` seconds (0: never), in a thread (loading is slow)."""
        loop = asyncio.get_running_loop()
        tick = min(period, GENERATION_POLL) if period else GENERATION_POLL
        next_file = loop.time() + period
        while True:
            await asyncio.sleep(tick)
            file = bool(period) and loop.time() >= next_file
            if file:
                next_file = loop.time() + period
            try:
                await asyncio.to_thread(self.check, file=file)
            except Exception:  # a watcher that dies silently would stop reloads for good
                log.exception("model check failed")


@dataclass
class Service:
    """What routes reach through ``request.app.state.service``."""

    holder: ModelHolder
    store: RatingStore
    token: str | None
    private: bool = False


def create_app(
    model_path: str | Path,
    db: str | Path | RatingStore,
    token: str | None = None,
    *,
    reload_poll: float = 1.0,
    min_ratings: int | None = None,
    torch_threads: int | None = None,
    host: str | None = "127.0.0.1",
    allow_hosts: Sequence[str] = (),
    private: bool = False,
) -> FastAPI:
    """The service for the model file at ``model_path``, storing ratings in ``db``.

    Args:
        model_path: a model file (``learner.save`` / ``collabfilter.save_model``).
        db: the SQLite ratings database (created when absent), or a
            :class:`~collabfilter.serve.store.RatingStore` opened with other options.
        token: bearer token that write requests must carry; None lets anyone who can
            reach the server write (loopback only: :func:`~collabfilter.serve.run`
            enforces that).
        reload_poll: seconds between checks of the model file; 0 checks never
            (``POST /admin/reload`` still works, and so does a reload through another
            worker).
        min_ratings: never recommend items with fewer training ratings.
        torch_threads: set torch's intra-op threads (a server scales by workers).
        host: the address the server listens on: requests whose ``Host`` names
            another are refused, and so are POST and DELETE from pages elsewhere
            (DNS rebinding, cross-site forms; see :mod:`collabfilter.serve.hosts`).
            Loopback by default; None (an application mounted behind a server that
            checks ``Host`` itself) leaves ``Host`` unchecked and still refuses other
            sites' pages.
        allow_hosts: more names to answer to (a proxy's public name); with ``host``
            None, the only ones.
        private: reads need the token too (then the token is required).

    Raises:
        ConfigError: for a bad ``reload_poll``, token or ``allow_hosts`` name, or a
            private service without a token.
        FileNotFoundError: if there is no model file.
        ModelFileError: if it is damaged.
        StoreError: if the database cannot be used, or is not a ratings database.
    """
    reload_poll = check_reload_poll(reload_poll)
    check_token(token)
    if private and token is None:
        raise ConfigError("a private service needs a token (reads then need it too)")
    try:
        rule = HostRule.listening_on(host, allow_hosts) if host is not None else None
        if host is None and allow_hosts:
            rule = HostRule.of_names(allow_hosts)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    store = db if isinstance(db, RatingStore) else RatingStore(db)
    holder = ModelHolder(Path(model_path), store, min_ratings=min_ratings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settle_heap()
        watcher = asyncio.create_task(holder.watch(reload_poll))
        try:
            yield
        finally:
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
    app.state.service = Service(holder, store, token, private)
    app.add_middleware(Guard)
    app.add_middleware(HostCheck, rule=rule)  # outermost: refuses before anything is read
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
        if any(problem.get("loc") == ("body",) and problem.get("type") != "value_error"
               for problem in problems):  # fmt: skip
            return error(422, "the body must be a JSON object (Content-Type: application/json)")
        parts = dict.fromkeys(_problem(problem) for problem in problems)
        return error(422, "; ".join(list(parts)[:5]))

    async def unknown(request: Request, exc: Exception) -> JSONBody:
        return error(404, str(exc))

    async def bad_data(request: Request, exc: Exception) -> JSONBody:
        return error(422, str(exc))

    async def cannot(request: Request, exc: Exception) -> JSONBody:
        return error(409, str(exc))

    async def unavailable(request: Request, exc: Exception) -> JSONBody:
        assert isinstance(exc, StoreUnavailable)
        response = error(503, str(exc))
        if exc.retry_after is not None:
            response.headers["retry-after"] = str(exc.retry_after)
        return response

    async def bug(request: Request, exc: Exception) -> JSONBody:
        # Starlette logs the traceback; the client learns only that it is not its fault.
        return error(500, "internal error: the server's log has the details")

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(AmbiguousTitleError, bad_data)
    app.add_exception_handler(UnknownIdError, unknown)
    app.add_exception_handler(DataError, bad_data)
    app.add_exception_handler(StoreUnavailable, unavailable)
    app.add_exception_handler(CollabFilterError, cannot)
    app.add_exception_handler(Exception, bug)


def _problem(problem: Any) -> str:
    """One validation problem as ``field: what is wrong`` (``pairs.0.user: ...``)."""
    location = [str(part) for part in problem.get("loc", ())]
    if location[:1] in (["body"], ["query"], ["path"]) and len(location) > 1:
        location = location[1:]
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    return f"{'.'.join(location)}: {message}"


def _version() -> str:
    from collabfilter import __version__

    return __version__
