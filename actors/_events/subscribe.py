"""``@subscribe``: an agent's handlers of committed events, found on its class (how a
replica runs a delivered batch through them is ``delivery.py``).

The ``where`` predicate runs on the agent, not on the dispatcher: it is the agent
class's code (the dispatcher never imports user classes, and a predicate that raises
must fail its own group, not stall every group's delivery). A filtered-out event is
acknowledged like a handled one, so the group's checkpoint passes it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, Json, TypeAdapter

from runtime import ConfigurationError

from .._contracts import note_event_type
from .emit import type_name

F = TypeVar("F", bound=Callable[..., Any])
Where = Callable[[Any], bool]
_SUBSCRIBE_ATTR = "__agentcast_subscribe__"
_CACHE_ATTR = "__agentcast_subscriptions__"


def subscribe(
    event_type: type[BaseModel], *, where: Where | None = None, batch: bool = False
) -> Callable[[F], F]:
    """Mark ``async def name(self, event: EventType) -> None`` as a handler of the
    committed events of ``event_type`` from every resource.

    The agent's name is the consumer group: its replicas share the work, each resource's
    events in order, with a durable checkpoint (docs/events.md). Delivery is at least
    once; the handler's resource writes are exactly once, their idempotency keys derived
    from the event id. ``where`` filters on the event (run on the agent).

    With ``batch=True`` the handler is ``async def name(self, events: EventRun[EventType])``
    and takes the consecutive events of a delivered batch in one call (``EventRun``: each
    event's task is current while a ``for`` loop over them is at that event).

    Raises:
        ConfigurationError: ``event_type`` is not a pydantic model class, or ``where``
            is not callable.
    """
    if not (isinstance(event_type, type) and issubclass(event_type, BaseModel)):
        raise ConfigurationError(f"@subscribe takes a pydantic model class, not {event_type!r}")
    if where is not None and not callable(where):
        raise ConfigurationError(f"where must be callable, not {where!r}")

    note_event_type(event_type)

    def mark(fn: F) -> F:
        setattr(fn, _SUBSCRIBE_ATTR, (event_type, where, batch))
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ``@subscribe`` handler (``batch``: it takes an ``EventRun``, not one event)."""

    name: str
    fn: Callable[..., Any]
    event_type: type[BaseModel]
    where: Where | None
    batch: bool = False
    many: TypeAdapter[list[Any]] = field(init=False, repr=False, compare=False)
    """Decodes a list of payloads in one call, each as ``model_validate_json`` would."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "many", TypeAdapter(list[Json[self.event_type]]))  # type: ignore[name-defined]


def subscriptions(cls: type) -> dict[str, Subscription]:
    """An agent class's ``@subscribe`` handlers, by event type name.

    Raises:
        ConfigurationError: a handler that is not ``async``, does not take one argument,
            or shares its event type with another.
    """
    cached: dict[str, Subscription] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is not None:
        return cached
    found: dict[str, Subscription] = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        marked = getattr(fn, _SUBSCRIBE_ATTR, None)
        if marked is None:
            continue
        where = f"{cls.__name__}.{name}"
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        if not inspect.iscoroutinefunction(fn) or len(params) != 1:
            arg = "events" if marked[2] else "event"
            raise ConfigurationError(f"{where} must be 'async def {name}(self, {arg})'")
        key = type_name(marked[0])
        if key in found:
            raise ConfigurationError(f"{where} and {found[key].name} both take {key}")
        found[key] = Subscription(name, fn, *marked)
    setattr(cls, _CACHE_ATTR, found)
    return found


def types_of(cls: type) -> list[str]:
    """The event type names an agent class subscribes to, sorted."""
    return sorted(subscriptions(cls))


HandlerCall = Callable[[Subscription, Any], typing.Awaitable[None]]
"""Calls the handler ``spec`` with an event, or an ``EventRun`` if ``spec.batch``
(``deliver`` runs it as the event's task)."""


def calling(agent: Any) -> HandlerCall:
    """Call ``agent``'s handlers: ``spec.fn(agent, event)``."""
    return lambda spec, event: spec.fn(agent, event)
