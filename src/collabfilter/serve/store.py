"""Ratings sent to the service, kept in an embedded SQLite database.

Every write request is one ``BEGIN IMMEDIATE ... COMMIT`` transaction in WAL mode with
``synchronous=FULL``: a response is sent only after its ratings are on disk, so a
server killed mid-write loses nothing it acknowledged, and a half-done transaction is
rolled back when the database is next opened. Several threads and worker processes
share the file: SQLite serialises writers (waiting up to ``busy_timeout``) while
readers keep reading the last committed state. What a request changes lives here, not
in one worker's memory, so every worker sees it.

Schema (version 1)::

    ratings(user_id, item_id, rating REAL, timestamp INTEGER,
            PRIMARY KEY (user_id, item_id)) WITHOUT ROWID
    meta(key TEXT PRIMARY KEY, value)   -- schema_version, model_generation

The id columns are declared without a type, so SQLite keeps each value's own type: the
integer 1 and the text "1" are different users, exactly as in the model's vocabulary
(the service stores ids in the vocabulary's type). A user rating an item again replaces
the earlier rating; ``timestamp`` is in Unix seconds, as in MovieLens.

A file that holds other tables (another program's database) is refused when opened,
never stamped with this schema. When the database cannot be used at the moment (another
writer holds its lock beyond the busy timeout, the disk is full, the file read-only or
damaged), every method raises :class:`StoreUnavailable` saying which.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.errors import CollabFilterError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
"""How long a write waits for another writer's lock before giving up (milliseconds)."""
BUSY_RETRY_AFTER = 2
"""Seconds a client is told to wait after the database was busy."""
_COLUMNS = {"ratings": ["user_id", "item_id", "rating", "timestamp"], "meta": ["key", "value"]}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ratings (user_id NOT NULL, item_id NOT NULL, "
    "rating REAL NOT NULL, timestamp INTEGER NOT NULL, PRIMARY KEY (user_id, item_id)) "
    "WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID",
)

RawId = int | str
"""A raw user or item id as stored: an integer or text, in the vocabulary's type."""
Stored = tuple[tuple[RawId, float], ...]
"""A user's stored ``(item_id, rating)`` pairs, by item id."""
_ANSWERS_KEPT = 100_000


class StoreError(CollabFilterError, OSError):
    """The ratings database cannot be opened or has an unknown schema."""


class StoreUnavailable(StoreError):
    """The database cannot be used now: busy, full, read-only or damaged (the message
    says which). ``retry_after`` is the seconds worth waiting before trying again, or
    None when waiting will not help."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RatingStore:
    """Ratings users sent, by user, in one SQLite file shared by threads and processes.

    Each thread gets its own connection (SQLite connections must not be shared across
    threads); all of them are closed by :meth:`close`.

    Args:
        path: the database file (created with its schema when absent).
        busy_timeout_ms: how long a write waits for another writer's lock before it
            fails with :class:`StoreUnavailable`.
        max_bytes: the file stops growing at about this size: a write that needs
            more fails with :class:`StoreUnavailable`, as on a full disk (None: only
            the disk bounds it).

    Raises:
        StoreError: if the file is not a database of this schema (another program's
            database is refused, not converted).
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        max_bytes: int | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._create()

    def _create(self) -> None:
        try:
            connection = self._connection()
            found = _tables(connection)
            if found:
                _check_schema(self.path, connection, found)
            else:
                with _transaction(connection):
                    for statement in _SCHEMA:
                        connection.execute(statement)
                    connection.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (SCHEMA_VERSION,),
                    )
                    connection.execute("INSERT OR IGNORE INTO meta VALUES ('model_generation', 0)")
                _check_schema(self.path, connection, _tables(connection))
            connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            self.close()
            raise StoreError(f"{self.path}: not a usable ratings database ({error})") from error
        except StoreError:
            self.close()
            raise

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # isolation_level=None: no implicit transactions; each write opens its own.
            # Each connection serves one thread; close() may run in another.
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            # FULL: the WAL is synced at every commit, so an acknowledged write survives
            # a power cut too, not only a killed process.
            connection.execute("PRAGMA synchronous=FULL")
            if self.max_bytes is not None:
                (page,) = connection.execute("PRAGMA page_size").fetchone()
                connection.execute(f"PRAGMA max_page_count={max(int(self.max_bytes) // page, 1)}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        """SQLite's errors as :class:`StoreUnavailable` saying what happened."""
        try:
            yield
        except sqlite3.Error as error:
            raise unavailable(self.path, error, self.busy_timeout_ms) from error

    def _meta(self, key: str) -> Any:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def add(self, user_id: RawId, ratings: Sequence[tuple[RawId, float]]) -> int:
        """Store ``(item_id, rating)`` pairs of one user in one transaction (replacing
        earlier ratings of the same items). Returns how many the user has now."""
        now = int(time.time())
        rows = [(user_id, item_id, float(rating), now) for item_id, rating in ratings]
        self._local.version = None  # this connection's own commits do not move data_version
        with self._reported(), _transaction(self._connection()) as connection:
            connection.executemany(
                "INSERT INTO ratings VALUES (?, ?, ?, ?) ON CONFLICT (user_id, item_id) "
                "DO UPDATE SET rating = excluded.rating, timestamp = excluded.timestamp",
                rows,
            )
            (count,) = connection.execute(
                "SELECT count(*) FROM ratings WHERE user_id = ?", (user_id,)
            ).fetchone()
        return int(count)

    def ratings_of(self, user_id: RawId) -> Stored:
        """The ``(item_id, rating)`` pairs a user sent, by item id."""
        return self.ratings_of_users([user_id]).get(user_id, ())

    def ratings_of_users(self, user_ids: Iterable[RawId]) -> dict[RawId, Stored]:
        """:meth:`ratings_of` for several users (users without any left out).

        Answers are kept per thread until the database changes: ``PRAGMA data_version``
        moves whenever another connection commits (any thread or process), and this
        thread's own writes clear its answers, so a read never misses a committed write.
        """
        with self._reported():
            return self._ratings_of_users(list(dict.fromkeys(user_ids)))

    def _ratings_of_users(self, user_ids: list[RawId]) -> dict[RawId, Stored]:
        cache = self._fresh_answers()
        wanted = [user for user in user_ids if user not in cache]
        if wanted:
            found: dict[RawId, list[tuple[RawId, float]]] = {user: [] for user in wanted}
            connection = self._connection()
            for start in range(0, len(wanted), 500):  # SQLite bounds variables per query
                part = wanted[start : start + 500]
                rows = connection.execute(
                    "SELECT user_id, item_id, rating FROM ratings WHERE user_id IN "
                    f"({','.join('?' * len(part))}) ORDER BY user_id, item_id",
                    part,
                )
                for user, item, rating in rows:
                    found[user].append((item, float(rating)))
            if len(cache) + len(found) > _ANSWERS_KEPT:
                cache.clear()
            cache.update((user, tuple(pairs)) for user, pairs in found.items())
        return {user: cache[user] for user in user_ids if cache.get(user)}

    def _fresh_answers(self) -> dict[RawId, Stored]:
        connection = self._connection()
        (version,) = connection.execute("PRAGMA data_version").fetchone()
        local = self._local
        if getattr(local, "version", None) != version:
            local.version, local.answers = version, {}
        answers: dict[RawId, Stored] = local.answers
        return answers

    def forget(self, user_id: RawId) -> int:
        """Delete everything a user sent; returns how many ratings were deleted."""
        self._local.version = None
        with self._reported(), _transaction(self._connection()) as connection:
            cursor = connection.execute("DELETE FROM ratings WHERE user_id = ?", (user_id,))
        return int(cursor.rowcount)

    def count(self) -> int:
        """Ratings stored, all users."""
        with self._reported():
            (count,) = self._connection().execute("SELECT count(*) FROM ratings").fetchone()
        return int(count)

    def model_generation(self) -> int:
        """A counter raised by :meth:`bump_model_generation`: workers that see it change
        reload their model (an admin reload reaches one worker; this tells the rest)."""
        with self._reported():
            return int(self._meta("model_generation"))

    def bump_model_generation(self) -> int:
        """Raise the model generation by one and return it."""
        with self._reported(), _transaction(self._connection()) as connection:
            connection.execute("UPDATE meta SET value = value + 1 WHERE key = 'model_generation'")
        return self.model_generation()

    def close(self) -> None:
        """Close every thread's connection (the store reopens on next use)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error): taking the write
    lock at the start means two writers never deadlock upgrading read locks."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            try:
                self.connection.execute("COMMIT")
                return
            except sqlite3.Error:  # a full disk fails the commit: the transaction stays open
                self._roll_back()
                raise
        self._roll_back()

    def _roll_back(self) -> None:
        # SQLite may have rolled back already (a full disk, an I/O error); the error
        # that did so is the one to report, not "no transaction is active".
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")


def read_stored_ratings(path: str | Path) -> pd.DataFrame:
    """The ratings a service stored, to train the next model on them too.

    Returns a frame with columns ``user``, ``item`` (raw ids: int64 when every id is
    an integer, else object), ``rating`` (float64) and ``timestamp`` (int64, Unix
    seconds), ordered by user and item; ``Ratings.from_df(frame, timestamp=
    "timestamp")`` reads it. The database is opened read-only, so this is safe while a
    server writes to it.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        StoreError: if the file is not a ratings database.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ratings database not found: {path}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _check_schema(path, connection, _tables(connection))
            rows = connection.execute(
                "SELECT user_id, item_id, rating, timestamp FROM ratings ORDER BY user_id, item_id"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path}: not a ratings database ({error})") from error
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return pd.DataFrame(
        {
            "user": _id_column(columns[0]),
            "item": _id_column(columns[1]),
            "rating": np.asarray(columns[2], dtype=np.float64),
            "timestamp": np.asarray(columns[3], dtype=np.int64),
        }
    )


def _tables(connection: sqlite3.Connection) -> dict[str, list[str]]:
    """The database's own tables (not SQLite's) with their column names."""
    names = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\' ORDER BY name"
        )
    ]
    return {
        name: [row[1] for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))]
        for name in names
    }


def _check_schema(path: Path, connection: sqlite3.Connection, tables: dict[str, list[str]]) -> None:
    """Refuse a database that is not a ratings database of this schema version."""
    if tables != _COLUMNS:
        found = "; ".join(f"{name}({', '.join(columns)})" for name, columns in tables.items())
        raise StoreError(
            f"{path}: not a collabfilter ratings database: it holds {found[:300] or 'no table'} "
            f"where ratings(user_id, item_id, rating, timestamp) and meta(key, value) belong; "
            f"use another --db file"
        )
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found_version = None if row is None else row[0]
    if found_version != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: ratings database schema {found_version!r}, this collabfilter reads "
            f"{SCHEMA_VERSION}; use another --db file"
        )


def unavailable(path: Path, error: sqlite3.Error, busy_timeout_ms: int) -> StoreUnavailable:
    """What an SQLite error means for a client, as a :class:`StoreUnavailable`."""
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreUnavailable(
            f"the ratings database is busy: another writer held it for over "
            f"{busy_timeout_ms / 1000:g} s; nothing was changed, try again", BUSY_RETRY_AFTER
        )  # fmt: skip
    if name.startswith("SQLITE_FULL"):
        return StoreUnavailable(
            "the ratings database is full (no space left on its disk, or its size limit "
            "reached): nothing was stored"
        )
    if name.startswith("SQLITE_READONLY"):
        return StoreUnavailable(
            "the ratings database is read-only (file or folder permissions, or a read-only "
            "disk): nothing was stored"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreUnavailable(f"the ratings database file is damaged ({error})")
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
        return StoreUnavailable(f"the ratings database's file cannot be read or written ({error})")
    return StoreUnavailable(f"the ratings database failed ({error})")


def _id_column(values: Sequence[Any]) -> np.ndarray:
    if all(isinstance(value, int) for value in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=object)
