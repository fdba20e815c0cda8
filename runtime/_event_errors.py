"""The event errors of the tree drawn in ``runtime.errors``: an event a ``@write`` may not
emit, and a subscription or delivery naming a type nobody declared."""

from __future__ import annotations

from .errors import AgentcastError


class EventError(AgentcastError):
    """Refused by the events layer: emitting, subscribing or delivering."""


class EmitOutsideWriteError(EventError):
    """``emit`` was called outside a ``@write`` the resource is applying: an event exists
    only with the committed write that emitted it, so there is nothing to attach it to.

    Attributes:
        event_type: the type name of the event.
    """

    def __init__(self, event_type: str) -> None:
        super().__init__(f"emit({event_type}) outside a @write: events come only from writes")
        self.event_type = event_type


class MalformedEventError(EventError):
    """An event that is not a pydantic model instance, does not serialize, exceeds the
    size limit, or (on delivery) does not validate as the subscriber's model. A write that
    emits one is refused and leaves the state unchanged.

    Attributes:
        event_type: the type name of what was given.
        detail: what is wrong with it.
    """

    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"malformed event {event_type}: {detail}")
        self.event_type = event_type
        self.detail = detail


class UnknownEventTypeError(EventError):
    """An event type that the place it reached does not know: a resource emitting a type
    outside its declared ``emits``, or a delivery of a type the agent has no
    ``@subscribe`` handler for.

    Attributes:
        event_type: the type name.
        where: the resource or agent that does not know it.
    """

    def __init__(self, event_type: str, where: str) -> None:
        super().__init__(f"{where}: unknown event type {event_type!r}")
        self.event_type = event_type
        self.where = where


class UnknownDeadLetterError(EventError):
    """A redelivery of an event that is not among the consumer group's dead letters
    (never dead-lettered, already redelivered, or gone under retention).

    Attributes:
        group: the consumer group.
        event_id: the event asked for.
    """

    def __init__(self, group: str, event_id: str) -> None:
        super().__init__(f"no dead letter {event_id!r} in consumer group {group!r}")
        self.group = group
        self.event_id = event_id
