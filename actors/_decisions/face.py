"""The faces of the decision log: ``system.decisions`` (blocking) and
``self.decisions`` inside an agent's handler (awaiting).

Both stamp the entry's author, provenance and trace from where they run (the agent and
its task, or the driver as ``"system"``): user code never passes them. The resource log
also records the authenticated writer of every append.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from policies import Provenance, weakest
from runtime import lookup, resource_actor_name

from .._agent.derived import derived as derived_mark
from .._resource.briefing import briefing, learned
from .._resource.handle import AsyncResourceHandle, ResourceHandle, Write
from .log import DECISIONS, Decision, DecisionEntry, DecisionLog

UNVERIFIED_AGENT = Provenance.UNVERIFIED_AGENT

if TYPE_CHECKING:
    from .._agent.agent import Agent
    from .._system import System


def _decision(
    topic: str, decision: str, rationale: str, supersedes: int | None, author: str, trace: str
) -> Write:
    # What the decision log believes of the writer (it vouches for no agent): an agent's
    # decision is agent output, the driver's is the system's.
    mark = derived_mark() if author == "system" else weakest(derived_mark(), UNVERIFIED_AGENT)
    entry = Decision(
        topic=topic, decision=decision, rationale=rationale, supersedes=supersedes,
        author=author, provenance=mark, trace_id=trace,
    )  # fmt: skip
    return Write(op="append", args=(entry,))


def _entry(value: Any) -> DecisionEntry | None:
    return None if value is None else DecisionEntry.model_validate(value)


class Decisions:
    """The decision log, from a driver (``system.decisions``); see docs/context.md."""

    def __init__(self, handle: ResourceHandle, trace_id: str) -> None:
        self._handle = handle
        self._trace_id = trace_id

    def record(
        self, topic: str, decision: str, *, rationale: str = "", supersedes: int | None = None
    ) -> DecisionEntry:
        """Append a decision as ``"system"``; ``supersedes`` is the topic's latest version
        (None for its first decision).

        Raises:
            StaleContextError: ``supersedes`` is not the topic's latest version.
            InvalidArgumentError: a malformed entry, or ``supersedes`` names no version.
        """
        write = _decision(topic, decision, rationale, supersedes, "system", self._trace_id)
        return DecisionEntry.model_validate(self._handle.write(write).unwrap())

    def latest(self, topic: str) -> DecisionEntry | None:
        """The newest decision on ``topic``, or None."""
        return _entry(self._handle.read("latest", topic).value)

    def history(self, topic: str, limit: int = 100) -> list[DecisionEntry]:
        """The newest ``limit`` decisions on ``topic``, oldest first."""
        return [DecisionEntry.model_validate(e) for e in self._handle.history(topic, limit)]

    def versions(self, *topics: str) -> dict[str, int]:
        """The latest version of each topic (0: none yet)."""
        found: dict[str, int] = self._handle.versions(list(topics))
        return found

    def brief(self, *topics: str) -> tuple[tuple[str, int], ...]:
        """The briefing of a task on ``topics`` at their latest versions, for
        ``Envelope(briefed=...)``."""
        return tuple(sorted(self.versions(*topics).items()))

    @contextmanager
    def briefed(self, *topics: str) -> Iterator[None]:
        """The driver's writes inside the block are briefed on ``topics`` as they are now."""
        with briefing(self.brief(*topics)):
            yield


class AsyncDecisions:
    """The decision log inside an agent's handler (``self.decisions``): the same calls,
    awaited. Reading a topic's latest decision briefs the running task on it."""

    def __init__(self, handle: AsyncResourceHandle, author: str, trace: Callable[[], str]) -> None:
        self._handle = handle
        self._author = author
        self._trace = trace

    async def record(
        self, topic: str, decision: str, *, rationale: str = "", supersedes: int | None = None
    ) -> DecisionEntry:
        """See ``Decisions.record``; the author is this agent. The task is then briefed
        on the new version.

        Raises:
            StaleContextError, InvalidArgumentError: as ``Decisions.record``.
        """
        write = _decision(topic, decision, rationale, supersedes, self._author, self._trace())
        entry = DecisionEntry.model_validate((await self._handle.write(write)).unwrap())
        learned(entry.topic, entry.version)
        return entry

    async def latest(self, topic: str) -> DecisionEntry | None:
        """See ``Decisions.latest``; the running task is briefed on what it returns."""
        entry = _entry((await self._handle.read("latest", topic)).value)
        if entry is not None:
            learned(topic, entry.version)
        return entry

    async def history(self, topic: str, limit: int = 100) -> list[DecisionEntry]:
        """See ``Decisions.history``."""
        found = await self._handle.history(topic, limit)
        return [DecisionEntry.model_validate(e) for e in found]

    async def versions(self, *topics: str) -> dict[str, int]:
        """See ``Decisions.versions``."""
        found: dict[str, int] = await self._handle.versions(list(topics))
        return found


def decisions_of(system: System) -> Decisions:
    """``system.decisions``: the decision log, started on first use."""
    return Decisions(system.resource(DecisionLog, name=DECISIONS), system.trace_id)


def agent_decisions(agent: Agent) -> AsyncDecisions:
    """``self.decisions``: the decision log as this agent, started on first use."""
    from .._agent.agent import current_task

    rt = agent._runtime
    if DECISIONS not in agent._handles:  # the first use in this replica: start it if need be
        ensure_decisions(rt.storage, rt.namespace)

    def trace() -> str:
        task = current_task.get()
        return "" if task is None else task.envelope.trace_id

    return AsyncDecisions(agent.resource(DECISIONS), agent.name, trace)


def ensure_decisions(root: str, namespace: str) -> Any:
    """The decision log's actor in ``namespace``, started (detached: it outlives whoever
    starts it) if it is not running.

    Raises:
        ConfigurationError: it is not running and there is no storage to start it with.
    """
    from policies import ResourcePolicy, WriteAuthority
    from runtime import get_or_spawn

    from .._resource.host import ResourceHost  # the host reaches this module: no cycle

    name = resource_actor_name(DECISIONS)
    if not root:
        return lookup(name, namespace)
    actor, _ = get_or_spawn(
        ResourceHost, DecisionLog, DECISIONS, root, ResourcePolicy(), WriteAuthority.of(None),
        namespace, name=name, namespace=namespace, storage=root, detached=True,
    )  # fmt: skip
    return actor
