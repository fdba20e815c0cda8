"""``@subscribe``: an agent's handlers of committed events, and how a replica runs a
delivered batch of them.

The ``where`` predicate runs here, on the agent, not on the dispatcher: it is the agent
class's code (the dispatcher never imports user classes, and a predicate that raises
must fail its own group, not stall every group's delivery). A filtered-out event is
acknowledged like a handled one, so the group's checkpoint passes it.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from policies import Provenance
from runtime import ConfigurationError, Envelope, InvalidArgumentError, UnknownEventTypeError

from .._contracts import ContractId, check_stored, note_event_type
from .emit import type_name
from .store import EventRecord

F = TypeVar("F", bound=Callable[..., Any])
Where = Callable[[Any], bool]
_SUBSCRIBE_ATTR = "__agentcast_subscribe__"
_CACHE_ATTR = "__agentcast_subscriptions__"


def subscribe(event_type: type[BaseModel], *, where: Where | None = None) -> Callable[[F], F]:
    """Mark ``async def name(self, event: EventType) -> None`` as a handler of the
    committed events of ``event_type`` from every resource.

    The agent's name is the consumer group: its replicas share the work, each resource's
    events in order, with a durable checkpoint (docs/events.md). Delivery is at least
    once; the handler's resource writes are exactly once, their idempotency keys derived
    from the event id. ``where`` filters on the event (run on the agent).

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
        setattr(fn, _SUBSCRIBE_ATTR, (event_type, where))
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Subscription:
    """One ``@subscribe`` handler."""

    name: str
    fn: Callable[..., Any]
    event_type: type[BaseModel]
    where: Where | None


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
            raise ConfigurationError(f"{where} must be 'async def {name}(self, event)'")
        key = type_name(marked[0])
        if key in found:
            raise ConfigurationError(f"{where} and {found[key].name} both take {key}")
        found[key] = Subscription(name, fn, *marked)
    setattr(cls, _CACHE_ATTR, found)
    return found


def types_of(cls: type) -> list[str]:
    """The event type names an agent class subscribes to, sorted."""
    return sorted(subscriptions(cls))


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a replica did with a delivered batch.

    Attributes:
        done_upto: the sequence number of the last event handled (or filtered out) in
            order; the batch's first event's ``seq - 1`` if none was.
        handled: how many events ran a handler (the rest were filtered out).
        error: why the event after ``done_upto`` failed; None if all were done.
        reason: who refused it: ``handler`` (the handler, its ``where`` or its model
            raised) or ``contract`` (the event speaks another contract version than the
            handler: it waits for a replica that speaks it, never dead-lettered).
        error_type: the class name of the error (``""`` if none).
    """

    done_upto: int
    handled: int
    error: str | None = None
    reason: str = "handler"
    error_type: str = ""


def event_envelope(group: str, record: EventRecord) -> Envelope:
    """The envelope a handler of ``record`` runs under: the write's trace, and a task id
    derived from the group and the event id, so the handler's writes get the same
    idempotency keys on every delivery of the event."""
    return Envelope(
        trace_id=record.trace_id,
        task_id=f"event:{group}:{record.event_id}",
        sender=f"resource:{record.resource}",
        provenance=Provenance(record.provenance),
        sources=(record.event_id,),
    )


def spoken(record: EventRecord) -> ContractId | None:
    """The contract ``record`` was stored under, or None."""
    return ContractId(record.contract, record.contract_version) if record.contract else None


Runner = Callable[[Subscription, BaseModel, Envelope], typing.Awaitable[None]]


def runner(agent: Any) -> Runner:
    """Run a handler of ``agent`` as a task of the envelope: its resource writes take
    their idempotency keys and trace from it, as a ``@handler``'s do."""
    from .._agent.agent import TaskContext, current_task
    from .._resource.constraints import carrying

    async def run(spec: Subscription, event: BaseModel, envelope: Envelope) -> None:
        token = current_task.set(TaskContext(envelope))
        try:
            with carrying(envelope.constraints):
                await spec.fn(agent, event)
        finally:
            current_task.reset(token)

    return run


async def deliver(
    specs: dict[str, Subscription], where: str, group: str, batch: list[EventRecord],
    run: Runner,
) -> DeliveryReport:  # fmt: skip
    """Run ``batch`` in order through ``run`` (which calls the handler under the
    envelope); stop at the first failure. An event whose stored contract version is not
    the one the handler's model speaks is such a failure (``ContractMismatchError`` in
    the report): the partition stops before it (docs/events.md, "Contracts").

    Raises:
        InvalidArgumentError: ``batch`` is not a list of ``EventRecord`` (a forged call).
        UnknownEventTypeError: the batch holds a type ``specs`` has no handler for
            (nothing of the batch ran: a forged or misrouted call).
    """
    if not (isinstance(batch, list) and all(isinstance(r, EventRecord) for r in batch)):
        raise InvalidArgumentError(f"{where}: a delivery is a list of EventRecord"[:300])
    for record in batch:
        if record.type not in specs:
            raise UnknownEventTypeError(record.type, where)
    done, handled = (batch[0].seq - 1 if batch else 0), 0
    for record in batch:
        spec, reason = specs[record.type], "contract"
        try:
            check_stored(spec.event_type, spoken(record), f"{where}: {spec.name}")
            reason = "handler"
            event = record.model(spec.event_type)
            if spec.where is None or spec.where(event):
                await run(spec, event, event_envelope(group, record))
                handled += 1
        except Exception as error:
            detail = f"{record.event_id}: {type(error).__name__}: {error}"
            return DeliveryReport(done, handled, detail[:2000], reason, type(error).__name__)
        done = record.seq
    return DeliveryReport(done, handled)
