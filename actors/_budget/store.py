"""The budget's durable log: one SQLite file, ``<root>/budget.sqlite``, of events in order.

The log is the truth: the budget actor's books are the replay of its events. A batch of
events is one transaction, committed before any caller of the batch hears back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies import Durability
from runtime import StorageError, connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """One event of the budget's durable log.

    Attributes:
        seq: its position, from 1, without gaps.
        at: wall-clock time it was applied, in seconds since the epoch.
        kind: ``declare``, ``grant``, ``settle``, ``expire`` or ``charge`` (the books),
            ``breaker``, ``incident`` or ``cleared`` (breakers and the error registry).
        data: its fields (see ``actors._budget.book.LedgerBook.apply``).
    """

    seq: int
    at: float
    kind: str
    data: dict[str, Any]


class BudgetStore:
    """Appends and reads the events of ``<root>/budget.sqlite``.

    Raises:
        StorageError: the file cannot be opened.
    """

    def __init__(self, root: Path, durability: Durability = Durability.FULL) -> None:
        self.path = root / "budget.sqlite"
        try:
            self._conn = connect(self.path, durability)
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise StorageError(f"budget: cannot open {self.path}: {error}") from error

    def events(self) -> Iterator[BudgetEvent]:
        """Every event, oldest first."""
        rows = self._conn.execute("SELECT seq, at, kind, data FROM events ORDER BY seq")
        for seq, at, kind, data in rows:
            yield BudgetEvent(seq, at, kind, json.loads(data))

    def append(self, events: list[tuple[float, str, dict[str, Any]]]) -> None:
        """Commit ``(at, kind, data)`` events in one transaction.

        Raises:
            StorageError: the transaction failed; none of the events is stored.
        """
        if not events:
            return
        rows = [(at, kind, json.dumps(data, separators=(",", ":"))) for at, kind, data in events]
        with transaction(self._conn, "budget: commit failed") as conn:
            conn.executemany("INSERT INTO events (at, kind, data) VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._conn.close()
