"""The durable stores of a system, read from their SQLite files (read only), so that
``agentcast log`` and ``agentcast trace`` work while the actors are down too.

Every query here is served by an index of its store: a resource log's version (its key)
and ``log_trace``/``rejected_trace``; the supervisor's ``subtasks_trace``,
``handoffs_trace`` and ``events_subject``; the budget log's ``events_run`` and
``events_grant``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime import ConfigurationError, decode, storage_root


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a store (a writer may be committing meanwhile: WAL).

    Raises:
        ConfigurationError: there is no such file.
    """
    if not path.exists():
        raise ConfigurationError(f"no store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def local_root(storage: str | None) -> Path:
    """The storage folder the command line reads.

    Raises:
        ConfigurationError: the storage is PostgreSQL (read its schemas with ``psql``).
    """
    root = storage_root(storage)
    if not isinstance(root, Path):
        raise ConfigurationError(
            f"{root} is PostgreSQL: this command reads SQLite files; query the store's "
            "schema with psql (docs/storage.md)"
        )
    return root


def resource_path(root: Path, name: str) -> Path:
    """The log of resource ``name``.

    Raises:
        ConfigurationError: no resource ``name`` in this storage (the message lists those
            that are).
    """
    path = root / "resources" / f"{name}.sqlite"
    if not path.exists():
        known = ", ".join(resource_names(root)) or "none"
        raise ConfigurationError(f"no resource {name!r} in {root} (resources there: {known})")
    return path


def resource_names(root: Path) -> list[str]:
    """The resources whose logs are in ``root``."""
    return sorted(p.stem for p in (root / "resources").glob("*.sqlite"))


def _changes(diff: list[list[Any]]) -> list[dict[str, Any]]:
    """``[key, had_before, before, has_after, after]`` rows as objects; a side that did
    not exist (a key added or removed) is left out."""
    found = []
    for key, had, before, has, after in diff:
        change: dict[str, Any] = {"key": key}
        if had:
            change["before"] = before
        if has:
            change["after"] = after
        found.append(change)
    return found


def decoded(row: sqlite3.Row) -> dict[str, Any]:
    """One log record as plain data: arguments, result and before/after decoded."""
    args, kwargs = decode(row["args"])
    record = {
        "version": row["version"], "at": row["at"], "op": row["op"], "args": args,
        "kwargs": kwargs, "result": decode(row["result"]), "writer": row["writer"],
        "writer_epoch": row["writer_epoch"], "incarnation": row["incarnation"],
        "idem_key": row["idem_key"], "trace_id": row["trace_id"],
        "changes": _changes(decode(row["diff"])),
        # a log written before the column existed, read without migrating it: unknown
        # (``in row`` would look among a sqlite3.Row's values, not its column names)
        "provenance": row["provenance"] if "provenance" in row.keys() else "unverified_agent",  # noqa: SIM118
    }  # fmt: skip
    plain: dict[str, Any] = json.loads(json.dumps(record, default=str))
    return plain


def log_records(
    conn: sqlite3.Connection,
    *,
    after: int = 0,
    upto: int | None = None,
    writer: str | None = None,
    op: str | None = None,
    trace: str | None = None,
) -> list[dict[str, Any]]:
    """Committed records with ``after`` < version <= ``upto``, oldest first, decoded;
    ``writer``, ``op`` and ``trace`` narrow them."""
    where: list[str] = ["version > ?"] if after else []
    params: list[Any] = [after] if after else []
    for column, value in (("writer", writer), ("op", op), ("trace_id", trace)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if upto is not None:
        where.append("version <= ?")
        params.append(upto)
    sql = f"SELECT * FROM log WHERE {' AND '.join(where) or 'TRUE'} ORDER BY version"
    return [decoded(row) for row in conn.execute(sql, params)]


def rejections_of(conn: sqlite3.Connection, trace: str) -> list[dict[str, Any]]:
    """Refused write attempts of one trace, oldest first."""
    rows = conn.execute("SELECT * FROM rejected WHERE trace_id = ? ORDER BY id", (trace,))
    return [dict(row) for row in rows]
