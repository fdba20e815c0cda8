"""Events name their contract version (plain classes): stored with the event, checked
where the write emits it and where the subscriber's handler takes it; old event tables
are migrated and their rows read as unversioned; ``check_contracts`` covers event types."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from contract_events_for_tests import V2, AnyOrders, Orders, PlacedV2Recorder, Unversioned
from pydantic import BaseModel

from actors import check_contracts, contract
from actors._contracts import ContractId
from actors._events.subscribe import Subscription, deliver, subscriptions
from actors._events.wire import EventBatch
from actors.lowlevel import EventLog, EventRecord, ResourceCore, WriteCall
from runtime import ContractMismatchError, encode

TRACE = "c" * 32


def call(op: str, *args: Any) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), "w", 1, uuid.uuid4().hex, TRACE)


def stored(root: Path, name: str) -> list[tuple[str, str, int]]:
    log = EventLog(root, name)
    try:
        return [(e.event_id, e.contract, e.contract_version) for e in log.read()]
    finally:
        log.close()


def test_a_stored_event_names_the_contract_version_its_class_speaks(tmp_path: Path) -> None:
    core = ResourceCore(AnyOrders(), "orders", tmp_path)
    core.apply_batch([call("place", "A", 1), call("place", "B", 2)])
    assert stored(tmp_path, "orders") == [
        ("orders:1:0", "order_placed", 1),
        ("orders:2:0", "order_placed", 2),
    ]


@pytest.mark.parametrize("op", ["place_v1", "place_unversioned"])
def test_a_write_emitting_a_model_that_fails_its_contract_is_refused(
    tmp_path: Path, op: str
) -> None:
    core = ResourceCore(Orders(), "orders", tmp_path)
    refused, placed = core.apply_batch([call(op, "A"), call("place", "B")])
    assert isinstance(refused.error, ContractMismatchError)
    assert (refused.error.contract, refused.error.expected, refused.error.got) == (
        "order_placed",
        2,
        1 if op == "place_v1" else None,
    )
    assert "resource orders: emit Placed" in str(refused.error)
    assert (placed.error, core.state, core.version) == (None, {"B": 1}, 1)
    assert stored(tmp_path, "orders") == [("orders:1:0", "order_placed", 2)]


_OLD_EVENTS = """
CREATE TABLE events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, version INTEGER NOT NULL,
    type TEXT NOT NULL, payload BLOB NOT NULL, trace_id TEXT NOT NULL,
    provenance TEXT NOT NULL, writer TEXT NOT NULL, at TEXT NOT NULL
);
INSERT INTO events(event_id, version, type, payload, trace_id, provenance, writer, at)
VALUES('orders:0:0', 0, 'Placed', '{"sku":"old"}', 'cccc', 'system', 'w', '2026-01-01');
"""


def test_an_old_events_table_reads_unversioned_then_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "resources" / "orders.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as old:
        old.executescript(_OLD_EVENTS)
    assert stored(tmp_path, "orders") == [("orders:0:0", "", 0)]  # read before the migration
    core = ResourceCore(AnyOrders(), "orders", tmp_path)  # the resource migrates its file
    core.apply_batch([call("place", "B", 2)])
    assert stored(tmp_path, "orders") == [
        ("orders:0:0", "", 0),
        ("orders:1:0", "order_placed", 2),
    ]


def record(seq: int, sku: str, contract: str, version: int) -> EventRecord:
    payload = f'{{"sku":"{sku}"}}'.encode()
    return EventRecord(
        "orders", seq, f"orders:{seq}:0", seq, "Placed", payload, TRACE, "system", "w", "t",
        contract, version,
    )  # fmt: skip


def wire_of(*records: EventRecord) -> tuple[object, ...]:
    return EventBatch.of("orders", records).wire()


def test_the_subscriber_refuses_another_version_and_its_partition_stops_there() -> None:
    seen: list[str] = []

    async def run(spec: Subscription, event: BaseModel) -> None:
        assert isinstance(event, V2.Placed)
        seen.append(event.sku)

    specs = subscriptions(PlacedV2Recorder)
    batch = EventBatch.of("orders", [
        record(1, "a", "order_placed", 2),
        record(2, "old", "", 0),  # stored before events named a version: validated as v2
        record(3, "b", "order_placed", 1),
        record(4, "c", "order_placed", 2),
    ]).wire()  # fmt: skip
    report = asyncio.run(deliver(specs, "agent rec", "rec", batch, run))
    assert (report.done_upto, report.handled, seen) == (2, 2, ["a", "old"])
    assert report.error is not None
    assert report.error.startswith("orders:3:0: ContractMismatchError: agent rec: on_placed:")
    assert (report.reason, report.error_type) == ("contract", "ContractMismatchError")
    assert "expects 'order_placed' version 2, got version 1" in report.error
    other = asyncio.run(
        deliver(specs, "agent rec", "rec", wire_of(record(5, "d", "coupon", 2)), run)
    )
    assert (other.done_upto, other.handled) == (4, 0)
    assert other.error is not None and "got no version of it" in other.error
    assert other.reason == "contract"

    async def failing(spec: Subscription, event: BaseModel) -> None:
        raise ContractMismatchError("a call the handler made", "order_placed", 3, 2)

    mine = asyncio.run(
        deliver(specs, "agent rec", "rec", wire_of(record(6, "e", "order_placed", 2)), failing)
    )
    assert (mine.reason, mine.error_type) == (
        "handler",
        "ContractMismatchError",
    )  # not the boundary


def test_check_contracts_reports_event_types_whose_versions_route_apart() -> None:
    @contract("refund_issued", version=1)
    class RefundIssued(BaseModel):
        amount: int

    @contract("refund_issued", version=2)
    class RefundIssuedV2(BaseModel):  # another class name: subscribers of v1 never hear it
        amount: int
        currency: str = "EUR"

    @contract("coupon_issued", version=1)
    class Placed(BaseModel):  # the name ``order_placed``'s event type is routed under
        code: str

    report = check_contracts(events=[RefundIssued, Placed, V2.Placed])
    assert report.problems == (
        "event refund_issued@v1: refund_issued@v2 is class RefundIssuedV2, not RefundIssued"
        " (events are routed by class name)",
        "event type Placed is both 'coupon_issued' and 'order_placed'",
    )
    assert check_contracts(events=[V2.Placed, Unversioned.Placed]).problems == ()
    default = check_contracts()  # every type a handler or a resource took as an event here
    assert [p for p in default.problems if "order_placed" in p] == []
    assert ContractId("order_placed", 2) in {ContractId(c.name, c.new) for c in default.changes}
