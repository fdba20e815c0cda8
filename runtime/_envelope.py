"""The envelope: what travels with every task, write and event."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from policies import ConstraintSet, Provenance, describe_constraint, weakest

from ._constraint_errors import ConstraintLoosenedError
from ._ids import new_span_id, new_task_id, new_trace_id
from .errors import InvalidArgumentError

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Trace context, identity and constraints of one unit of work.

    Attributes:
        trace_id: 32 hex digits shared by every task of one run (W3C trace id).
        span_id: 16 hex digits naming this task.
        parent_span_id: the span that caused this one; None at the root.
        task_id: the task this envelope carries; idempotency keys derive from it.
        sender: who sent it: an agent name, "system" or "human".
        provenance: where the content comes from (``Provenance``); a child never
            claims more trust than its parent.
        sources: ids of what the content was derived from (task ids, resource names,
            model calls), for the audit of where a claim came from.
        constraints: the hard limits that travel to every hop (``policies.ConstraintSet``),
            e.g. ``ConstraintSet((ForbidPath(prefix="/prod"),))``; every resource checks
            each write against them. A child may only tighten them (``child``).
        briefed: the decision-log versions the task was briefed with, as sorted
            ``(topic, version)`` pairs (a mapping is accepted and sorted); at most
            ``MAX_BRIEFED_TOPICS``. A child carries them unchanged. A write declared
            ``fresh_context=topic`` is refused if a newer decision on ``topic`` exists.
    """

    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str | None = None
    task_id: str = field(default_factory=new_task_id)
    sender: str = "system"
    provenance: Provenance = Provenance.SYSTEM
    sources: tuple[str, ...] = ()
    constraints: ConstraintSet = field(default_factory=ConstraintSet)
    briefed: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        checked_constraints(self.constraints)
        object.__setattr__(self, "briefed", checked_briefing(self.briefed))

    def child(
        self,
        *,
        sender: str,
        task_id: str | None = None,
        constraints: ConstraintSet | None = None,
        provenance: Provenance | None = None,
        sources: tuple[str, ...] = (),
    ) -> Envelope:
        """The envelope of a task caused by this one: same trace and constraints, or
        ``constraints`` if they are at least as strict (an agent may add or tighten).

        Its provenance is the weakest of this envelope's, ``provenance`` (what the sender
        derived the task from) and, when an agent sends it, UNVERIFIED_AGENT.

        Raises:
            ConstraintLoosenedError: ``constraints`` drop or loosen one of this envelope's.
            InvalidArgumentError: ``constraints`` is not a ``ConstraintSet``.
        """
        carried = self.constraints
        if constraints is not None:
            checked_constraints(constraints)
            missing = [c for c in carried.items if not any(m.implies(c) for m in constraints.items)]
            if missing:
                raise ConstraintLoosenedError(sender, tuple(map(describe_constraint, missing)))
            carried = constraints
        sent_by = Provenance.UNVERIFIED_AGENT if sender != "system" else Provenance.HUMAN
        return replace(
            self,
            span_id=new_span_id(),
            parent_span_id=self.span_id,
            task_id=task_id or new_task_id(),
            sender=sender,
            provenance=weakest(self.provenance, provenance or self.provenance, sent_by),
            sources=sources or (self.task_id,),
            constraints=carried,
        )

    def traceparent(self) -> str:
        """This envelope as a W3C ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-01"

    @classmethod
    def from_traceparent(cls, header: str, *, sender: str = "system") -> Envelope:
        """A root envelope continuing an incoming W3C trace.

        Raises:
            InvalidArgumentError: the header is not a version-00 traceparent.
        """
        match = _TRACEPARENT.match(header.strip())
        if match is None:
            raise InvalidArgumentError(f"not a W3C traceparent: {header!r}")
        return cls(trace_id=match[1], parent_span_id=match[2], sender=sender)


MAX_BRIEFED_TOPICS = 64
"""Most decision topics one task may be briefed on."""
MAX_TOPIC_CHARS = 200
"""Longest decision topic name."""
_MAX_VERSION = 2**63 - 1


def checked_briefing(value: object) -> tuple[tuple[str, int], ...]:
    """``value`` (a mapping or pairs of topic -> version) as sorted, unique pairs.

    Raises:
        InvalidArgumentError: not a mapping or sequence of pairs, a topic that is not a
            non-empty str of at most ``MAX_TOPIC_CHARS``, a version that is not an int
            from 0 to 2**63-1, a topic named twice, or more than ``MAX_BRIEFED_TOPICS``.
    """
    pairs = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(pairs, (list, tuple)) or len(pairs) > MAX_BRIEFED_TOPICS:
        raise InvalidArgumentError(
            f"briefed must be at most {MAX_BRIEFED_TOPICS} (topic, version) pairs"
        )
    checked: dict[str, int] = {}
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidArgumentError(f"briefed: {pair!r:.80} is not a (topic, version) pair")
        topic, version = pair
        if not isinstance(topic, str) or not 0 < len(topic) <= MAX_TOPIC_CHARS:
            raise InvalidArgumentError(f"briefed: topic {topic!r:.80} is not a short str")
        if type(version) is not int or not 0 <= version <= _MAX_VERSION:
            raise InvalidArgumentError(f"briefed: version {version!r:.80} of {topic!r}")
        if topic in checked:
            raise InvalidArgumentError(f"briefed: topic {topic!r} named twice")
        checked[topic] = version
    return tuple(sorted(checked.items()))


def checked_constraints(value: object) -> ConstraintSet:
    """``value`` if it is a constraint set.

    Raises:
        InvalidArgumentError: it is anything else (a dict of prose, a forged object).
    """
    if not isinstance(value, ConstraintSet):
        raise InvalidArgumentError(
            f"constraints must be a ConstraintSet, not {type(value).__name__}"
        )
    return value
