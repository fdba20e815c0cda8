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
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, Json, TypeAdapter, ValidationError

from policies import ConstraintSet, Provenance
from runtime import (
    ConfigurationError,
    Envelope,
    InvalidArgumentError,
    MalformedEventError,
    UnknownEventTypeError,
)

from .._agent.task import TaskContext, current_task
from .._contracts import ContractId, check_stored, note_event_type
from .._resource.briefing import briefing, unbriefed
from .._resource.constraints import carrying
from .emit import type_name
from .wire import EventBatch

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

    def wire(self) -> list[Any]:
        """The list a replica's ``deliver`` returns: Ray sends a list of plain values
        through msgpack (about 4 us of CPU to serialize), this dataclass through pickle
        (about 88 us, and more to load in the dispatcher: measured side by side)."""
        return [self.done_upto, self.handled, self.error, self.reason, self.error_type]

    @classmethod
    def from_wire(cls, wire: Any) -> DeliveryReport:
        """The report a replica returned (``wire()``), checked.

        Raises:
            InvalidArgumentError: ``wire`` is not a report of this form.
        """
        if not (
            type(wire) is list and len(wire) == 5 and type(wire[0]) is int
            and type(wire[1]) is int and (wire[2] is None or type(wire[2]) is str)
            and type(wire[3]) is str and type(wire[4]) is str
        ):  # fmt: skip
            raise InvalidArgumentError(f"a delivery report, not {str(wire)[:200]}")
        return cls(*wire)


_NO_CONSTRAINTS = ConstraintSet()  # an event's task carries none: one shared, frozen set


def event_envelope(group: str, batch: EventBatch, i: int) -> Envelope:
    """The envelope a handler of ``batch``'s event ``i`` runs under: the write's trace, and
    a task id derived from the group and the event id, so the handler's writes get the
    same idempotency keys on every delivery of the event."""
    event_id = batch.ids[i]
    return Envelope(
        trace_id=batch.traces[i],
        task_id=f"event:{group}:{event_id}",
        sender=f"resource:{batch.resource}",
        provenance=Provenance(batch.provenances[i]),
        sources=(event_id,),
        constraints=_NO_CONSTRAINTS,
    )


def spoken(batch: EventBatch, i: int) -> ContractId | None:
    """The contract ``batch``'s event ``i`` was stored under, or None."""
    name = batch.contracts[i]
    return ContractId(name, batch.contract_versions[i]) if name else None


HandlerCall = Callable[[Subscription, BaseModel], typing.Awaitable[None]]
"""Calls the handler ``spec`` of an event (``deliver`` runs it as the event's task)."""


def calling(agent: Any) -> HandlerCall:
    """Call ``agent``'s handlers: ``spec.fn(agent, event)``."""
    return lambda spec, event: spec.fn(agent, event)


def _decoded_at_once(
    specs: dict[str, Subscription], batch: EventBatch, kinds: set[str]
) -> list[BaseModel | None]:
    """The batch's events as their handlers' models, each type's payloads decoded in one
    call (a call per payload cost twice the CPU: measured in tests/event_batch_costs.py).
    A type whose payloads do not all decode is left as Nones: its events are then decoded
    one by one in their turn, so a malformed one fails in its place, after the events
    before it ran."""
    types, payloads = batch.types, batch.payloads
    events: list[BaseModel | None] = [None] * len(types)
    for kind in kinds:
        at = range(len(types)) if len(kinds) == 1 else [i for i, t in enumerate(types) if t == kind]
        try:
            decoded = specs[kind].many.validate_python([payloads[i] for i in at])
        except Exception:  # a validator may raise anything: found again in its place
            continue
        for i, event in zip(at, decoded, strict=True):
            events[i] = event
    return events


def _decoded(spec: Subscription, batch: EventBatch, i: int) -> BaseModel:
    """Event ``i`` of ``batch`` as the handler's model.

    Raises:
        MalformedEventError: the payload is not the model.
    """
    try:
        return spec.event_type.model_validate_json(batch.payloads[i])
    except ValidationError as error:
        cls = spec.event_type.__name__
        raise MalformedEventError(batch.types[i], f"not a {cls}: {error}") from error


def _checked(specs: dict[str, Subscription], wire: Any, where: str) -> tuple[EventBatch, set[str]]:
    """The batch ``wire`` carries and its types, each one ``specs`` handles.

    Raises:
        InvalidArgumentError: ``wire`` is not an event batch.
        UnknownEventTypeError: a type ``specs`` has no handler for.
    """
    batch = EventBatch.from_wire(wire, where)
    kinds = set(batch.types)
    for event_type in kinds:
        if event_type not in specs:
            raise UnknownEventTypeError(event_type, where)
    return batch, kinds


# long: one loop over the batch, no helper call per event (on the path of every event).
async def deliver(
    specs: dict[str, Subscription], where: str, group: str, wire: Any, call: HandlerCall
) -> DeliveryReport:
    """Run the batch ``wire`` (an ``EventBatch`` on the wire) in order, each event's
    ``where`` and ``call`` as the event's task (``current_task``: its resource writes take
    their idempotency keys and trace from it, as a ``@handler``'s do); stop at the first
    failure. An event whose stored contract version is not the one the handler's model
    speaks is such a failure (``ContractMismatchError`` in the report): the partition
    stops before it (docs/events.md, "Contracts"). The envelope of an event's task is
    built only if its handler asks for it (a write, a model call).

    Raises:
        InvalidArgumentError: ``wire`` is not an event batch (a forged or garbled call).
        UnknownEventTypeError: the batch holds a type ``specs`` has no handler for
            (nothing of the batch ran: a forged or misrouted call).
    """
    batch, kinds = _checked(specs, wire, where)
    events, seqs, contracts = _decoded_at_once(specs, batch, kinds), batch.seqs, batch.contracts
    done, handled = (seqs[0] - 1 if seqs else 0), 0
    # Each event's task is set before its ``where`` runs, and the task from before the
    # batch is set back once at its end (a set and a reset per event cost 15 % of it).
    before = current_task.set(current_task.get())
    try:
        # The same for every event: entered once a batch. Each event's task then starts
        # briefed on nothing, so that a decision its handler reads briefs it.
        with carrying(_NO_CONSTRAINTS), briefing(()):
            for i, event_type in enumerate(batch.types):
                spec, reason = specs[event_type], "contract"
                try:
                    if contracts[i]:  # an event naming no contract is plain data
                        check_stored(spec.event_type, spoken(batch, i), f"{where}: {spec.name}")
                    reason = "handler"
                    event = events[i]
                    if event is None:
                        event = _decoded(spec, batch, i)
                    current_task.set(TaskContext(None, event_envelope, group, batch, i))
                    unbriefed()
                    if spec.where is None or spec.where(event):
                        await call(spec, event)
                        handled += 1
                except Exception as error:
                    detail = f"{batch.ids[i]}: {type(error).__name__}: {error}"
                    return DeliveryReport(
                        done, handled, detail[:2000], reason, type(error).__name__
                    )
                done = seqs[i]
    finally:
        current_task.reset(before)
    return DeliveryReport(done, handled)
