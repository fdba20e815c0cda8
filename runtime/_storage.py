"""Where agentcast keeps durable state: SQLite files in WAL mode under one root folder,
and the one way every store writes to them (``transaction``)."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from policies import Durability

from .errors import ConfigurationError, StorageError

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


def storage_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The storage root: ``root``, else ``$AGENTCAST_STORAGE``, else ``./.agentcast``,
    made absolute so that every Ray worker resolves the same folder."""
    chosen = root or os.environ.get("AGENTCAST_STORAGE") or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def connect(path: Path, durability: Durability = Durability.FULL) -> sqlite3.Connection:
    """Open a SQLite file in WAL mode with explicit transactions.

    The caller owns the connection and uses it from one thread.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    sync = "FULL" if durability is Durability.FULL else "NORMAL"
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE``, the block, ``COMMIT``; ``ROLLBACK`` on any error, including
    an error of ``COMMIT`` itself (a deferred constraint, a full disk), which SQLite
    reports with the transaction still open. The connection is usable afterwards.

    ``IMMEDIATE`` takes the write lock up front, so a transaction never fails half-way
    because another connection wrote first.

    Args:
        conn: a connection from ``connect`` (no implicit transactions).
        what: names the store and the step in the error, e.g. ``"commit to <path> failed"``.

    Raises:
        StorageError: SQLite failed (``BEGIN``, a statement or ``COMMIT``), as
            ``"<what>: <sqlite error>"``; nothing of the block was committed.
        Exception: any other error raised in the block, as itself, after the rollback.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise StorageError(f"{what}: {error}") from error
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as error:
        if not isinstance(error, sqlite3.Error):
            _roll_back(conn, error)
            raise
        failed = StorageError(f"{what}: {error}")
        _roll_back(conn, failed)
        raise failed from error


def _roll_back(conn: sqlite3.Connection, cause: BaseException) -> None:
    """Undo the open transaction, if any. A failing rollback (a closed connection) is
    noted on ``cause`` rather than raised: ``cause`` is what the caller must see."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error as error:
        cause.add_note(f"rollback failed too: {error}")


def truncate_wal(conn: sqlite3.Connection) -> bool:
    """Copy the write-ahead log into the database and cut the WAL file to nothing, so that
    it does not stay at its largest size; called by a store's owner after a retention pass.

    It never waits: while a reader holds an older snapshot it does what it can and the
    file keeps its size until the next call.

    Returns:
        Whether the WAL file was truncated.
    """
    try:
        conn.execute("PRAGMA busy_timeout=0")
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error:
        return False  # a checkpoint only saves space: the next one catches up
    finally:
        conn.execute("PRAGMA busy_timeout=30000")
    return not busy
