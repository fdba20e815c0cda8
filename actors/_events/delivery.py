"""How a replica runs a delivered batch of events through its ``@subscribe`` handlers,
and what it reports (``DeliveryReport``).

The batch is cut into stretches: consecutive events of a batch handler's type go to it in
one call (an ``EventRun``), the rest one event per call; either way in order, each event
as its own task, stopping at the first event that fails. A batch handler that raises is
called again one event at a time from the start of its run, so the report names the event
that fails and checkpoints the ones before it, as a per-event handler's would (those
events ran again: delivery is at least once, their writes deduplicate).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from policies import ConstraintSet, Provenance
from runtime import Envelope, InvalidArgumentError, MalformedEventError, UnknownEventTypeError

from .._agent.task import TaskContext, current_task
from .._contracts import ContractId, check_stored
from .._resource.constraints import carrying
from .runs import EventRun, outside_events
from .subscribe import HandlerCall, Subscription
from .wire import EventBatch


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


def _decoded_at_once(
    specs: dict[str, Subscription], batch: EventBatch, kinds: set[str]
) -> tuple[list[BaseModel | None], set[str]]:
    """The batch's events as their handlers' models, each type's payloads decoded in one
    call (a call per payload cost twice the CPU: measured in tests/event_batch_costs.py),
    and the types left undecoded. A type whose payloads do not all decode is left as
    Nones: its events are then decoded one by one in their turn, so a malformed one fails
    in its place, after the events before it ran."""
    types, payloads = batch.types, batch.payloads
    events: list[BaseModel | None] = [None] * len(types)
    undecoded: set[str] = set()
    for kind in kinds:
        at = range(len(types)) if len(kinds) == 1 else [i for i, t in enumerate(types) if t == kind]
        try:
            decoded = specs[kind].many.validate_python([payloads[i] for i in at])
        except Exception:  # a validator may raise anything: found again in its place
            undecoded.add(kind)
            continue
        for i, event in zip(at, decoded, strict=True):
            events[i] = event
    return events, undecoded


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


def _stretches(
    specs: dict[str, Subscription], types: Sequence[str], kinds: set[str]
) -> Iterator[tuple[Subscription | None, int, int]]:
    """``(spec, start, end)`` over the batch in order: a batch handler's ``spec`` for each
    longest stretch of its type's events, None for the stretches between (one event a
    call). A batch of one type is one stretch."""
    batched = {kind for kind in kinds if specs[kind].batch}
    if len(kinds) == 1 or not batched:
        yield (specs[types[0]] if batched else None), 0, len(types)
        return
    start = 0
    for i in range(1, len(types) + 1):
        if i == len(types) or (
            types[i] != types[i - 1] and (types[i] in batched or types[i - 1] in batched)
        ):
            yield (specs[types[start]] if types[start] in batched else None), start, i
            start = i


class _Delivery:
    """One batch being run: how far it got (``done``: the last event number handled or
    filtered out in order) and how many events ran a handler."""

    def __init__(
        self, specs: dict[str, Subscription], batch: EventBatch, kinds: set[str], where: str,
        group: str, call: HandlerCall,
    ) -> None:  # fmt: skip
        self.events, self.undecoded = _decoded_at_once(specs, batch, kinds)
        self.batch, self.where, self.group, self.call = batch, where, group, call
        seqs = batch.seqs
        self.done, self.handled = (seqs[0] - 1 if seqs else 0), 0

    def task(self, i: int) -> TaskContext:
        """Event ``i``'s task (its envelope built only if the handler asks for it)."""
        return TaskContext(None, event_envelope, self.group, self.batch, i)

    def plain(self, spec: Subscription, start: int, end: int) -> bool:
        """Whether events ``start`` to ``end`` all go to ``spec``'s handler with nothing to
        look at one by one: decoded, naming no contract, no ``where``."""
        return (
            spec.where is None and self.batch.types[start] not in self.undecoded
            and not any(self.batch.contracts[start:end])
        )  # fmt: skip

    def failed(self, i: int, error: Exception, reason: str) -> DeliveryReport:
        detail = f"{self.batch.ids[i]}: {type(error).__name__}: {error}"
        return DeliveryReport(self.done, self.handled, detail[:2000], reason, type(error).__name__)

    # long: one loop over the events, no helper call per event (on the path of every event).
    async def each(
        self, specs: dict[str, Subscription], start: int, end: int
    ) -> DeliveryReport | None:
        """Events ``start`` to ``end`` one per handler call; the report if one fails."""
        batch, events, where, group, call = (
            self.batch, self.events, self.where, self.group, self.call
        )  # fmt: skip
        seqs, contracts, types = batch.seqs, batch.contracts, batch.types
        done, handled = self.done, self.handled
        for i in range(start, end):
            spec, reason = specs[types[i]], "contract"
            try:
                if contracts[i]:  # an event naming no contract is plain data
                    check_stored(spec.event_type, spoken(batch, i), f"{where}: {spec.name}")
                reason = "handler"
                event = events[i]
                if event is None:
                    event = _decoded(spec, batch, i)
                current_task.set(TaskContext(None, event_envelope, group, batch, i))
                if spec.where is None or spec.where(event):
                    await call(spec, event)
                    handled += 1
            except Exception as error:
                self.done, self.handled = done, handled
                return self.failed(i, error, reason)
            done = seqs[i]
        self.done, self.handled = done, handled
        return None

    async def together(self, spec: Subscription, start: int, end: int) -> DeliveryReport | None:
        """Events ``start`` to ``end`` (all of ``spec``'s type) in one call of the batch
        handler ``spec``, those its ``where`` keeps; the report if one fails."""
        if self.plain(spec, start, end):  # no look at each event: the common case
            return await self._run(spec, range(start, end), end)
        batch, events, members = self.batch, self.events, []
        for i in range(start, end):
            reason = "contract"
            try:
                if batch.contracts[i]:
                    check_stored(spec.event_type, spoken(batch, i), f"{self.where}: {spec.name}")
                reason = "handler"
                if events[i] is None:
                    events[i] = _decoded(spec, batch, i)
                if spec.where is not None:
                    current_task.set(self.task(i))
                    if not spec.where(events[i]):
                        continue
                members.append(i)
            except Exception as error:  # the events before it run first
                return await self._run(spec, members, i) or self.failed(i, error, reason)
        return await self._run(spec, members, end)

    async def _run(
        self, spec: Subscription, members: Sequence[int], upto: int
    ) -> DeliveryReport | None:
        """Call the batch handler ``spec`` with events ``members``; every event before
        ``upto`` is then done. If the call raises, one event a call (see the module)."""
        if members:
            try:
                await self.call(spec, self._run_of(spec, members))
                self.handled += len(members)
            except Exception:
                failure = await self._one_by_one(spec, members)
                if failure is not None:
                    return failure
        if upto:
            self.done = self.batch.seqs[upto - 1]
        return None

    async def _one_by_one(
        self, spec: Subscription, members: Sequence[int]
    ) -> DeliveryReport | None:
        seqs = self.batch.seqs
        for i in members:
            if i:
                self.done = seqs[i - 1]  # the events before it: handled or filtered out
            try:
                await self.call(spec, self._run_of(spec, [i]))
            except Exception as error:
                return self.failed(i, error, "handler")
            self.handled += 1
        return None

    def _run_of(self, spec: Subscription, members: Sequence[int]) -> EventRun[Any]:
        # The handler's code outside its loop over the events has no event, so no task.
        current_task.set(outside_events(f"{self.where}: {spec.name}"))
        if type(members) is range:
            events = self.events[members.start : members.stop]
        else:
            events = [self.events[i] for i in members]
        return EventRun(events, members, (event_envelope, self.group, self.batch))


async def deliver(
    specs: dict[str, Subscription], where: str, group: str, wire: Any, call: HandlerCall
) -> DeliveryReport:
    """Run the batch ``wire`` (an ``EventBatch`` on the wire) in order, each event's
    ``where`` and handler as the event's task (``current_task``: its resource writes take
    their idempotency keys and trace from it, as a ``@handler``'s do), a batch handler's
    events in one call (the module); stop at the first failure. An event whose stored
    contract version is not the one the handler's model speaks is such a failure
    (``ContractMismatchError`` in the report): the partition stops before it
    (docs/events.md, "Contracts"). The envelope of an event's task is built only if its
    handler asks for it (a write, a model call).

    Raises:
        InvalidArgumentError: ``wire`` is not an event batch (a forged or garbled call).
        UnknownEventTypeError: the batch holds a type ``specs`` has no handler for
            (nothing of the batch ran: a forged or misrouted call).
    """
    batch, kinds = _checked(specs, wire, where)
    run = _Delivery(specs, batch, kinds, where, group, call)
    # Each event's task is set before its ``where`` runs, and the task from before the
    # batch is set back once at its end (a set and a reset per event cost 15 % of it).
    before = current_task.set(current_task.get())
    try:
        with carrying(_NO_CONSTRAINTS):  # the same for every event: entered once a batch
            for spec, start, end in _stretches(specs, batch.types, kinds):
                if spec is None:
                    failure = await run.each(specs, start, end)
                else:
                    failure = await run.together(spec, start, end)
                if failure is not None:
                    return failure
    finally:
        current_task.reset(before)
    return DeliveryReport(run.done, run.handled)
