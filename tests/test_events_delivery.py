"""Delivery as plain classes: the dispatcher's core, the agent side's ``deliver``, real
SQLite files and a real PostgreSQL (``store_root``). With random crashes of subscribers
and of the dispatcher, each event's effect lands exactly once per consumer group, in
order."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from events_for_tests import Restocked, Sink, SoldOut, Stock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from actors import subscribe
from actors._agent.task import current_task
from actors._events.core import DispatchCore
from actors._events.partition import Pending
from actors._events.store import events_path, trim_file
from actors._events.subscribe import Subscription, deliver, subscriptions
from actors._events.wire import EventBatch
from actors.lowlevel import ResourceCore, WriteCall
from policies import EventsPolicy
from runtime import (
    ConfigurationError,
    InvalidArgumentError,
    Location,
    StorageError,
    UnknownEventTypeError,
    connect,
    encode,
    transaction,
)

GROUPS = ("audit", "billing")


def running_task_id() -> str:
    """The task id of the event ``deliver`` is running (its handlers' writes derive their
    idempotency keys from it, as the runtime's do)."""
    task = current_task.get()
    assert task is not None, "a handler runs as its event's task"
    return task.envelope.task_id


def write(core: ResourceCore, op: str, *args: Any, key: str | None = None) -> Any:
    call = WriteCall(op, encode([list(args), {}]), "w", 1, key or uuid.uuid4().hex, "c" * 32)
    (result,) = core.apply_batch([call])
    assert result.error is None, result.error
    return result


class Crash(Exception):
    """The replica died mid-batch: the dispatcher gets no report."""


class Subscriber:
    """A replica of ``group``: handles ``Restocked`` by writing to the sink with the
    key the runtime derives (``<task id>:<call index>``); may die after ``die_after``."""

    def __init__(self, group: str, sink: ResourceCore) -> None:
        self.group, self.sink, self.die_after = group, sink, -1
        self.specs = {"Restocked": Subscription("on", self._on, Restocked, None)}
        self.deliveries = 0

    async def _on(self, event: BaseModel) -> None:  # pragma: no cover - run through run
        raise AssertionError

    async def run(self, spec: Subscription, event: BaseModel) -> None:
        if self.die_after == 0:
            raise Crash
        self.die_after -= 1
        self.deliveries += 1
        assert isinstance(event, Restocked)
        write(self.sink, "append", self.group, f"{event.sku}", key=f"{running_task_id()}:0")

    def handle(self, batch: list[Any]) -> Any:
        async def crashing(spec: Subscription, event: BaseModel) -> None:
            await self.run(spec, event)

        report = asyncio.run(deliver(self.specs, "test", self.group, batch, crashing))
        if report.error is not None and "Crash" in report.error:
            raise Crash
        return report


_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 3)),
        st.tuples(st.just("deliver"), st.sampled_from(GROUPS)),
        st.tuples(st.just("read_ahead"), st.sampled_from(GROUPS), st.integers(0, 2)),
        st.tuples(st.just("crash_subscriber"), st.sampled_from(GROUPS), st.integers(0, 3)),
        st.tuples(st.just("crash_dispatcher"), st.booleans(), st.booleans()),
        st.tuples(st.just("rewind"), st.sampled_from(GROUPS), st.integers(0, 6)),
    ),
    max_size=40,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=_ACTIONS)
def test_random_crashes_deliver_each_event_once_per_group_in_order(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[Any, ...]]
) -> None:
    # As the dispatcher drives a partition: the next batch is the one read ahead while
    # the last was out if ``is_next`` says so, else a read; a read ahead may be followed
    # by new writes before its batch is done, a crash, a rewind or a new dispatcher.
    root = tmp_path_factory.mktemp("delivery")
    stock, sink = ResourceCore(Stock(), "stock", root), ResourceCore(Sink(), "sink", root)
    policy = EventsPolicy(max_in_flight=3)
    core = DispatchCore(root, policy)
    for group in GROUPS:
        core.register(group, ["Restocked"])
    subs = {group: Subscriber(group, sink) for group in GROUPS}
    aheads: dict[str, Pending | None] = {}
    skus: list[str] = []

    def add(count: int) -> None:
        for _ in range(count):
            skus.append(f"s{len(skus)}")
            write(stock, "restock", skus[-1], 1)

    def step(group: str, lose_ack: bool = False, ahead_then_writes: int = -1) -> None:
        ahead = aheads.pop(group, None)
        if ahead is not None and core.is_next(group, "stock", ahead):
            pending = ahead
        else:
            pending = core.pending(group, "stock")
        if ahead_then_writes >= 0:
            # The next batch, read while this one is out, is kept whatever happens to
            # this one (a crash, a failure, a lost ack): ``is_next`` must tell.
            aheads[group] = core.pending(group, "stock", after=pending.upto)
            add(ahead_then_writes)
        try:
            report = subs[group].handle(pending.wire)
        except Crash:
            subs[group].die_after = -1  # restarted: resumes after its checkpoint
            return
        if not lose_ack:
            core.acked(group, "stock", pending, report.done_upto)

    for action in actions:
        if action[0] == "write":
            add(action[1])
        elif action[0] == "deliver":
            step(action[1])
        elif action[0] == "read_ahead":
            step(action[1], ahead_then_writes=action[2])
        elif action[0] == "crash_subscriber":
            subs[action[1]].die_after = action[2]
            step(action[1], ahead_then_writes=0)
        elif action[0] == "rewind":
            # a replay goes back (forward, it would skip events on purpose)
            core.rewind([action[1]], "stock", min(action[2], core.position(action[1], "stock")))
        else:  # the dispatcher dies, maybe after a delivery whose ack it never stored,
            step(GROUPS[0], lose_ack=action[1])  # maybe before it flushed its moves
            if action[2]:
                core.close()
            core, aheads = DispatchCore(root, policy), {}
    for group in GROUPS:  # no more crashes: drain
        while core.pending(group, "stock").events:
            step(group, ahead_then_writes=0)
    for group in GROUPS:
        assert sink.state.get(group, []) == skus
    assert all(lag.lag == 0 for lag in core.lags() if lag.resource == "stock")


def test_a_batch_read_ahead_is_next_only_while_the_checkpoint_is_where_it_was_read_after(
    tmp_path: Path,
) -> None:
    stock = ResourceCore(Stock(), "stock", tmp_path)
    core = DispatchCore(tmp_path, EventsPolicy(max_in_flight=2))
    core.register("all", ["Restocked"])
    for sku in "ABCDE":
        write(stock, "restock", sku, 1)
    first = core.pending("all", "stock")
    ahead = core.pending("all", "stock", after=first.upto)
    assert ([e.seq for e in ahead.events], ahead.after) == ([3, 4], 2)
    assert core.position("all", "stock") == 0 and not core.is_next("all", "stock", ahead)
    core.acked("all", "stock", first, 1)  # the handler failed at seq 2
    assert not core.is_next("all", "stock", ahead)  # never past the failure
    core.acked("all", "stock", core.pending("all", "stock"), 3)
    core.rewind(["all"], "stock", 2)
    assert not core.is_next("all", "stock", ahead)  # read before a replay, even to there
    core.rewind(["all"], "stock", 1)
    assert not core.is_next("all", "stock", ahead)
    core.acked("all", "stock", core.pending("all", "stock"), 5)
    assert not core.is_next("all", "stock", core.pending("all", "stock", after=5))  # empty


def test_a_group_passes_events_of_other_types_and_lag_counts_every_event(
    store_root: Location,
) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("sold", ["SoldOut"])
    write(stock, "restock", "A", 1)
    write(stock, "restock", "B", 1)
    write(stock, "sell", "A", 1)  # SoldOut, seq 3
    write(stock, "restock", "C", 1)
    pending = core.pending("sold", "stock")
    assert [(e.seq, e.type) for e in pending.events] == [(3, "SoldOut")]
    assert (pending.after, pending.upto) == (0, 4)
    (lag,) = core.lags()
    assert (lag.group, lag.resource, lag.lag) == ("sold", "stock", 4)
    assert core.acked("sold", "stock", pending, 3)
    (lag,) = core.lags()
    assert (lag.checkpoint, lag.lag) == (4, 0)
    assert core.pending("sold", "stock").events == []


def test_a_full_batch_moves_the_checkpoint_only_to_its_last_event(store_root: Location) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root, EventsPolicy(max_in_flight=2))
    core.register("all", ["Restocked", "SoldOut"])
    for sku in "ABCDE":
        write(stock, "restock", sku, 1)
    first = core.pending("all", "stock")
    assert ([e.seq for e in first.events], first.upto) == ([1, 2], 2)
    core.acked("all", "stock", first, 1)  # the handler failed at seq 2
    again = core.pending("all", "stock")
    assert [e.seq for e in again.events] == [2, 3]


def test_replay_from_the_start_and_a_late_ack_does_not_undo_it(store_root: Location) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("all", ["Restocked"])
    write(stock, "restock", "A", 1)
    write(stock, "restock", "B", 1)
    pending = core.pending("all", "stock")
    core.rewind(["all"], "stock", 0)
    assert not core.acked("all", "stock", pending, 2)  # out before the replay: sent again
    assert core.acked("all", "stock", core.pending("all", "stock"), 2)
    late = core.pending("all", "stock")
    core.rewind(["all"], "stock", 1)
    assert not core.acked("all", "stock", late, 2)  # read after 2, rewound to 1 meanwhile
    assert [e.seq for e in core.pending("all", "stock").events] == [2]
    with pytest.raises(ConfigurationError):
        core.rewind(["nobody"], "stock", 0)


def test_checkpoints_survive_a_new_dispatcher(store_root: Location) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("all", ["Restocked"])
    write(stock, "restock", "A", 1)
    core.acked("all", "stock", core.pending("all", "stock"), 1)
    core.close()
    again = DispatchCore(store_root)
    assert again.groups == {"all": ("Restocked",)}
    assert [lag.checkpoint for lag in again.lags()] == [1]


def test_checkpoint_moves_are_stored_at_the_flush_and_a_crash_before_it_redelivers(
    tmp_path: Path,
) -> None:
    stock = ResourceCore(Stock(), "stock", tmp_path)
    core = DispatchCore(tmp_path)
    core.register("all", ["Restocked"])
    for sku in "ABC":
        write(stock, "restock", sku, 1)
    assert core.acked("all", "stock", core.pending("all", "stock"), 2)
    assert [e.seq for e in core.pending("all", "stock").events] == [3]  # moved in memory
    crashed = DispatchCore(tmp_path)  # the dispatcher died before its flush
    assert [e.seq for e in crashed.pending("all", "stock").events] == [1, 2, 3]
    assert core.flush() == 1
    assert core.flush() == 0  # nothing moved since
    assert [e.seq for e in DispatchCore(tmp_path).pending("all", "stock").events] == [3]


def test_a_replay_is_not_undone_by_an_older_move_flushed_after_it(tmp_path: Path) -> None:
    stock = ResourceCore(Stock(), "stock", tmp_path)
    core = DispatchCore(tmp_path)
    core.register("all", ["Restocked"])
    for sku in "AB":
        write(stock, "restock", sku, 1)
    assert core.acked("all", "stock", core.pending("all", "stock"), 2)  # in memory only
    core.rewind(["all"], "stock", 0)
    assert core.flush() == 0
    assert [e.seq for e in DispatchCore(tmp_path).pending("all", "stock").events] == [1, 2]
    assert [e.seq for e in core.pending("all", "stock").events] == [1, 2]


def test_groups_at_one_checkpoint_share_one_read_until_a_new_event(tmp_path: Path) -> None:
    stock = ResourceCore(Stock(), "stock", tmp_path)
    core = DispatchCore(tmp_path)
    for group in ("a", "b", "c"):
        core.register(group, ["Restocked"])
    core.register("other", ["SoldOut"])
    write(stock, "restock", "A", 1)
    first = core.pending("a", "stock")
    shared = core.pending("b", "stock")
    assert shared.events is first.events  # the same read, not a second one
    assert shared.wire is first.wire  # and the same batch on the wire, built once
    assert core.pending("other", "stock").events == []  # other types: a read of its own
    write(stock, "restock", "B", 1)
    again = core.pending("c", "stock").events
    assert again is not first.events and [e.seq for e in again] == [1, 2]


class Watcher:
    @subscribe(Restocked, where=lambda e: e.qty > 1)
    async def on_restock(self, event: Restocked) -> None:
        self.seen.append(event.sku)

    def __init__(self) -> None:
        self.seen: list[str] = []


def test_where_filters_on_the_agent_and_unknown_types_are_refused(store_root: Location) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    write(stock, "restock", "A", 1)
    write(stock, "restock", "B", 2)
    write(stock, "sell", "A", 1)
    core = DispatchCore(store_root)
    core.register("w", ["Restocked", "SoldOut"])
    events = core.pending("w", "stock").events
    agent = Watcher()
    specs = subscriptions(Watcher)

    async def run(spec: Subscription, event: BaseModel) -> None:
        await spec.fn(agent, event)

    first_two = EventBatch.of("stock", events[:2]).wire()
    report = asyncio.run(deliver(specs, "agent w", "w", first_two, run))
    assert (report.done_upto, report.handled, report.error, agent.seen) == (2, 1, None, ["B"])
    with pytest.raises(UnknownEventTypeError):
        asyncio.run(deliver(specs, "agent w", "w", EventBatch.of("stock", events).wire(), run))


def test_malformed_subscriptions_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        subscribe(dict)  # type: ignore[arg-type]

    class Sync:
        @subscribe(SoldOut)
        def on(self, event: SoldOut) -> None: ...

    with pytest.raises(ConfigurationError):
        subscriptions(Sync)


def test_retention_trims_only_what_every_group_passed_once_the_window_elapsed(
    store_root: Location,
) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("fast", ["Restocked"])
    core.register("slow", ["Restocked"])
    for sku in "ABCD":
        write(stock, "restock", sku, 1)
    core.acked("fast", "stock", core.pending("fast", "stock"), 4)
    slow = core.pending("slow", "stock")
    core.acked("slow", "stock", slow, 2)
    assert core.horizon("stock") == 2
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert trim_file(stock.log.path, core.horizon("stock"), past, 100) == 0  # window
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert trim_file(stock.log.path, core.horizon("stock"), future, 100) == 2
    assert [e.seq for e in core.pending("slow", "stock").events] == [3, 4]
    with pytest.raises(InvalidArgumentError):
        trim_file(stock.log.path, -1, future, 100)


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("resources/stock.sqlite", "SELECT * FROM events WHERE seq > 1 ORDER BY seq LIMIT 5"),
        (
            "resources/stock.sqlite",
            "SELECT * FROM events WHERE seq > 1 AND type IN ('A','B') ORDER BY seq LIMIT 5",
        ),
        (
            "resources/stock.sqlite",
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= 9 "
            "AND at < 'z' ORDER BY seq LIMIT 5)",
        ),
        ("resources/stock.sqlite", "SELECT * FROM events WHERE trace_id = 't' ORDER BY seq"),
        ("events/dispatch.sqlite", "SELECT seq FROM checkpoints WHERE grp='a' AND resource='b'"),
        ("events/dispatch.sqlite", "SELECT MIN(seq) FROM checkpoints WHERE resource='b'"),
    ],
)
def test_every_query_of_the_events_tables_uses_an_index(
    tmp_path: Path, path: str, query: str
) -> None:
    ResourceCore(Stock(), "stock", tmp_path)
    DispatchCore(tmp_path)
    probe = sqlite3.connect(tmp_path / path)
    plan = " ".join(row[3] for row in probe.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "USING" in plan and "SCAN events" not in plan and "SCAN checkpoints" not in plan


def test_an_uncommitted_event_is_neither_delivered_nor_passed(store_root: Location) -> None:
    # The newest number is read from committed rows: an event numbered inside a commit
    # still open (PostgreSQL hands out identity numbers before the commit) must not
    # move a checkpoint past it.
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("sold", ["SoldOut"])
    write(stock, "restock", "A", 1)
    writer = connect(events_path(store_root, "stock"))
    writer.execute("BEGIN IMMEDIATE")
    writer.execute(
        "INSERT INTO events(event_id, version, type, payload, trace_id, provenance, writer, at) "
        "VALUES('stock:9:0', 9, 'SoldOut', '{\"sku\": \"A\"}', 't', 'system', 'w', 'z')"
    )
    try:
        pending = core.pending("sold", "stock")
        assert (pending.events, pending.upto) == ([], 1)
        assert core.acked("sold", "stock", pending, 0)
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert [(e.seq, e.type) for e in core.pending("sold", "stock").events] == [(2, "SoldOut")]


def test_visibility_rules_are_stored_on_each_backend(store_root: Location) -> None:
    from actors._resource.validation import VISIBILITY_STORE, GateRule, load_rules, save_rules
    from policies import Latency, OnTimeout, VisibilityPolicy, VisibilityRule

    assert load_rules(store_root) == ({}, {})
    rule = VisibilityRule(
        notify=("pricing",), latency=Latency.WITHIN_TRANSACTION,
        deadline=timedelta(milliseconds=250), on_timeout=OnTimeout.ALLOW,
    )  # fmt: skip
    save_rules(store_root, VisibilityPolicy(rules={"PromiseMade": rule}), {"pricing": 2})
    assert load_rules(store_root) == (
        {"PromiseMade": GateRule(("pricing",), 0.25, True)},
        {"pricing": 2},
    )
    save_rules(store_root, VisibilityPolicy(), {})  # replaced whole
    assert load_rules(store_root) == ({}, {})
    garbled = connect(store_root / VISIBILITY_STORE)
    with transaction(garbled, "garbling"):
        garbled.execute("UPDATE rules SET doc = '{\"rules\": 1}'")
    garbled.close()
    with pytest.raises(StorageError, match="unreadable visibility rules"):
        load_rules(store_root)  # writes are then refused, never let through unchecked


def test_the_dispatcher_finds_every_resource_store_also_under_a_hashed_schema_name(
    store_root: Location,
) -> None:
    # 60 characters: on PostgreSQL its schema's name is hashed (63 bytes at most); the
    # resource is still found by name, through the comment kept on the schema.
    long = "r" * 60
    stock = ResourceCore(Stock(), long, store_root)
    ResourceCore(Sink(), "sink", store_root)
    write(stock, "restock", "A", 1)
    core = DispatchCore(store_root)
    core.register("all", ["Restocked"])
    assert core.resources() == sorted(["sink", long])
    assert [e.event_id for e in core.pending("all", long).events] == [f"{long}:1:0"]


def test_a_reader_whose_connection_was_cut_reads_again_on_a_new_one(
    store_root: Location,
) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    core = DispatchCore(store_root)
    core.register("all", ["Restocked"])
    write(stock, "restock", "A", 1)
    assert [e.seq for e in core.pending("all", "stock").events] == [1]
    core._logs["stock"]._conn.close()  # as a server restart or a cut session leaves it
    with pytest.raises(StorageError):
        core._logs["stock"].read()
    write(stock, "restock", "B", 1)
    pending = core.pending("all", "stock")  # nothing read and nothing passed meanwhile
    assert ([e.seq for e in pending.events], pending.upto) == ([], 0)
    assert [e.seq for e in core.pending("all", "stock").events] == [1, 2]


@pytest.mark.timeout(60)
def test_a_group_registered_with_a_string_of_types_is_refused(tmp_path: Path) -> None:
    core = DispatchCore(tmp_path)
    for types in ("Restocked", {"Restocked": 1}, ["Restocked", 1]):
        with pytest.raises(ConfigurationError):  # a string is not its letters
            core.register("all", types)  # type: ignore[arg-type]
    assert (core.groups, DispatchCore(tmp_path).groups) == ({}, {})


@pytest.mark.timeout(60)
def test_the_lag_of_a_resource_that_cannot_be_read_now_is_the_last_one_read(
    store_root: Location,
) -> None:
    stock = ResourceCore(Stock(), "stock", store_root)
    write(stock, "restock", "A", 1)
    write(stock, "restock", "B", 1)
    core = DispatchCore(store_root)
    core.register("all", ["Restocked"])
    assert [(lag.resource, lag.lag) for lag in core.lags(["stock"])] == [("stock", 2)]
    core._logs["stock"]._conn.close()  # as a server restart or a cut session leaves it
    assert [(lag.resource, lag.lag) for lag in core.lags(["stock"])] == [("stock", 2)]
    write(stock, "restock", "C", 1)  # read again on a new connection
    assert [(lag.resource, lag.lag) for lag in core.lags(["stock"])] == [("stock", 3)]
