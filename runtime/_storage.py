"""Where agentcast keeps durable state: SQLite files in WAL mode under one root folder (the
embedded default) or one PostgreSQL database (``postgresql://...``), and the one way every
store writes to them (``transaction``). A store opens its place with ``connect`` and speaks
SQLite's dialect; on PostgreSQL, ``PgConnection`` translates (``runtime._sql_dialect``)."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg

from policies import Durability

from ._postgres import PgConnection, PgLocation, is_postgres_url
from .errors import ConfigurationError, StorageError

Location = Path | PgLocation
"""Where a store lives: a file under a folder, or a schema in a PostgreSQL database."""

DatabaseErrors = (sqlite3.Error, psycopg.Error)
"""What either backend raises when a statement fails."""


class Connection(Protocol):
    """What the stores call on a connection from ``connect`` (either backend)."""

    row_factory: Any

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Any, /) -> Any: ...

    def executescript(self, script: str, /) -> Any: ...

    def close(self) -> None: ...


DEFAULT_ROOT = ".agentcast"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is safe as an actor and file name.

    Raises:
        ConfigurationError: empty, too long, or with characters other than letters,
            digits, ``_``, ``.`` and ``-``.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"{kind} name {name!r} must be 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


def storage_root(root: str | os.PathLike[str] | PgLocation | None = None) -> Location:
    """The storage root: ``root``, else ``$AGENTCAST_STORAGE``, else ``./.agentcast``.

    A ``postgresql://`` URL names a database (``PgLocation``); anything else a folder,
    made absolute so that every Ray worker resolves the same folder.
    """
    chosen = root or os.environ.get("AGENTCAST_STORAGE") or DEFAULT_ROOT
    if isinstance(chosen, PgLocation):
        return chosen
    if is_postgres_url(str(chosen)):
        return PgLocation(str(chosen))
    return Path(chosen).expanduser().resolve()


def is_shared(root: Location | str) -> bool:
    """Whether every node reaches the storage (PostgreSQL), so that a state actor may run
    and restart on any node; SQLite files pin state actors to their node."""
    return isinstance(root, PgLocation) or is_postgres_url(str(root))


def connect(path: Location, durability: Durability = Durability.FULL) -> Any:
    """Open a store: a SQLite file in WAL mode with explicit transactions, or the store's
    schema in PostgreSQL (``PgConnection``). Either way the result is a ``Connection``.

    The caller owns the connection and uses it from one thread.

    Raises:
        psycopg.Error: PostgreSQL could not be reached.
    """
    if isinstance(path, PgLocation):
        return PgConnection(path, synchronous=durability is Durability.FULL)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    sync = "FULL" if durability is Durability.FULL else "NORMAL"
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def connect_read_only(path: Location) -> Any:
    """Open an existing store to read it (a SQLite file read-only, where WAL readers
    never block its writer; on PostgreSQL the store's schema in read-only sessions),
    never creating it. The caller owns the connection and uses it from one thread.

    Raises:
        StorageError: there is no such store, or it could not be opened.
    """
    try:
        if not path.exists():
            raise StorageError(f"no store at {path}")
        if isinstance(path, PgLocation):
            return PgConnection(path, read_only=True)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        conn.isolation_level = None
        conn.execute("PRAGMA busy_timeout=30000")
        return conn
    except DatabaseErrors as error:
        raise StorageError(f"opening {path} failed: {error}") from error


def stores_in(folder: Location) -> list[str]:
    """The names of the stores directly in ``folder`` (``<folder>/<name>.sqlite`` or the
    PostgreSQL schema of that place), sorted; none if there is no such folder.

    Raises:
        StorageError: PostgreSQL could not be reached.
    """
    if isinstance(folder, PgLocation):
        try:
            return folder.stores()
        except psycopg.Error as error:
            raise StorageError(f"listing {folder} failed: {error}") from error
    return sorted(p.stem for p in folder.glob("*.sqlite")) if folder.is_dir() else []


@contextmanager
def transaction(conn: Connection, what: str) -> Iterator[Any]:
    """``BEGIN IMMEDIATE``, the block, ``COMMIT``; ``ROLLBACK`` on any error, including
    an error of ``COMMIT`` itself (a deferred constraint, a full disk), which SQLite
    reports with the transaction still open. The connection is usable afterwards.

    ``IMMEDIATE`` takes the write lock up front, so a transaction never fails half-way
    because another connection wrote first (on PostgreSQL: an advisory lock per store).

    Args:
        conn: a connection from ``connect`` (no implicit transactions).
        what: names the store and the step in the error, e.g. ``"commit to <path> failed"``.

    Raises:
        StorageError: the database failed (``BEGIN``, a statement or ``COMMIT``), as
            ``"<what>: <database error>"``; nothing of the block was committed.
        Exception: any other error raised in the block, as itself, after the rollback.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except DatabaseErrors as error:
        raise StorageError(f"{what}: {error}") from error
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as error:
        if not isinstance(error, DatabaseErrors):
            _roll_back(conn, error)
            raise
        failed = StorageError(f"{what}: {error}")
        _roll_back(conn, failed)
        raise failed from error


def _roll_back(conn: Connection, cause: BaseException) -> None:
    """Undo the open transaction, if any. A failing rollback (a closed connection) is
    noted on ``cause`` rather than raised: ``cause`` is what the caller must see."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except DatabaseErrors as error:
        cause.add_note(f"rollback failed too: {error}")


def truncate_wal(conn: Connection) -> bool:
    """Copy the write-ahead log into the database and cut the WAL file to nothing, so that
    it does not stay at its largest size; called by a store's owner after a retention pass.

    It never waits: while a reader holds an older snapshot it does what it can and the
    file keeps its size until the next call.

    PostgreSQL manages its own write-ahead log: there it does nothing.

    Returns:
        Whether the WAL file was truncated.
    """
    if not isinstance(conn, sqlite3.Connection):
        return False
    try:
        conn.execute("PRAGMA busy_timeout=0")
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error:
        return False  # a checkpoint only saves space: the next one catches up
    finally:
        conn.execute("PRAGMA busy_timeout=30000")
    return not busy
