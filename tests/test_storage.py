"""The one transaction helper, and every store through it: a failed COMMIT rolls back,
raises ``StorageError`` and leaves the connection usable."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors._agent.registry import AgentRegistry
from actors._budget.store import BudgetStore
from actors._resource.store import LogRecord, ResourceLog
from actors._supervisor.store import SubtaskStore
from runtime import StorageError, connect, transaction

pytestmark = pytest.mark.timeout(60)

PACKAGES = Path(__file__).resolve().parent.parent

# A deferred foreign key is checked at COMMIT, not at the statement: the way to make
# COMMIT itself fail, with SQLite keeping the transaction open.
_FAIL_AT_COMMIT = """
CREATE TABLE IF NOT EXISTS parent(id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS child(
    parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED
);
"""


def fail_commits_on(conn: sqlite3.Connection, trigger_on: str) -> None:
    """Make every later transaction that runs ``trigger_on`` (e.g. ``INSERT ON log``)
    fail at COMMIT."""
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_FAIL_AT_COMMIT)
    conn.execute(
        f"CREATE TRIGGER fail_at_commit AFTER {trigger_on} "
        "BEGIN INSERT INTO child(parent_id) VALUES(-1); END"
    )


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_transaction_commits_its_block(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.sqlite")
    conn.execute("CREATE TABLE t(x INTEGER)")
    with transaction(conn, "t") as inside:
        assert inside is conn and conn.in_transaction
        conn.execute("INSERT INTO t VALUES(1)")
    assert not conn.in_transaction
    assert count(connect(tmp_path / "t.sqlite"), "t") == 1  # seen by another connection


def test_a_failed_commit_rolls_back_raises_and_leaves_the_connection_usable(
    tmp_path: Path,
) -> None:
    conn = connect(tmp_path / "t.sqlite")
    conn.execute("CREATE TABLE t(x INTEGER)")
    fail_commits_on(conn, "INSERT ON t")
    with pytest.raises(StorageError) as error, transaction(conn, "writing t failed"):
        conn.execute("INSERT INTO t VALUES(1)")
    assert str(error.value) == "writing t failed: FOREIGN KEY constraint failed"
    assert isinstance(error.value.__cause__, sqlite3.IntegrityError)
    assert not conn.in_transaction
    assert (count(conn, "t"), count(conn, "child")) == (0, 0)
    conn.execute("DROP TRIGGER fail_at_commit")
    with transaction(conn, "t"):
        conn.execute("INSERT INTO t VALUES(2)")
    assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_an_error_in_the_block_rolls_back_and_is_raised_as_itself(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.sqlite")
    conn.execute("CREATE TABLE t(x INTEGER)")
    with pytest.raises(KeyError), transaction(conn, "t"):
        conn.execute("INSERT INTO t VALUES(1)")
        raise KeyError("not a storage error")
    assert not conn.in_transaction and count(conn, "t") == 0


def test_a_statement_error_is_a_storage_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.sqlite")
    with pytest.raises(StorageError, match=r"^t: no such table: missing$"), transaction(conn, "t"):
        conn.execute("INSERT INTO missing VALUES(1)")
    assert not conn.in_transaction


def test_a_locked_database_fails_at_begin_with_a_storage_error(tmp_path: Path) -> None:
    conn, other = connect(tmp_path / "t.sqlite"), connect(tmp_path / "t.sqlite")
    conn.execute("CREATE TABLE t(x INTEGER)")
    conn.execute("PRAGMA busy_timeout=0")
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StorageError, match=r"^t: database is locked$"), transaction(conn, "t"):
        pytest.fail("the block must not run without the write lock")
    other.execute("ROLLBACK")
    with transaction(conn, "t"):
        conn.execute("INSERT INTO t VALUES(1)")
    assert count(other, "t") == 1


def test_a_commit_on_a_closed_connection_is_a_storage_error_with_the_failed_rollback_noted(
    tmp_path: Path,
) -> None:
    conn = connect(tmp_path / "t.sqlite")
    with pytest.raises(StorageError) as error, transaction(conn, "t"):
        conn.close()
    assert str(error.value) == "t: Cannot operate on a closed database."
    assert error.value.__notes__ == ["rollback failed too: Cannot operate on a closed database."]


# -- every store goes through the helper ------------------------------------------------


def _record(version: int) -> LogRecord:
    return LogRecord(version, "op", b"", b"", "w", 1, 1, f"key-{version}", "t" * 32, "at", b"")


def _resource_log(
    root: Path,
) -> tuple[sqlite3.Connection, str, Callable[[], Any], Callable[[], Any]]:
    log = ResourceLog(root, "inv")
    incarnation = log.open_incarnation().incarnation
    return (
        log._conn,
        "INSERT ON log",
        lambda: log.commit(incarnation, [_record(1)], []),
        lambda: [r.version for r in log.records()],
    )


def _subtask_store(
    root: Path,
) -> tuple[sqlite3.Connection, str, Callable[[], Any], Callable[[], Any]]:
    store = SubtaskStore(root)

    def commit() -> None:
        store.stage_event(1.0, "kill", "agent", {})
        store.commit_now()

    return store._conn, "INSERT ON events", commit, lambda: [e["kind"] for e in store.events()]


def _budget_store(
    root: Path,
) -> tuple[sqlite3.Connection, str, Callable[[], Any], Callable[[], Any]]:
    store = BudgetStore(root)
    return (
        store._conn,
        "INSERT ON events",
        lambda: store.append([(1.0, "declare", {"cap": 1})]),
        lambda: [e.kind for e in store.events()],
    )


def _agent_registry(
    root: Path,
) -> tuple[sqlite3.Connection, str, Callable[[], Any], Callable[[], Any]]:
    registry = AgentRegistry(root)
    registry.current_epoch("orders")
    return (
        registry._conn,
        "UPDATE ON agents",
        lambda: registry.bump_epoch("orders"),
        lambda: registry.current_epoch("orders"),
    )


@pytest.mark.parametrize(
    ("open_store", "before", "after"),
    [
        (_resource_log, [], [1]),
        (_subtask_store, [], ["kill"]),
        (_budget_store, [], ["declare"]),
        (_agent_registry, 1, 2),
    ],
    ids=["resource log", "subtask store", "budget store", "agent registry"],
)
def test_every_store_rolls_back_a_failed_commit_and_stays_usable(
    tmp_path: Path, open_store: Callable[..., Any], before: Any, after: Any
) -> None:
    conn, trigger_on, write, read = open_store(tmp_path)
    fail_commits_on(conn, trigger_on)
    with pytest.raises(StorageError, match="FOREIGN KEY constraint failed"):
        write()
    assert not conn.in_transaction
    assert read() == before
    conn.execute("DROP TRIGGER fail_at_commit")
    write()
    assert read() == after


def test_the_supervisor_group_commit_fails_its_waiters_with_the_storage_error(
    tmp_path: Path,
) -> None:
    store = SubtaskStore(tmp_path)
    fail_commits_on(store._conn, "INSERT ON events")

    async def commit_one() -> None:
        store.stage_event(1.0, "kill", "agent", {})
        await store.commit()

    with pytest.raises(StorageError, match=r"^supervisor store: FOREIGN KEY constraint failed$"):
        asyncio.run(commit_one())
    assert store.events() == [] and not store._conn.in_transaction


def test_no_module_writes_a_transaction_by_hand() -> None:
    """BEGIN, COMMIT and ROLLBACK are issued in one place, the transaction helper."""
    statement = re.compile(r"""execute\(\s*["'](BEGIN|COMMIT|ROLLBACK)""")
    found = sorted(
        str(path.relative_to(PACKAGES))
        for package in ("actors", "runtime", "policies")
        for path in (PACKAGES / package).rglob("*.py")
        if statement.search(path.read_text(encoding="utf-8"))
    )
    assert found == ["runtime/_storage.py"]
