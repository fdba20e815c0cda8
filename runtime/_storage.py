"""Where agentcast keeps durable state: SQLite files in WAL mode under one root folder."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from policies import Durability

from .errors import ConfigurationError

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
