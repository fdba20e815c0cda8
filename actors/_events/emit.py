"""Emitting events from a ``@write``: collected while the write runs, stored with it.

``ResourceCore`` applies a write inside ``collecting``; ``Resource.emit`` appends to the
collection of the write being applied. The core turns what was collected into rows only
once the write's log record exists, and the rows join the batch that commits the record:
an event exists if and only if its write committed. A write that raises (or is refused
after it ran) drops its collection with the undone state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from runtime import EmitOutsideWriteError, MalformedEventError, UnknownEventTypeError

from .._contracts import check_contract, contract_of, note_event_type

if TYPE_CHECKING:
    from .._resource.store import LogRecord

MAX_EVENT_BYTES = 64 * 1024
"""The largest encoded event a write may emit: events are notices of committed state,
not a channel for bulk data (a subscriber reads the resource for that)."""


def type_name(event_type: type[BaseModel]) -> str:
    """The name an event type is stored and subscribed under: its class name."""
    return event_type.__name__


Collected = tuple[str, bytes, str, int]
"""An event the write emitted: (type name, JSON payload, contract name, contract
version); ``("", 0)`` for a type that speaks no contract."""


@dataclass(slots=True)
class Emitted:
    """What the write being applied has emitted so far."""

    resource: str
    allowed: dict[str, type[BaseModel]]
    events: list[Collected] = field(default_factory=list)


_current: ContextVar[Emitted | None] = ContextVar("agentcast_emitting", default=None)


_EMITTED: dict[str, int] = {}
"""How many events ``emit`` took in this process, per resource (a resource's nudger reads
its store only after a batch in which its own count moved: not another resource's, when
more than one lives in the process)."""


def emitted_so_far(resource: str) -> int:
    """How many events ``resource``'s writes emitted in this process so far (refused
    writes' included)."""
    return _EMITTED.get(resource, 0)


@functools.lru_cache(maxsize=256)
def _allowed(emits: tuple[type[BaseModel], ...]) -> dict[str, type[BaseModel]]:
    for declared in emits:
        note_event_type(declared)
    return {type_name(t): t for t in emits}


class collecting:
    """Collect the events ``resource``'s write emits inside the block (``emits``: the
    types the resource declares; empty admits any pydantic model). A class rather than a
    generator-based context manager: it runs around every write."""

    __slots__ = ("_emitted", "_token")

    def __init__(self, resource: str, emits: Sequence[type[BaseModel]]) -> None:
        self._emitted = Emitted(resource, _allowed(tuple(emits)))

    def __enter__(self) -> Emitted:
        self._token = _current.set(self._emitted)
        return self._emitted

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


@functools.lru_cache(maxsize=1024)
def _stored_as(event_type: type[BaseModel]) -> tuple[str, str, int]:
    """The type name and contract (name, version; ``("", 0)``: none) events of
    ``event_type`` are stored under: looked up once per type, not per event."""
    spoken = contract_of(event_type)
    return type_name(event_type), *((spoken.name, spoken.version) if spoken else ("", 0))


def emit(event: BaseModel) -> None:
    """Add ``event`` to the write being applied.

    Raises:
        EmitOutsideWriteError: no write is being applied here.
        MalformedEventError: not a pydantic model, unserializable, or above
            ``MAX_EVENT_BYTES``.
        UnknownEventTypeError: the resource declares ``emits`` without this type.
        ContractMismatchError: the declared type of that name speaks a contract, and
            ``event`` speaks another version of it (or none): a model that fails its
            contract is never stored under it.
    """
    emitted = _current.get()
    if not isinstance(event, BaseModel):
        name = type(event).__name__
        if emitted is None:
            raise EmitOutsideWriteError(name)
        raise MalformedEventError(name, "an event is a pydantic model instance")
    name, contract, contract_version = _stored_as(type(event))
    if emitted is None:
        raise EmitOutsideWriteError(name)
    if emitted.allowed:
        if name not in emitted.allowed:
            raise UnknownEventTypeError(name, f"resource {emitted.resource}")
        check_contract(emitted.allowed[name], event, f"resource {emitted.resource}: emit {name}")
    try:  # JSON bytes straight from pydantic-core: what ``model_dump_json`` returns, encoded
        payload = event.__pydantic_serializer__.to_json(event)
    except Exception as error:  # pydantic raises several kinds for unserializable fields
        raise MalformedEventError(name, f"does not serialize: {error}") from error
    if len(payload) > MAX_EVENT_BYTES:
        raise MalformedEventError(name, f"{len(payload)} bytes > {MAX_EVENT_BYTES}")
    emitted.events.append((name, payload, contract, contract_version))
    _EMITTED[emitted.resource] = _EMITTED.get(emitted.resource, 0) + 1


EventRow = tuple[str, int, str, bytes, str, str, str, str, str, int]
"""(event_id, version, type, payload, trace_id, provenance, writer, at, contract,
contract_version): a row to store; the sequence number is assigned by the store in the
commit."""


def event_rows(record: LogRecord, emitted: Emitted) -> list[EventRow]:
    """The rows of the events ``record``'s write emitted. The event id is
    ``<resource>:<version>:<index>``: unique per resource, and the same on every
    delivery, so idempotency keys derived from it are stable."""
    version, resource = record.version, emitted.resource
    shared = (record.trace_id, record.provenance, record.writer, record.at)
    return [
        (f"{resource}:{version}:{i}", version, name, payload, *shared, contract, contract_version)
        for i, (name, payload, contract, contract_version) in enumerate(emitted.events)
    ]
