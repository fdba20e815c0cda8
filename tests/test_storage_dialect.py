"""The SQL the stores write runs with the same results on both backends: what SQLite says
in its own way (``INSERT OR IGNORE``/``OR REPLACE``, two-argument ``max``, ``LIMIT -1``, JSON
functions, triggers, ``PRAGMA table_info``, ``sqlite_master``) is said in PostgreSQL's by the
one connection adapter, never by a store."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import Location, StorageError, connect, transaction

pytestmark = pytest.mark.timeout(120)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value INTEGER NOT NULL, note BLOB);
CREATE TABLE IF NOT EXISTS seqs(seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS seqs_run ON seqs (json_extract(data, '$.ctx.run'))
"""


def _open(root: Location) -> Any:
    conn = connect(root / "dialect.sqlite")
    conn.executescript(_SCHEMA)
    return conn


def test_upserts_ignore_and_replace_alike(store_root: Location) -> None:
    conn = _open(store_root)
    with transaction(conn, "upserts"):
        conn.execute("INSERT OR IGNORE INTO kv(key, value) VALUES(?, ?)", ("a", 1))
        conn.execute("INSERT OR IGNORE INTO kv(key, value) VALUES(?, ?)", ("a", 2))
        conn.execute("INSERT OR REPLACE INTO kv VALUES(?, ?, ?)", ("b", 1, b"\x00\xff"))
        conn.execute("INSERT OR REPLACE INTO kv VALUES(?, ?, ?)", ("b", 5, b"\x01"))
        for value in (7, 3):  # keeps the larger: a bare column is the stored row's
            conn.execute(
                "INSERT INTO kv(key, value) VALUES('c', ?) ON CONFLICT(key) DO UPDATE "
                "SET value = max(value, excluded.value)",
                (value,),
            )
        conn.execute(
            "INSERT INTO kv(key, value) VALUES('c', 0) ON CONFLICT(key) DO UPDATE "
            "SET value = value + 1"
        )
    rows = conn.execute("SELECT key, value, note FROM kv ORDER BY key").fetchall()
    assert [tuple(r) for r in rows] == [("a", 1, None), ("b", 5, b"\x01"), ("c", 8, None)]
    assert conn.execute("SELECT key FROM kv ORDER BY key LIMIT ?", (-1,)).fetchall() == [
        ("a",), ("b",), ("c",)
    ]  # fmt: skip


def test_json_and_numbering_and_the_catalog_alike(store_root: Location) -> None:
    conn = _open(store_root)
    with transaction(conn, "events"):
        for run in ("r1", "r2", "r1"):
            data = json.dumps({"ctx": {"run": run}, "attempts": []})
            conn.execute("INSERT INTO seqs(at, data) VALUES(?, ?)", (1.5, data))
    rows = conn.execute(
        "SELECT seq FROM seqs WHERE json_extract(data, '$.ctx.run') = ? ORDER BY seq", ("r1",)
    ).fetchall()
    assert [r[0] for r in rows] == [1, 3]  # numbered from 1 when the key is left out
    conn.execute("CREATE TABLE IF NOT EXISTS tried(id TEXT PRIMARY KEY, attempts TEXT)")
    conn.execute("INSERT INTO tried VALUES('s', '[]')")
    for n in (1, 2):
        conn.execute(
            "UPDATE tried SET attempts = json_insert(attempts, '$[#]', json(?)) WHERE id = ?",
            (json.dumps({"n": n}), "s"),
        )
    (attempts,) = conn.execute("SELECT attempts FROM tried").fetchone()
    assert json.loads(attempts) == [{"n": 1}, {"n": 2}]
    assert {r[1] for r in conn.execute("PRAGMA table_info(kv)")} == {"key", "value", "note"}
    found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    assert conn.execute(found, ("kv",)).fetchone() is not None
    assert conn.execute(found, ("nope",)).fetchone() is None


def test_triggers_keep_counts_alike(store_root: Location) -> None:
    conn = _open(store_root)
    conn.execute("CREATE TABLE IF NOT EXISTS items(id TEXT PRIMARY KEY, state TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS counts(state TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute(
        """CREATE TRIGGER IF NOT EXISTS counted_in AFTER INSERT ON items BEGIN
            INSERT INTO counts(state, n) VALUES(new.state, 1)
                ON CONFLICT(state) DO UPDATE SET n = n + 1;
        END"""
    )
    conn.execute(
        """CREATE TRIGGER IF NOT EXISTS counted_moved AFTER UPDATE OF state ON items
        WHEN old.state != new.state BEGIN
            UPDATE counts SET n = n - 1 WHERE state = old.state;
            INSERT INTO counts(state, n) VALUES(new.state, 1)
                ON CONFLICT(state) DO UPDATE SET n = n + 1;
        END"""
    )
    with transaction(conn, "items"):
        for key in ("x", "y", "z"):
            conn.execute("INSERT INTO items VALUES(?, 'open')", (key,))
        conn.execute("UPDATE items SET state = 'done' WHERE id = ?", ("x",))
    counts = dict(conn.execute("SELECT state, n FROM counts").fetchall())
    assert counts == {"open": 2, "done": 1}


def test_a_failing_statement_is_a_storage_error_and_the_connection_stays_usable(
    store_root: Location,
) -> None:
    conn = _open(store_root)
    with pytest.raises(StorageError, match="twice"), transaction(conn, "twice"):
        conn.execute("INSERT INTO kv(key, value) VALUES('k', 1)")
        conn.execute("INSERT INTO kv(key, value) VALUES('k', 2)")
    assert not conn.in_transaction
    with transaction(conn, "again"):
        conn.execute("INSERT INTO kv(key, value) VALUES('k', 3)")
    assert conn.execute("SELECT value FROM kv").fetchall() == [(3,)]


def test_a_script_with_a_semicolon_in_a_comment_runs_alike(store_root: Location) -> None:
    conn = connect(store_root / "commented.sqlite")
    conn.executescript(
        "-- one table; and an index\n"
        "CREATE TABLE IF NOT EXISTS t(a INTEGER NOT NULL); -- a trailing note; still a note\n"
        "CREATE INDEX IF NOT EXISTS t_a ON t (a);\n"
    )
    with transaction(conn, "insert"):
        conn.execute("INSERT INTO t(a) VALUES(?)", (1,))
    assert [tuple(r) for r in conn.execute("SELECT a FROM t").fetchall()] == [(1,)]
