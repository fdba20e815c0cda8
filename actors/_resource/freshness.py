"""Fresh context: a write declared ``@write(fresh_context="topic")`` is refused with
``StaleContextError`` when the decision log holds a newer decision on ``topic`` than the
one the writing task was briefed with.

How the resource learns the newest versions, correctness first. The writing task's
briefing travels on the write (``WriteCall.briefed``). When a call to ``submit`` holds a
fresh-context write, the resource host reads the decision log's latest versions of the
topics it needs, and the log's version they were read at (one read per ``submit`` call,
whatever the number of its writes; none for a call without such writes), after the call
arrived and before its writes are queued; it puts them on the calls (``WriteCall.latest``,
never read from the wire). When the applier checks the write, it catches up from that
version with the decision log's records committed since, read from its durable store (on
this node, like every state file): so the check uses the decisions committed at the
moment the write is applied, and a decision acknowledged before that moment is never
missed. If the versions cannot be read, or the records since have a gap, the write is
refused (``ResourceUnavailableError``, reason ``context_unknown``), never applied on a
guess. A decision log whose actor is gone is started again from its storage, so a missing
log is never taken for an empty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from runtime import (
    Connection,
    DatabaseErrors,
    InvalidArgumentError,
    Location,
    ResourceUnavailableError,
    StaleContextError,
    connect,
    decode,
    encode,
)

from .batch import Refused
from .briefing import Heads
from .calls import WriteCall
from .declare import Operation, Resource, operations

READ_TIMEOUT_S = 30.0
"""How long a host waits for the decision log's versions before it refuses the writes."""
DECISION_LOG = "decisions"  # the decision log's resource name (``actors._decisions.log``)


class FreshContext:
    """The resource host's side: the decision log's latest versions put on the writes
    that need them."""

    def __init__(self, resource_cls: type[Resource], root: str, namespace: str) -> None:
        self._topics = {
            name: op.fresh_context
            for name, op in operations(resource_cls).items()
            if op.fresh_context is not None
        }
        self._root = root
        self._namespace = namespace

    async def stamp(self, calls: list[WriteCall]) -> list[WriteCall]:
        """``calls``, each fresh-context write with the latest versions of its topics
        (left without them if the log could not be read: the write is then refused)."""
        needed = sorted({self._topics[c.op] for c in calls if c.op in self._topics})
        if not needed:
            return calls
        latest = await self._latest(needed)
        return [replace(c, latest=latest) if c.op in self._topics else c for c in calls]

    async def _latest(self, topics: list[str]) -> Heads | None:
        from .._decisions.face import ensure_decisions

        try:
            namespace = self._namespace or ray.get_runtime_context().namespace
            actor = ensure_decisions(self._root, namespace)
            ref = actor.read.remote("versions", encode([[topics], {}]))
            result: Any = await asyncio.wait_for(ref, READ_TIMEOUT_S)
            return Heads(result.version, tuple(sorted(result.value.items())))
        except Exception:  # unknown newest decisions: every write that needs them is refused
            return None


class DecisionCatchUp:
    """The applier's side: from the versions a write was stamped with to the versions
    committed now, by the decision log's records since (read-only, from its store)."""

    def __init__(self, root: Location | None) -> None:
        self._path = None if root is None else root / "resources" / f"{DECISION_LOG}.sqlite"
        self._conn: Connection | None = None

    def latest(self, heads: Heads, topic: str) -> int | None:
        """The newest version of ``topic`` now, or None if it cannot be known."""
        newest = dict(heads.topics).get(topic)
        if newest is None or self._path is None:
            return newest  # not read for this topic: unknown; no store given: as stamped
        try:
            since = self._since(heads.at)
        except DatabaseErrors:
            self.close()
            return None
        if since is None:
            return None
        for entry in since:
            if isinstance(entry, dict) and entry.get("topic") == topic:
                newest = max(newest, int(entry.get("version", 0)))
        return newest

    def _since(self, at: int) -> list[Any] | None:
        """What each append committed after version ``at`` returned, or None on a gap."""
        if self._conn is None:
            if not self._path or not self._path.exists():
                return []  # no decision log on this node's storage: nothing since
            self._conn = _read_only(self._path)
        conn = self._conn
        rows = conn.execute(
            "SELECT version, op, result FROM log WHERE version > ? ORDER BY version", (at,)
        ).fetchall()
        (snapshot,) = conn.execute("SELECT coalesce(max(version), 0) FROM snapshot").fetchone()
        contiguous = [r[0] for r in rows] == list(range(at + 1, at + 1 + len(rows)))
        if not contiguous or snapshot > at + len(rows):
            return None  # records compacted away since: the versions are unknown
        return [decode(result) for _, op, result in rows if op == "append"]

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*DatabaseErrors):
                self._conn.close()
            self._conn = None


def _read_only(path: Location) -> Connection:
    """The decision log's store, read-only where the backend allows it (a SQLite file);
    on PostgreSQL its schema, which every node reaches."""
    if isinstance(path, Path):
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn: Connection = connect(path)
    return conn


def stale_refusal(
    resource: str, call: WriteCall, op: Operation, catch_up: DecisionCatchUp
) -> Refused | None:
    """Why ``call`` may not apply on the briefing it carries, or None (also for a write
    that declares no ``fresh_context``)."""
    topic = op.fresh_context
    if topic is None:
        return None
    latest = None if call.latest is None else catch_up.latest(call.latest, topic)
    if latest is None:
        why = f"the newest decision on {topic!r} could not be read: {call.op} refused"
        return Refused(ResourceUnavailableError(resource, why), "context_unknown")
    briefed = dict(call.briefed).get(topic, 0)
    if briefed > latest:  # no task can have read a version that does not exist
        claim = f"{resource}: malformed write: briefed on {topic!r} version {briefed} > {latest}"
        return Refused(InvalidArgumentError(claim), "malformed")
    if briefed < latest:
        stale = StaleContextError(resource, call.op, topic, briefed, latest, call.trace_id)
        return Refused(stale, "stale_context")
    return None
