"""The form a batch of events crosses to a subscriber replica in: one list of columns.

A list of ``EventRecord`` dataclasses cost Ray about 6.4 us of CPU per event to serialize
(each record pickled field by field through ``__getstate__``) and more to load on the
agent; columns of plain strings, ints and bytes go through Ray's msgpack path at about
0.25 us per event (``tests/event_batch_costs.py``). The outer container is a list, not
a tuple: Ray's msgpack path takes a list as it is, but hands a tuple to pickle whole
(a fifth more CPU to send a batch of 100, and pickle again to load it). The dispatcher
builds the columns once per shared read, so every partition asking the same range sends
the same object.
Only what the agent needs crosses: the number (how far it got), the id (the handler's
task id), the type (routing), the payload, the trace and provenance (its envelope, built
only if the handler needs one) and the contract the event was stored under (the refusal
at the boundary); not the writer, version or time.

The agent checks the shape before it runs anything: a forged or malformed batch is an
``InvalidArgumentError``, never a half-run batch.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime import InvalidArgumentError

from .store import EventRecord

WIRE_TAG = "agentcast.events/1"
"""The first element of a batch on the wire: its form and version."""

_TEXT_COLUMNS = ("ids", "types", "traces", "provenances", "contracts")


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events of one resource, in order, as columns (``wire()`` is what crosses).

    Attributes:
        resource: the resource whose writes emitted them.
        seqs: their sequence numbers, increasing.
        ids: their event ids. types: their type names. payloads: their JSON.
        traces: their writes' trace ids. provenances: their writes' marks.
        contracts, contract_versions: the contract each was stored under (``""``, 0:
            none).
    """

    resource: str
    seqs: Sequence[int]
    ids: Sequence[str]
    types: Sequence[str]
    payloads: Sequence[bytes]
    traces: Sequence[str]
    provenances: Sequence[str]
    contracts: Sequence[str]
    contract_versions: Sequence[int]

    def __len__(self) -> int:
        return len(self.seqs)

    @classmethod
    def of(cls, resource: str, records: Sequence[EventRecord]) -> EventBatch:
        """The columns of ``records`` (events of ``resource``, in order)."""
        return cls(
            resource, [r.seq for r in records], [r.event_id for r in records],
            [r.type for r in records], [r.payload for r in records],
            [r.trace_id for r in records], [r.provenance for r in records],
            [r.contract for r in records], [r.contract_version for r in records],
        )  # fmt: skip

    def wire(self) -> list[Any]:
        """The list a delivery call carries."""
        return [
            WIRE_TAG, self.resource, self.seqs, self.ids, self.types, self.payloads,
            self.traces, self.provenances, self.contracts, self.contract_versions,
        ]  # fmt: skip

    @classmethod
    def from_wire(cls, wire: Any, where: str) -> EventBatch:
        """The batch a delivery call carried, checked column by column.

        Raises:
            InvalidArgumentError: ``wire`` is not a batch of this form: another object,
                another tag, columns of other lengths or element types, or numbers that
                do not increase (a forged or garbled call).
        """
        if not (type(wire) is list and len(wire) == 10 and wire[0] == WIRE_TAG):
            raise InvalidArgumentError(f"{where}: a delivery is an event batch ({WIRE_TAG})")
        if type(wire[1]) is not str:
            raise InvalidArgumentError(f"{where}: the batch names no resource")
        batch = cls(wire[1], *wire[2:])
        _check_columns(batch, where)
        return batch


def _check_columns(batch: EventBatch, where: str) -> None:
    size = len(batch.seqs) if type(batch.seqs) in (list, tuple) else -1
    columns: list[tuple[str, Any, type]] = [
        ("seqs", batch.seqs, int), ("payloads", batch.payloads, bytes),
        ("contract_versions", batch.contract_versions, int),
        *((name, getattr(batch, name), str) for name in _TEXT_COLUMNS),
    ]  # fmt: skip
    for name, column, kind in columns:
        if not (type(column) in (list, tuple) and len(column) == size):
            raise InvalidArgumentError(f"{where}: batch column {name} is not {size} long")
        if not set(map(type, column)) <= {kind}:  # exact types: a bool is no number
            raise InvalidArgumentError(f"{where}: batch column {name} holds a non-{kind.__name__}")
    seqs = batch.seqs
    if not all(map(operator.lt, seqs, seqs[1:])) or (size and seqs[0] < 1):
        raise InvalidArgumentError(f"{where}: batch numbers do not increase from 1 up")
