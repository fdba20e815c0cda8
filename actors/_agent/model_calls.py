"""Each model call an agent makes, stored where it is made, for ``agentcast trace``.

The budget meters model use by allowance (an agent draws ahead and settles in batches), so
its log cannot say what one call cost. ``RecordedModel`` wraps the agent's metered model
and writes one row per call (its task, model, input and output tokens, duration and
outcome) to ``<root>/model_calls/<agent>.<replica>.sqlite`` (a schema of that place on
PostgreSQL): one store per replica, so each store has one writer (its replica's process)
and no call waits on another process's lock. Rows older than ``KEEP`` are pruned when the
store opens and every ``_PRUNE_EVERY`` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from policies import Durability
from runtime import (
    Clock,
    Completion,
    Connection,
    DatabaseErrors,
    Location,
    Message,
    StorageError,
    SystemClock,
    connect,
    storage_root,
    transaction,
)

from .agent import current_task

_log = logging.getLogger(__name__)
KEEP = timedelta(days=7)
"""How long a model call's row is kept (docs/operations.md, "Retention")."""
_PRUNE_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    trace_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    replica INTEGER NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL
);
-- agentcast trace: one trace's calls in time order; pruning: the oldest first.
CREATE INDEX IF NOT EXISTS calls_trace ON calls (trace_id, at);
CREATE INDEX IF NOT EXISTS calls_at ON calls (at);
"""
COLUMNS = (
    "at", "trace_id", "task_id", "agent", "replica", "model", "input_tokens",
    "output_tokens", "duration_ms", "outcome",
)  # fmt: skip

_INSERT = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def calls_folder(root: Location) -> Location:
    """Where the replicas' files are."""
    return root / "model_calls"


class CallLog:
    """The model calls of one agent replica: one SQLite file, written by its process."""

    def __init__(self, root: Location, agent: str, replica: int, clock: Clock) -> None:
        self._path = calls_folder(root) / f"{agent}.{replica}.sqlite"
        self._clock = clock
        self._conn: Connection | None = None
        self._written = 0

    def _open(self) -> Connection:
        if self._conn is None:
            # Observability, not state: a crash may lose the last calls, never a write.
            conn = connect(self._path, Durability.PROCESS)
            conn.executescript(_SCHEMA)
            self._conn = conn
            self._prune(conn)
        return self._conn

    def _prune(self, conn: Connection) -> None:
        before = self._clock.now().timestamp() - KEEP.total_seconds()
        with transaction(conn, f"pruning {self._path}"):
            conn.execute("DELETE FROM calls WHERE at < ?", (before,))

    def add(self, row: tuple[Any, ...]) -> None:
        """Store one call (``COLUMNS``, in order)."""
        conn = self._open()
        with transaction(conn, f"storing a model call in {self._path}"):
            conn.execute(_INSERT, row)
        self._written += 1
        if self._written % _PRUNE_EVERY == 0:
            self._prune(conn)


class RecordedModel:
    """A model client that stores each call it makes (see the module docstring); the
    rest of the inner client's face (``endpoint``, ``model``) passes through."""

    def __init__(self, inner: Any, log: CallLog, agent: str, replica: int, clock: Clock) -> None:
        self.inner = inner
        self._log = log
        self._who = (agent, replica)
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(
        self, messages: Sequence[Message], *, max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:  # fmt: skip
        """The inner client's ``complete``, stored with its usage and duration (a failed
        call with no usage and the error's type as its outcome).

        Raises:
            Exception: whatever the inner call raises, after it is stored.
        """
        at, started = self._clock.now().timestamp(), self._clock.monotonic()
        usage, outcome = (0, 0), "ok"
        try:
            completion: Completion = await self.inner.complete(
                messages, max_tokens=max_tokens, schema=schema
            )
            usage = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
            return completion
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            self._store(at, (self._clock.monotonic() - started) * 1000, usage, outcome)

    def _store(self, at: float, ms: float, usage: tuple[int, int], outcome: str) -> None:
        task = current_task.get()
        trace, task_id = ("0" * 32, "-") if task is None else (
            task.envelope.trace_id, task.envelope.task_id
        )  # fmt: skip
        row = (at, trace, task_id, *self._who, str(self.inner.model), *usage, round(ms, 3), outcome)
        try:
            self._log.add(row)
        except (StorageError, *DatabaseErrors, OSError) as error:  # the call is not failed for it
            _log.warning("model call not stored for agentcast trace: %s", error)


_RECORDED: dict[tuple[int, str], RecordedModel] = {}


def recorded_model(inner: Any, storage: str, agent: str, replica: int) -> Any:
    """``inner``, its calls stored under ``storage`` (made once per client and root);
    ``inner`` itself when the agent has no storage."""
    if not storage:
        return inner
    key = (id(inner), storage)
    found = _RECORDED.get(key)
    if found is None or found.inner is not inner:
        clock = SystemClock()
        log = CallLog(storage_root(storage), agent, replica, clock)
        found = _RECORDED[key] = RecordedModel(inner, log, agent, replica, clock)
    return found
