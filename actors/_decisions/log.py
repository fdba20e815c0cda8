"""The decision log: a built-in resource holding an append-only, versioned record per topic.

It is a ``Resource`` like any other, so it is single-writer, durable, idempotent and
audited by the same machinery. Its one write, ``append``, gives the entry the next
version of its topic, and only if the entry names the version it supersedes (the topic's
latest; None for a first decision): an append made on a stale reading of the topic is
refused with ``StaleContextError``, one that names a version that does not exist with
``InvalidArgumentError``. There is no update and no delete: an entry, once appended,
never changes (a retried append with the same idempotency key returns the stored entry).
An entry speaks for its authenticated writer only: another ``author`` is refused with
``UnauthorizedWriterError``, and its provenance is capped at what the log believes of
the writer.

The state holds flat keys, so a write touches (and audits) only its own entry:
``latest:<topic>`` -> the topic's newest version; ``entry:<topic>#<version>`` -> the
entry; ``topics`` -> how many topics exist. ``KEEP_PER_TOPIC`` entries are kept per
topic (older ones leave the state; the resource log keeps them for its retention).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from policies import Provenance, weakest
from runtime import (
    ConfigurationError,
    InvalidArgumentError,
    StaleContextError,
    UnauthorizedWriterError,
)

from .._resource.declare import Resource, read, write
from .._resource.staging import current_writer

DECISIONS = "decisions"
"""The decision log's resource name (its actor is ``resource:decisions``)."""
KEEP_PER_TOPIC = 1000
"""Entries kept per topic in the live state; versions keep counting past it."""
MAX_TOPICS = 10_000
"""Most topics one decision log holds: a new topic past it is refused."""
MAX_TEXT = 8_000
"""Longest decision or rationale, in characters."""

Topic = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class Decision(BaseModel):
    """What an append asks for: the entry without its version.

    Attributes:
        topic: what the decision is about (``"pricing"``); 1-200 characters.
        decision: what was decided (at most ``MAX_TEXT`` characters, not empty).
        rationale: why. Default empty.
        supersedes: the version of ``topic`` this decision replaces: its latest, or None
            for the topic's first decision. Default None.
        author: who decided (stamped by the runtime's face: the agent or ``"system"``).
        provenance: how far the decision is to be trusted (stamped by the face).
        trace_id: the trace of the task that decided (stamped by the face).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: Topic
    decision: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    rationale: Text = ""
    supersedes: Annotated[int, Field(ge=1)] | None = None
    author: Annotated[str, Field(min_length=1, max_length=200)]
    provenance: Provenance
    trace_id: Annotated[str, Field(max_length=64)] = ""


class DecisionEntry(Decision):
    """One entry of the decision log: a ``Decision`` and the version it committed as.

    Attributes:
        version: the entry's version within its topic, from 1, without gaps.
    """

    version: Annotated[int, Field(ge=1)]


def _vouched(entry: Decision) -> Decision:
    """``entry`` as its writer may record it: under the writer's own name, and no more
    trusted than the resource believes that writer (``entry`` as it is when the method
    is called outside a resource, as in a unit test of the class).

    Raises:
        UnauthorizedWriterError: the entry names another author than its writer.
    """
    writer = current_writer()
    if writer is None:
        return entry
    if entry.author != writer.name:
        why = f"writer {writer.name!r} may not record a decision as {entry.author!r}"
        raise UnauthorizedWriterError(DECISIONS, writer.name, why=why)
    return entry.model_copy(update={"provenance": weakest(entry.provenance, writer.mark)})


def _latest_key(topic: str) -> str:
    return f"latest:{topic}"


def _entry_key(topic: str, version: int) -> str:
    return f"entry:{topic}#{version}"  # unique: the version after the last '#' is an int


class DecisionLog(Resource):
    """The decision log's state and its one write (see the module docstring)."""

    def initial_state(self) -> dict[Any, Any]:
        return {"topics": 0}

    @write
    def append(self, state: dict[str, Any], entry: Decision) -> dict[str, Any]:
        """Append ``entry`` as the next version of its topic; return the stored entry.

        Raises:
            UnauthorizedWriterError: ``entry.author`` is not the write's authenticated
                writer.
            StaleContextError: ``entry.supersedes`` is not the topic's latest version
                (another decision came first; read it and decide again).
            InvalidArgumentError: ``entry.supersedes`` names a version that does not exist.
            ConfigurationError: a new topic past ``MAX_TOPICS``.
        """
        entry = _vouched(entry)
        latest: int = state.get(_latest_key(entry.topic), 0)
        named = entry.supersedes or 0
        if named > latest:
            raise InvalidArgumentError(
                f"{DECISIONS}: {entry.topic!r} has no version {named} to supersede "
                f"(its latest is {latest})"
            )
        if named < latest:
            raise StaleContextError(DECISIONS, "append", entry.topic, named, latest, entry.trace_id)
        if latest == 0:
            if state["topics"] >= MAX_TOPICS:
                raise ConfigurationError(f"{DECISIONS}: more than {MAX_TOPICS} topics")
            state["topics"] += 1
        version = latest + 1
        stored = DecisionEntry(**entry.model_dump(), version=version).model_dump(mode="json")
        state[_latest_key(entry.topic)] = version
        state[_entry_key(entry.topic, version)] = stored
        if version > KEEP_PER_TOPIC:
            del state[_entry_key(entry.topic, version - KEEP_PER_TOPIC)]
        return stored

    @read
    def latest(self, state: dict[str, Any], topic: str) -> dict[str, Any] | None:
        """The newest entry of ``topic``, or None if it has none."""
        version = state.get(_latest_key(topic), 0)
        return None if version == 0 else dict(state[_entry_key(topic, version)])

    @read
    def history(self, state: dict[str, Any], topic: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of ``topic`` still kept, oldest first."""
        if type(limit) is not int or limit < 1:
            raise InvalidArgumentError(f"limit must be an int >= 1, not {limit!r}")
        latest = state.get(_latest_key(topic), 0)
        first = max(1, latest - min(limit, KEEP_PER_TOPIC) + 1)
        return [dict(state[_entry_key(topic, v)]) for v in range(first, latest + 1)]

    @read
    def versions(self, state: dict[str, Any], topics: list[str]) -> dict[str, int]:
        """The latest version of each of ``topics`` (0: no decision yet)."""
        if len(topics) > 1000:
            raise InvalidArgumentError("at most 1000 topics per versions read")
        return {t: state.get(_latest_key(t), 0) for t in topics}
