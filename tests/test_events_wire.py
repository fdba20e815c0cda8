"""The wire form of a delivered batch (``EventBatch``): what the dispatcher sends, what a
replica accepts (anything else is a typed error before a handler runs), and the task an
event's handler runs as (its envelope built only if the handler asks for it)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from events_for_tests import Restocked, SoldOut
from pydantic import BaseModel, field_validator

from actors import subscribe
from actors._agent.task import TaskContext, current_task
from actors._events.subscribe import DeliveryReport, calling, deliver, subscriptions
from actors._events.wire import WIRE_TAG, EventBatch
from actors.lowlevel import EventRecord
from policies import Provenance
from runtime import InvalidArgumentError, MalformedEventError, UnknownEventTypeError


def record(seq: int, sku: str, *, type_: str = "Restocked") -> EventRecord:
    payload = Restocked(sku=sku, qty=seq, level=seq).model_dump_json().encode()
    return EventRecord(
        "stock", seq, f"stock:{seq}:0", seq, type_, payload, f"{seq:032x}", "verified",
        "writer:0", "2026-01-01T00:00:00+00:00",
    )  # fmt: skip


def wire(*seqs: int) -> list[Any]:
    return EventBatch.of("stock", [record(s, f"s{s}") for s in seqs]).wire()


class Recorder:
    """Notes each event and whether its task's envelope existed before it asked."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, str, str, Provenance]] = []

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        task = current_task.get()
        assert task is not None
        built_before = task._envelope is not None
        envelope = task.envelope
        assert task.envelope is envelope  # built once
        self.seen.append(
            (event.sku, built_before, envelope.task_id, envelope.trace_id, envelope.provenance)
        )


def test_a_batch_crosses_as_columns_and_comes_back_the_same() -> None:
    records = [record(1, "a"), record(2, "b")]
    sent = EventBatch.of("stock", records).wire()
    assert sent == [
        WIRE_TAG, "stock", [1, 2], ["stock:1:0", "stock:2:0"], ["Restocked", "Restocked"],
        [records[0].payload, records[1].payload], [f"{1:032x}", f"{2:032x}"],
        ["verified", "verified"], ["", ""], [0, 0],
    ]  # fmt: skip
    back = EventBatch.from_wire(sent, "test")
    assert (back.resource, list(back.seqs), len(back)) == ("stock", [1, 2], 2)


def test_the_batch_goes_through_rays_msgpack_path_without_pickle() -> None:
    # A tuple is handed to pickle whole: the batch must be a list of plain columns.
    from ray._raylet import MessagePackSerializer

    pickled: list[Any] = []
    MessagePackSerializer.dumps(wire(1, 2), lambda o: pickled.append(o) or len(pickled) - 1)
    assert pickled == []


@pytest.mark.parametrize(
    "report", [DeliveryReport(7, 3), DeliveryReport(6, 2, "stock:7:0: Boom: no", "contract", "B")]
)
def test_a_delivery_report_crosses_as_a_plain_list_through_msgpack(report: DeliveryReport) -> None:
    from ray._raylet import MessagePackSerializer

    pickled: list[Any] = []
    sent = MessagePackSerializer.dumps(report.wire(), lambda o: pickled.append(o) or 0)
    assert pickled == []
    assert DeliveryReport.from_wire(MessagePackSerializer.loads(sent, None)) == report


@pytest.mark.parametrize(
    "bad",
    [
        None, (7, 3, None, "handler", ""), [7, 3, None, "handler"], [7.0, 3, None, "handler", ""],
        [7, True, None, "handler", ""], [7, 3, b"x", "handler", ""], [7, 3, None, None, ""],
        [7, 3, None, "handler", 0], DeliveryReport(7, 3),
    ],
)  # fmt: skip
def test_a_malformed_delivery_report_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        DeliveryReport.from_wire(bad)


_BAD: list[tuple[str, Any]] = [
    ("not a list", tuple(wire(1))),
    ("a dict", {"seqs": [1]}),
    ("records", [record(1, "a")]),
    ("another tag", ["agentcast.events/0", *wire(1)[1:]]),
    ("too short", wire(1)[:9]),
    ("no resource", [WIRE_TAG, None, *wire(1)[2:]]),
    ("a short column", [*wire(1, 2)[:3], ["stock:1:0"], *wire(1, 2)[4:]]),
    ("a column that is not a list", [*wire(1)[:5], b"{}", *wire(1)[6:]]),
    ("a text payload", [*wire(1)[:5], ["{}"], *wire(1)[6:]]),
    ("a bool number", [*wire(1)[:2], [True], *wire(1)[3:]]),
    ("numbers going down", [*wire(1, 2)[:2], [2, 1], *wire(1, 2)[3:]]),
    ("number zero", [*wire(1)[:2], [0], *wire(1)[3:]]),
    ("a str contract version", [*wire(1)[:9], ["1"]]),
]


@pytest.mark.parametrize(("what", "bad"), _BAD, ids=[what for what, _ in _BAD])
def test_a_malformed_batch_is_refused_before_any_handler_runs(what: str, bad: Any) -> None:
    agent = Recorder()
    with pytest.raises(InvalidArgumentError):
        asyncio.run(deliver(subscriptions(Recorder), "agent r", "r", bad, calling(agent)))
    assert agent.seen == []


def test_an_unknown_type_anywhere_in_a_batch_runs_nothing() -> None:
    agent = Recorder()
    batch = EventBatch.of("stock", [record(1, "a"), record(2, "b", type_="Nope")]).wire()
    with pytest.raises(UnknownEventTypeError):
        asyncio.run(deliver(subscriptions(Recorder), "agent r", "r", batch, calling(agent)))
    assert agent.seen == []


def test_a_garbled_payload_stops_the_batch_there_with_the_events_before_done() -> None:
    agent = Recorder()
    good = [record(1, "a"), record(2, "b")]
    garbled = EventRecord("stock", 3, "stock:3:0", 3, "Restocked", b'{"sku": 1}', "0" * 32,
                          "system", "w", "t")  # fmt: skip
    batch = EventBatch.of("stock", [*good, garbled, record(4, "d")]).wire()
    report = asyncio.run(deliver(subscriptions(Recorder), "agent r", "r", batch, calling(agent)))
    assert (report.done_upto, report.handled) == (2, 2)
    assert report.error is not None
    assert report.error.startswith(f"stock:3:0: {MalformedEventError.__name__}")
    assert [sku for sku, *_ in agent.seen] == ["a", "b"]


def test_a_handler_s_task_is_the_event_s_and_its_envelope_is_built_when_asked() -> None:
    agent = Recorder()
    report = asyncio.run(
        deliver(subscriptions(Recorder), "agent r", "grp", wire(5, 7), calling(agent))
    )
    assert (report.done_upto, report.handled, report.error) == (7, 2, None)
    assert agent.seen == [
        ("s5", False, "event:grp:stock:5:0", f"{5:032x}", Provenance.VERIFIED),
        ("s7", False, "event:grp:stock:7:0", f"{7:032x}", Provenance.VERIFIED),
    ]
    assert current_task.get() is None  # reset after each event


def test_a_task_context_needs_an_envelope_or_a_maker() -> None:
    with pytest.raises(TypeError):
        TaskContext()


def _raw(seq: int, payload: bytes, type_: str = "Restocked") -> EventRecord:
    return EventRecord("stock", seq, f"stock:{seq}:0", seq, type_, payload, "0" * 32,
                       "system", "w", "t")  # fmt: skip


def test_each_payload_is_decoded_on_its_own_never_as_part_of_its_neighbours() -> None:
    # Two fragments that are one JSON list of two events only when joined: a replica
    # that decoded a batch's payloads as one document would run both.
    first = b'{"sku": "x", "qty": 1, "level": 1}, {"sku": "y", "qty": 2'
    second = b'"level": 2}'
    batch = EventBatch.of("stock", [record(1, "a"), _raw(2, first), _raw(3, second)]).wire()
    agent = Recorder()
    report = asyncio.run(deliver(subscriptions(Recorder), "agent r", "r", batch, calling(agent)))
    assert (report.done_upto, report.handled) == (1, 1)
    assert report.error is not None
    assert report.error.startswith(f"stock:2:0: {MalformedEventError.__name__}")
    assert [sku for sku, *_ in agent.seen] == ["a"]


class TwoKinds:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @subscribe(Restocked, where=lambda event: event.sku != "skip")
    async def on_restock(self, event: Restocked) -> None:
        self.seen.append(f"restocked {event.sku}")

    @subscribe(SoldOut)
    async def on_sold_out(self, event: SoldOut) -> None:
        self.seen.append(f"sold out {event.sku}")


def _sold_out(seq: int, sku: str) -> EventRecord:
    return _raw(seq, SoldOut(sku=sku).model_dump_json().encode(), "SoldOut")


def test_a_batch_of_two_types_runs_in_order_and_a_bad_one_stops_it_in_its_place() -> None:
    events = [
        record(1, "a"), _sold_out(2, "b"), record(3, "skip"), _sold_out(4, "c"),
        _raw(5, b'{"sku": 5}', "SoldOut"), record(6, "d"),
    ]  # fmt: skip
    agent = TwoKinds()
    batch = EventBatch.of("stock", events).wire()
    report = asyncio.run(deliver(subscriptions(TwoKinds), "agent t", "t", batch, calling(agent)))
    assert (report.done_upto, report.handled) == (4, 3)
    assert report.error is not None and report.error.startswith("stock:5:0: MalformedEventError")
    assert agent.seen == ["restocked a", "sold out b", "sold out c"]
    whole = EventBatch.of("stock", [*events[:4], record(6, "d")]).wire()
    agent.seen.clear()
    report = asyncio.run(deliver(subscriptions(TwoKinds), "agent t", "t", whole, calling(agent)))
    assert (report.done_upto, report.handled, report.error) == (6, 4, None)
    assert agent.seen == ["restocked a", "sold out b", "sold out c", "restocked d"]


def test_the_task_before_a_batch_is_the_task_after_it_whether_it_failed_or_not() -> None:
    outer = TaskContext(None, lambda: None)  # type: ignore[arg-type, return-value]

    async def run(batch: list[Any]) -> tuple[DeliveryReport, TaskContext | None]:
        current_task.set(outer)
        report = await deliver(subscriptions(Recorder), "agent r", "r", batch, calling(Recorder()))
        return report, current_task.get()

    garbled = EventBatch.of("stock", [record(1, "a"), _raw(2, b"{")]).wire()
    for batch, error in ((wire(1, 2), False), (garbled, True)):
        report, after = asyncio.run(run(batch))
        assert (report.error is not None, after) == (error, outer)


class Picky:
    """A subscriber whose ``where`` notes the task it ran as."""

    @subscribe(Restocked, where=lambda event: _note_task(event))
    async def on_restock(self, event: Restocked) -> None:
        pass


_WHERE_TASKS: list[str] = []


def _note_task(event: Restocked) -> bool:
    task = current_task.get()
    _WHERE_TASKS.append("none" if task is None else task.envelope.task_id)
    return event.sku != "s2"


def test_where_runs_as_the_event_s_task_as_its_handler_does() -> None:
    _WHERE_TASKS.clear()
    report = asyncio.run(
        deliver(subscriptions(Picky), "agent p", "p", wire(1, 2, 3), calling(Picky()))
    )
    assert (report.done_upto, report.handled, report.error) == (3, 2, None)
    assert [f"event:p:stock:{seq}:0" for seq in (1, 2, 3)] == _WHERE_TASKS
    assert current_task.get() is None


class Fussy(BaseModel):
    """A model whose validator raises something pydantic does not wrap."""

    sku: str

    @field_validator("sku")
    @classmethod
    def _no_bombs(cls, sku: str) -> str:
        if sku == "bomb":
            raise RuntimeError("a validator that raises its own error")
        return sku


class FussyRecorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @subscribe(Fussy)
    async def on_fussy(self, event: Fussy) -> None:
        self.seen.append(event.sku)


def test_a_validator_raising_its_own_error_stops_the_batch_at_its_event() -> None:
    events = [
        _raw(seq, Fussy.model_construct(sku=sku).model_dump_json().encode(), "Fussy")
        for seq, sku in ((1, "a"), (2, "b"), (3, "bomb"), (4, "c"))
    ]
    agent = FussyRecorder()
    batch = EventBatch.of("stock", events).wire()
    specs = subscriptions(FussyRecorder)
    report = asyncio.run(deliver(specs, "agent f", "f", batch, calling(agent)))
    assert (report.done_upto, report.handled, report.error_type) == (2, 2, "RuntimeError")
    assert report.error is not None and report.error.startswith("stock:3:0: RuntimeError")
    assert agent.seen == ["a", "b"]
