"""Events emitted by writes, as plain classes: an event exists iff its write committed,
numbered per resource with no gap, with the write's version, trace and provenance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from events_for_tests import Open, Restocked, SoldOut, Stock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, computed_field

from actors import Resource, write
from actors.lowlevel import EventLog, ResourceCore, WriteCall
from runtime import (
    EmitOutsideWriteError,
    FencedError,
    Location,
    MalformedEventError,
    UnknownEventTypeError,
    connect,
    encode,
)

TRACE = "b" * 32


def call(op: str, *args: Any, key: str | None = None) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), "w", 1, key or uuid.uuid4().hex, TRACE)


def events(root: Path, name: str = "stock") -> list[tuple[int, str, int, str]]:
    log = EventLog(root, name)
    try:
        return [(e.seq, e.event_id, e.version, e.type) for e in log.read()]
    finally:
        log.close()


def test_a_committed_write_stores_its_events_with_the_write(tmp_path: Path) -> None:
    core = ResourceCore(Stock(), "stock", tmp_path)
    core.apply_batch([call("restock", "A", 2), call("sell", "A", 2)])
    log = EventLog(tmp_path, "stock")
    first, second = log.read()
    assert (first.seq, first.event_id, first.version, first.type) == (
        1,
        "stock:1:0",
        1,
        "Restocked",
    )
    assert first.model(Restocked) == Restocked(sku="A", qty=2, level=2)
    assert (second.seq, second.event_id, second.version) == (2, "stock:2:0", 2)
    assert second.model(SoldOut) == SoldOut(sku="A")
    assert (first.trace_id, first.writer, first.provenance) == (TRACE, "w", "unverified_agent")
    assert first.at == next(core.log.records()).at
    assert log.last_seq() == 2


def test_a_write_that_raises_emits_nothing_and_leaves_no_gap(tmp_path: Path) -> None:
    core = ResourceCore(Stock(), "stock", tmp_path)
    results = core.apply_batch(
        [call("restock", "A", 1), call("restock_then_fail", "A", 5), call("restock_twice", "B", 1)]
    )
    assert isinstance(results[1].error, ValueError)
    assert core.state == {"A": 1, "B": 2}
    assert events(tmp_path) == [
        (1, "stock:1:0", 1, "Restocked"),
        (2, "stock:2:0", 2, "Restocked"),
        (3, "stock:2:1", 2, "Restocked"),
    ]


def test_a_batch_that_does_not_commit_stores_no_event(tmp_path: Path) -> None:
    stale = ResourceCore(Stock(), "stock", tmp_path)
    stale.apply_batch([call("restock", "A", 1)])
    newer = ResourceCore(Stock(), "stock", tmp_path)  # fences the first incarnation
    (refused,) = stale.apply_batch([call("restock", "A", 1)])
    assert isinstance(refused.error, FencedError)
    newer.apply_batch([call("restock", "B", 1)])
    assert events(tmp_path) == [(1, "stock:1:0", 1, "Restocked"), (2, "stock:2:0", 2, "Restocked")]


def test_a_repeated_idempotency_key_emits_once(tmp_path: Path) -> None:
    core = ResourceCore(Stock(), "stock", tmp_path)
    core.apply_batch([call("restock", "A", 1, key="k")])
    again = ResourceCore(Stock(), "stock", tmp_path)
    (dup,) = again.apply_batch([call("restock", "A", 1, key="k")])
    assert dup.duplicate
    assert events(tmp_path) == [(1, "stock:1:0", 1, "Restocked")]


def test_emit_outside_a_write_is_a_typed_error() -> None:
    with pytest.raises(EmitOutsideWriteError) as raised:
        Stock().emit(Restocked(sku="A", qty=1, level=1))
    assert raised.value.event_type == "Restocked"


@pytest.mark.parametrize(
    ("op", "args", "error"),
    [
        ("emit_unlisted", (), UnknownEventTypeError),
        ("emit_plain", (), MalformedEventError),
        ("emit_huge", (70_000,), MalformedEventError),
    ],
)
def test_a_bad_event_refuses_its_write(
    tmp_path: Path, op: str, args: tuple[Any, ...], error: type[Exception]
) -> None:
    core = ResourceCore(Stock(), "stock", tmp_path)
    (result,) = core.apply_batch([call(op, *args)])
    assert isinstance(result.error, error)
    assert (core.state, core.version, events(tmp_path)) == ({}, 0, [])


def test_a_resource_without_emits_takes_any_model(tmp_path: Path) -> None:
    core = ResourceCore(Open(), "open", tmp_path)
    core.apply_batch([call("note", "hi")])
    assert events(tmp_path, "open") == [(1, "open:1:0", 1, "Unlisted")]


def test_numbers_are_never_reused_after_retention_deleted_every_event(tmp_path: Path) -> None:
    from actors._events.store import trim

    core = ResourceCore(Stock(), "stock", tmp_path)
    core.apply_batch([call("restock", "A", 1), call("restock", "A", 1)])
    conn = connect(core.log.path)
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert trim(conn, 2, later, 100) == 2
    core.apply_batch([call("restock", "A", 1)])
    assert events(tmp_path) == [(3, "stock:3:0", 3, "Restocked")]
    assert EventLog(tmp_path, "stock").last_seq() == 3


_STEP = st.sampled_from(["restock", "restock_twice", "restock_then_fail", "sell", "emit_plain"])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(_STEP, min_size=1, max_size=4), min_size=1, max_size=5))
def test_events_are_exactly_those_of_committed_writes_in_order(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[str]]
) -> None:
    root = tmp_path_factory.mktemp("emit")
    core = ResourceCore(Stock(), "stock", root)
    expected: list[tuple[str, int]] = []
    for ops in batches:
        results = core.apply_batch([call(op, "A", 1) for op in ops])
        for op, result in zip(ops, results, strict=True):
            if result.error is None:
                emitted = {"restock": 1, "restock_twice": 2, "sell": int(result.value == 0)}[op]
                expected += [
                    (f"stock:{result.version}:{i}", result.version) for i in range(emitted)
                ]
    found = events(root)
    assert [seq for seq, *_ in found] == list(range(1, len(expected) + 1))
    assert [(event_id, version) for _, event_id, version, _ in found] == expected
    committed = {r.version for r in core.log.records()}
    assert {version for _, version in expected} <= committed


@pytest.mark.timeout(120)
def test_a_batch_of_many_events_is_stored_in_order_with_every_field(
    store_root: Location,
) -> None:
    # 240 events in one commit: more than one insert statement holds (99 rows each).
    core = ResourceCore(Stock(), "stock", store_root)
    results = core.apply_batch([call("restock_twice", "A", 1) for _ in range(120)])
    records = {r.version: r for r in core.log.records()}
    log = EventLog(store_root, "stock")
    try:
        found = log.read(limit=1000)
        last = log.last_seq()
    finally:
        log.close()
    writes = [(k, r.version, i) for k, r in enumerate(results) for i in (0, 1)]
    assert [(e.seq, e.event_id, e.version, e.type, e.model(Restocked).level) for e in found] == [
        (n, f"stock:{version}:{i}", version, "Restocked", 2 * k + i + 1)
        for n, (k, version, i) in enumerate(writes, start=1)
    ]
    assert last == 240
    assert {
        (e.trace_id, e.provenance, e.writer, e.at, e.contract, e.contract_version) for e in found
    } == {(TRACE, "unverified_agent", "w", records[1].at, "", 0)}


class _Inner(BaseModel):
    when: datetime


class _Shaped(BaseModel):
    """Serialization settings an event's stored JSON must follow, as ``model_dump_json``."""

    model_config = ConfigDict(serialize_by_alias=True)
    sku: str = Field(alias="SKU")
    inner: _Inner
    skipped: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"{self.sku}!"


class _Shaper(Resource):
    @write
    def shape(self, state: dict[str, Any], sku: str) -> None:
        state["sku"] = sku
        self.emit(_Shaped(SKU=sku, inner=_Inner(when=datetime(2026, 1, 2, tzinfo=UTC))))


def test_an_events_payload_is_the_json_its_model_dumps(tmp_path: Path) -> None:
    core = ResourceCore(_Shaper(), "shaper", tmp_path)
    core.apply_batch([call("shape", "é-1")])
    log = EventLog(tmp_path, "shaper")
    try:
        (event,) = log.read()
    finally:
        log.close()
    when = _Inner(when=datetime(2026, 1, 2, tzinfo=UTC))
    assert event.payload == _Shaped(SKU="é-1", inner=when).model_dump_json().encode()
    assert (
        event.payload
        == (
            '{"SKU":"é-1","inner":{"when":"2026-01-02T00:00:00Z"},"skipped":null,"label":"é-1!"}'
        ).encode()
    )
