"""Batch handlers (``@subscribe(EventType, batch=True)``) as plain classes: consecutive
events of their type in one call, in order, each event its own task while the handler's
loop is at it; the same keys however a redelivery cuts the events; nothing to write with
outside the loop; a failure found one event at a time and reported in its place."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from events_for_tests import Restocked, SoldOut, raw_record, record, sold_out_record

from actors import EventRun, subscribe
from actors._agent.agent import _TaskKeys
from actors._agent.task import current_task
from actors._events.delivery import DeliveryReport, deliver
from actors._events.subscribe import calling, subscriptions
from actors._events.wire import EventBatch
from actors.lowlevel import EventRecord
from runtime import ConfigurationError

pytestmark = pytest.mark.timeout(60)


def task_id() -> str:
    task = current_task.get()
    assert task is not None
    return task.envelope.task_id


def stock_event(seq: int) -> str:
    return f"event:b:stock:{seq}:0"


class Batched:
    """A batch handler of ``Restocked`` noting each call's events and the task each ran
    as (failing at ``fail_at``), and a per-event handler of ``SoldOut``."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.fail_at = ""

    @subscribe(Restocked, batch=True)
    async def on_restocks(self, events: EventRun[Restocked]) -> None:
        seen: list[tuple[str, str]] = []
        self.calls.append(seen)
        for event in events:
            if event.sku == self.fail_at:
                raise ValueError(f"no {event.sku}")
            seen.append((event.sku, task_id()))

    @subscribe(SoldOut)
    async def on_sold_out(self, event: SoldOut) -> None:
        self.calls.append([(f"sold out {event.sku}", task_id())])


def run(agent: Any, records: list[EventRecord]) -> DeliveryReport:
    batch = EventBatch.of("stock", records).wire()
    return asyncio.run(deliver(subscriptions(type(agent)), "agent b", "b", batch, calling(agent)))


def restocks(*seqs: int) -> list[EventRecord]:
    return [record(seq, f"s{seq}") for seq in seqs]


def test_a_batch_handler_takes_the_batch_in_one_call_each_event_as_its_own_task() -> None:
    agent = Batched()
    report = run(agent, restocks(1, 2, 3, 4))
    assert (report.done_upto, report.handled, report.error) == (4, 4, None)
    assert agent.calls == [[(f"s{seq}", stock_event(seq)) for seq in (1, 2, 3, 4)]]


def test_other_types_between_cut_the_run_and_everything_stays_in_order() -> None:
    agent = Batched()
    records = [*restocks(1, 2), sold_out_record(3, "x"), *restocks(4, 5)]
    report = run(agent, records)
    assert (report.done_upto, report.handled, report.error) == (5, 5, None)
    assert agent.calls == [
        [("s1", stock_event(1)), ("s2", stock_event(2))],
        [("sold out x", stock_event(3))],
        [("s4", stock_event(4)), ("s5", stock_event(5))],
    ]


def test_a_failing_batch_is_run_again_one_event_a_call_and_fails_in_its_place() -> None:
    agent = Batched()
    agent.fail_at = "s3"
    report = run(agent, restocks(1, 2, 3, 4))
    assert (report.done_upto, report.handled) == (2, 2)
    assert report.error is not None and report.error.startswith("stock:3:0: ValueError: no s3")
    assert report.error_type == "ValueError"
    first_two = [("s1", stock_event(1)), ("s2", stock_event(2))]
    assert agent.calls == [first_two, first_two[:1], first_two[1:], []]


class FailsOnce:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @subscribe(Restocked, batch=True)
    async def on_restocks(self, events: EventRun[Restocked]) -> None:
        self.calls.append([])
        for event in events:
            if len(self.calls) == 1 and event.sku == "s2":
                raise ValueError("once")
            self.calls[-1].append(event.sku)


def test_a_batch_that_fails_once_and_then_not_is_done_whole() -> None:
    agent = FailsOnce()
    report = run(agent, restocks(1, 2, 3))
    assert (report.done_upto, report.handled, report.error) == (3, 3, None)
    assert agent.calls == [["s1"], ["s1"], ["s2"], ["s3"]]


def test_a_bad_payload_runs_the_events_before_it_in_one_call_then_stops_there() -> None:
    agent = Batched()
    report = run(agent, [*restocks(1, 2), raw_record(3, b'{"sku": 3}'), *restocks(4)])
    assert (report.done_upto, report.handled, report.error_type) == (2, 2, "MalformedEventError")
    assert agent.calls == [[("s1", stock_event(1)), ("s2", stock_event(2))]]


class Picky:
    def __init__(self) -> None:
        self.runs: list[list[str]] = []
        self.where_tasks: list[str] = []

    def keep(self, event: Restocked) -> bool:
        self.where_tasks.append(task_id())
        return event.sku != "s2"

    @subscribe(Restocked, batch=True, where=lambda event: PICKY.keep(event))
    async def on_restocks(self, events: EventRun[Restocked]) -> None:
        self.runs.append([event.sku for event in events])


PICKY = Picky()


def test_where_runs_as_each_event_s_task_and_filtered_events_are_done_not_run() -> None:
    PICKY.runs.clear()
    PICKY.where_tasks.clear()
    report = run(PICKY, restocks(1, 2, 3))
    assert (report.done_upto, report.handled, report.error) == (3, 2, None)
    assert PICKY.runs == [["s1", "s3"]]
    assert PICKY.where_tasks == [stock_event(seq) for seq in (1, 2, 3)]
    only_filtered = run(PICKY, restocks(2))
    assert (only_filtered.done_upto, only_filtered.handled, PICKY.runs) == (2, 0, [["s1", "s3"]])


class Keyed:
    """Takes the idempotency key an agent's write would take, per event, in two loops."""

    def __init__(self, loops: int = 1, outside: str = "") -> None:
        self.keys: list[str] = []
        self.loops, self.outside = loops, outside

    @subscribe(Restocked, batch=True)
    async def on_restocks(self, events: EventRun[Restocked]) -> None:
        if self.outside == "before":
            self.keys.append(_TaskKeys("b").next_key()[1])
        for _ in range(self.loops):
            for _event in events:
                self.keys.append(_TaskKeys("b").next_key()[1])
        if self.outside == "after":
            self.keys.append(_TaskKeys("b").next_key()[1])


def test_an_event_s_writes_take_the_same_keys_however_the_events_are_cut() -> None:
    whole, cut = Keyed(), Keyed()
    assert run(whole, restocks(1, 2, 3, 4, 5, 6)).error is None
    for part in ((1, 2), (3,), (4, 5, 6)):
        assert run(cut, restocks(*part)).error is None
    assert whole.keys == cut.keys == [f"{stock_event(seq)}:0" for seq in range(1, 7)]


def test_a_second_loop_over_the_events_continues_their_tasks_so_no_key_repeats() -> None:
    agent = Keyed(loops=2)
    assert run(agent, restocks(1, 2)).error is None
    assert agent.keys == [
        f"{stock_event(1)}:0", f"{stock_event(2)}:0", f"{stock_event(1)}:1", f"{stock_event(2)}:1"
    ]  # fmt: skip


def test_after_an_inner_loop_the_outer_loop_s_event_is_current_again() -> None:
    keys: list[str] = []

    class Nested:
        @subscribe(Restocked, batch=True)
        async def on_restocks(self, events: EventRun[Restocked]) -> None:
            for _outer in events:
                for _inner in events:
                    pass
                keys.append(_TaskKeys("b").next_key()[1])

    assert run(Nested(), restocks(1, 2)).error is None
    assert keys == [f"{stock_event(1)}:0", f"{stock_event(2)}:0"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_write_outside_the_loop_over_the_events_is_refused(where: str) -> None:
    agent = Keyed(outside=where)
    report = run(agent, restocks(1, 2))
    assert (report.done_upto, report.handled, report.error_type) == (0, 0, "ConfigurationError")
    assert report.error is not None and "inside its loop over the events" in report.error
    assert current_task.get() is None  # and the task from before the batch is back


def test_indexing_the_run_reads_events_without_making_them_current() -> None:
    seen: list[Any] = []

    class Indexer:
        @subscribe(Restocked, batch=True)
        async def on_restocks(self, events: EventRun[Restocked]) -> None:
            seen.extend([len(events), events[0].sku, [e.sku for e in events[1:]]])
            with pytest.raises(ConfigurationError):
                _TaskKeys("b").next_key()

    assert run(Indexer(), restocks(1, 2, 3)).error is None
    assert seen == [3, "s1", ["s2", "s3"]]


def test_a_batch_handler_of_the_wrong_shape_is_a_configuration_error() -> None:
    class TwoArgs:
        @subscribe(Restocked, batch=True)
        async def on_restocks(self, events: Any, extra: Any) -> None: ...

    with pytest.raises(ConfigurationError, match=r"async def on_restocks\(self, events\)"):
        subscriptions(TwoArgs)
