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
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collabfilter.errors import CollabFilterError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
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


class RatingStore:
    """Ratings users sent, by user, in one SQLite file shared by threads and processes.

    Each thread gets its own connection (SQLite connections must not be shared across
    threads); all of them are closed by :meth:`close`.

    Args:
        path: the database file (created with its schema when absent).

    Raises:
        StoreError: if the file is not a database of this schema.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._create()

    def _create(self) -> None:
        try:
            connection = self._connection()
            connection.execute("PRAGMA journal_mode=WAL")
            with _transaction(connection):
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('model_generation', 0)")
            found = self._meta("schema_version")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable ratings database ({error})") from error
        if found != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: ratings database schema {found!r}, this collabfilter reads "
                f"{SCHEMA_VERSION}; use another --db file"
            )

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # isolation_level=None: no implicit transactions; each write opens its own.
            # Each connection serves one thread; close() may run in another.
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # FULL: the WAL is synced at every commit, so an acknowledged write survives
            # a power cut too, not only a killed process.
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _meta(self, key: str) -> Any:
        row = self._connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def add(self, user_id: RawId, ratings: Sequence[tuple[RawId, float]]) -> int:
        """Store ``(item_id, rating)`` pairs of one user in one transaction (replacing
        earlier ratings of the same items). Returns how many the user has now."""
        now = int(time.time())
        rows = [(user_id, item_id, float(rating), now) for item_id, rating in ratings]
        connection = self._connection()
        self._local.version = None  # this connection's own commits do not move data_version
        with _transaction(connection):
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
        cache = self._fresh_answers()
        wanted = [user for user in dict.fromkeys(user_ids) if user not in cache]
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
        return {user: cache[user] for user in dict.fromkeys(user_ids) if cache.get(user)}

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
        connection = self._connection()
        self._local.version = None
        with _transaction(connection):
            cursor = connection.execute("DELETE FROM ratings WHERE user_id = ?", (user_id,))
        return int(cursor.rowcount)

    def count(self) -> int:
        """Ratings stored, all users."""
        (count,) = self._connection().execute("SELECT count(*) FROM ratings").fetchone()
        return int(count)

    def model_generation(self) -> int:
        """A counter raised by :meth:`bump_model_generation`: workers that see it change
        reload their model (an admin reload reaches one worker; this tells the rest)."""
        return int(self._meta("model_generation"))

    def bump_model_generation(self) -> int:
        """Raise the model generation by one and return it."""
        connection = self._connection()
        with _transaction(connection):
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
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")


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


def _id_column(values: Sequence[Any]) -> np.ndarray:
    if all(isinstance(value, int) for value in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=object)
