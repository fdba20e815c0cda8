"""The durable stores of a system, read from their SQLite files or PostgreSQL schemas
(read only), so that ``agentcast log`` and ``agentcast trace`` work while the actors are
down too.

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
from typing import Any

from runtime import (
    ConfigurationError,
    Connection,
    DatabaseErrors,
    Location,
    StorageError,
    connect_read_only,
    decode,
    storage_root,
    stores_in,
)


@contextmanager
def read_only(path: Location) -> Iterator[Connection]:
    """A read-only connection to a store whose rows read by column name (a writer may be
    committing meanwhile: WAL readers and PostgreSQL's snapshots do not block it).

    Raises:
        ConfigurationError: there is no such store, or it cannot be opened.
    """
    try:
        conn = connect_read_only(path)
    except StorageError as error:
        raise ConfigurationError(str(error)) from error
    conn.row_factory = sqlite3.Row  # on PostgreSQL: rows by name too (``PgConnection``)
    try:
        yield conn
    finally:
        conn.close()


def cli_root(storage: str | None) -> Location:
    """The storage the command line reads: ``storage`` (a folder or a ``postgresql://``
    URL), else ``$AGENTCAST_STORAGE``, else ``./.agentcast``."""
    return storage_root(storage)


def resource_path(root: Location, name: str) -> Location:
    """The log of resource ``name``.

    Raises:
        ConfigurationError: no resource ``name`` in this storage (the message lists those
            that are).
    """
    path = root / "resources" / f"{name}.sqlite"
    try:
        found = path.exists()
    except DatabaseErrors as error:
        raise ConfigurationError(f"cannot read {root}: {error}") from error
    if not found:
        known = ", ".join(resource_names(root)) or "none"
        raise ConfigurationError(f"no resource {name!r} in {root} (resources there: {known})")
    return path


def resource_names(root: Location) -> list[str]:
    """The resources whose logs are in ``root``.

    Raises:
        ConfigurationError: the storage cannot be listed (PostgreSQL unreachable).
    """
    return store_names(root / "resources")


def store_names(folder: Location) -> list[str]:
    """The stores in ``folder`` by name (``runtime.stores_in``).

    Raises:
        ConfigurationError: the storage cannot be listed (PostgreSQL unreachable).
    """
    try:
        return stores_in(folder)
    except StorageError as error:
        raise ConfigurationError(str(error)) from error


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


def decoded(row: Any) -> dict[str, Any]:
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
    conn: Connection,
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


def rejections_of(conn: Connection, trace: str) -> list[dict[str, Any]]:
    """Refused write attempts of one trace, oldest first."""
    rows = conn.execute("SELECT * FROM rejected WHERE trace_id = ? ORDER BY id", (trace,))
    return [dict(row) for row in rows]
