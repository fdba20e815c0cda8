"""Fresh context: a write declared ``@write(fresh_context="topic")`` is refused with
``StaleContextError`` when the decision log holds a newer decision on ``topic`` than the
one the writing task was briefed with.

How the resource learns the newest versions, correctness first: the writing task's
briefing travels on the write (``WriteCall.briefed``); when a call to ``submit`` holds a
fresh-context write, the resource host reads the decision log's latest versions of the
topics it needs (one read per ``submit`` call, whatever the number of its writes; none
for a call without such writes) after the call arrived and before the writes are queued,
and puts them on the calls (``WriteCall.latest``, never read from the wire). Reads see
every acknowledged write, so every decision acknowledged before the write was sent is
seen; a decision appended while the write is in flight is concurrent with it, and the
write is ordered first. No cache can lag behind the log: there is none. If the log
cannot be read, the write is refused (``ResourceUnavailableError``, reason
``context_unknown``), never applied on a guess.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import ray

from runtime import (
    InvalidArgumentError,
    ResourceUnavailableError,
    StaleContextError,
    encode,
)

from .batch import Refused
from .calls import WriteCall
from .declare import Operation, Resource, operations

READ_TIMEOUT_S = 30.0
"""How long a host waits for the decision log's versions before it refuses the writes."""


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
        (an empty tuple if the log could not be read: the write is then refused)."""
        if not self._topics:
            return calls
        needed = sorted({self._topics[c.op] for c in calls if c.op in self._topics})
        if not needed:
            return calls
        latest = await self._latest(needed)
        return [replace(c, latest=latest) if c.op in self._topics else c for c in calls]

    async def _latest(self, topics: list[str]) -> tuple[tuple[str, int], ...]:
        from .._decisions.face import ensure_decisions

        try:
            namespace = self._namespace or ray.get_runtime_context().namespace
            actor = ensure_decisions(self._root, namespace)
            ref = actor.read.remote("versions", encode([[topics], {}]))
            result: Any = await asyncio.wait_for(ref, READ_TIMEOUT_S)
            return tuple(sorted(result.value.items()))
        except Exception:  # unknown newest decisions: every write that needs them is refused
            return ()


def stale_refusal(resource: str, call: WriteCall, op: Operation) -> Refused | None:
    """Why ``call`` may not apply on the briefing it carries, or None (also for a write
    that declares no ``fresh_context``)."""
    topic = op.fresh_context
    if topic is None:
        return None
    latest = dict(call.latest or ()).get(topic)
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
