"""Each model call an agent makes, stored where it is made, for ``agentcast trace``.

The budget meters model use by allowance (an agent draws ahead and settles in batches), so
its log cannot say what one call cost. ``RecordedModel`` wraps the agent's metered model
and writes one row per call (its task, model, input and output tokens, duration and
outcome) to one store per process: ``<root>/model_calls/<agent>.<replica>.sqlite`` for a
dedicated replica, ``<root>/model_calls/@agent-host.<i>.sqlite`` for the pooled agents of
host ``agent-host:<i>`` (a schema of that place on PostgreSQL). So each store has one writer
(its process), no call waits on another process's lock, and a process holds one connection
for its calls however many agents it runs (thousands of pooled agents would otherwise
exhaust PostgreSQL's ``max_connections``). Rows older than ``KEEP`` are pruned when the
store opens and every ``_PRUNE_EVERY`` calls.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import ray
from pydantic import BaseModel

from runtime import (
    Clock,
    Completion,
    DatabaseErrors,
    Location,
    Message,
    StorageError,
    SystemClock,
    storage_root,
)

from .._observations import ObservationLog
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


def calls_folder(root: Location) -> Location:
    """Where the replicas' stores are."""
    return root / "model_calls"


def call_log(root: Location, store: str, clock: Clock) -> ObservationLog:
    """The model calls made in one process: its store ``store`` (``store_name``)."""
    path = calls_folder(root) / f"{store}.sqlite"
    return ObservationLog(path, "calls", _SCHEMA, COLUMNS, clock=clock, keep=KEEP,
                          prune_every=_PRUNE_EVERY)  # fmt: skip


def store_name(agent: str, replica: int) -> str:
    """The store of this process's model calls: its pool host's (``@agent-host.<i>``;
    ``@`` is in no agent's name), else the agent replica's own (``<agent>.<replica>``)."""
    from .pool_host import HOST_PREFIX

    actor = ray.get_runtime_context().get_actor_name() if ray.is_initialized() else None
    if actor is not None and actor.startswith(HOST_PREFIX):
        return "@" + actor.replace(":", ".")
    return f"{agent}.{replica}"


class RecordedModel:
    """A model client that stores each call it makes (see the module docstring); the
    rest of the inner client's face (``endpoint``, ``model``) passes through."""

    def __init__(
        self, inner: Any, log: ObservationLog, agent: str, replica: int, clock: Clock
    ) -> None:
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
            self._log.add([row])
        except (StorageError, *DatabaseErrors, OSError) as error:  # the call is not failed for it
            _log.warning("model call not stored for agentcast trace: %s", error)


_RECORDED: dict[tuple[int, str], RecordedModel] = {}
_LOGS: dict[tuple[str, str], ObservationLog] = {}
"""The process's call stores by (storage, store name): one, whatever its agents."""


def recorded_model(inner: Any, storage: str, agent: str, replica: int) -> Any:
    """``inner``, its calls stored under ``storage`` (made once per client and root, in
    the process's one store there); ``inner`` itself when the agent has no storage."""
    if not storage:
        return inner
    key = (id(inner), storage)
    found = _RECORDED.get(key)
    if found is None or found.inner is not inner:
        clock = SystemClock()
        place = (storage, store_name(agent, replica))
        log = _LOGS.get(place)
        if log is None:
            log = _LOGS[place] = call_log(storage_root(storage), place[1], clock)
        found = _RECORDED[key] = RecordedModel(inner, log, agent, replica, clock)
    return found
