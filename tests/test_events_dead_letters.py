"""Dead letters as plain classes (the dispatcher's core, the agent side's ``deliver``, real
SQLite files and a real PostgreSQL): an event a handler failed ``max_delivery_attempts``
times in a row is set aside with its error and the partition goes on past it, in order;
failures are counted per event and reset by a success; a contract refusal is never
counted; a crash between the letter and the checkpoint neither loses nor doubles it; the
count is stored, so a restarted dispatcher goes on from it (a store made before it still
opens)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from events_for_tests import Restocked, Sink, Stock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from actors._agent.task import current_task
from actors._events import checkpoints, dead_letters
from actors._events.core import DispatchCore
from actors._events.dead_letters import after_failure
from actors._events.partition import Pending
from actors._events.subscribe import DeliveryReport, Subscription, deliver
from actors.lowlevel import DeadLetter, EventRecord, EventsHost, ResourceCore, WriteCall
from policies import EventsPolicy
from runtime import (
    InvalidArgumentError,
    Location,
    StorageError,
    UnknownDeadLetterError,
    connect,
    encode,
    transaction,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def running_task_id() -> str:
    """The task id of the event ``deliver`` is running (its handlers' writes derive their
    idempotency keys from it, as the runtime's do)."""
    task = current_task.get()
    assert task is not None, "a handler runs as its event's task"
    return task.envelope.task_id


def write(core: ResourceCore, op: str, *args: Any, key: str | None = None) -> None:
    call = WriteCall(op, encode([list(args), {}]), "w", 1, key or uuid.uuid4().hex, "c" * 32)
    (result,) = core.apply_batch([call])
    assert result.error is None, result.error


class Boom(Exception):
    """The handler's failure."""


class Partition:
    """One consumer group on ``stock``, driven as the dispatcher's host drives it: a
    delivery, the acknowledgement, then (on a handler's failure) ``after_failure``.
    ``fails[sku]`` is how many more times the handler raises for that sku (-1: always).
    Records, in order, the first outcome of each event: ``("handled" | "dead", sku)``."""

    def __init__(self, root: Location, sink: ResourceCore, limit: int | None) -> None:
        self.root, self.sink, self.limit = root, sink, limit
        self.core = DispatchCore(root, EventsPolicy(max_in_flight=3, max_delivery_attempts=limit))
        self.core.register("g", ["Restocked"])
        self.fails: dict[str, int] = {}
        self.outcomes: list[tuple[str, str]] = []
        self.runs: dict[str, int] = {}
        self.specs = {"Restocked": Subscription("on", self._unused, Restocked, None)}

    async def _unused(self, event: BaseModel) -> None:  # pragma: no cover
        raise AssertionError

    async def _run(self, spec: Subscription, event: BaseModel) -> None:
        assert isinstance(event, Restocked)
        self.runs[event.sku] = self.runs.get(event.sku, 0) + 1
        left = self.fails.get(event.sku, 0)
        if left:
            self.fails[event.sku] = left - 1 if left > 0 else left
            raise Boom(f"cannot take {event.sku}")
        write(self.sink, "append", "g", event.sku, key=f"{running_task_id()}:0")
        self._first("handled", event.sku)

    def _first(self, outcome: str, sku: str) -> None:
        if sku not in {s for _, s in self.outcomes}:
            self.outcomes.append((outcome, sku))

    def step(self) -> bool:
        """One delivery; whether there was anything to deliver."""
        pending = self.core.pending("g", "stock")
        if not pending.events:
            self.core.acked("g", "stock", pending, pending.upto)
            return False
        report = asyncio.run(deliver(self.specs, "test", "g", pending.wire, self._run))
        self.core.acked("g", "stock", pending, report.done_upto)
        if report.error is None:
            return True
        letter = after_failure(self.core, "g", "stock", pending, report, NOW)
        if letter is not None:
            self._first("dead", Restocked.model_validate_json(letter.record.payload).sku)
        return True

    def crash(self, flushed: bool) -> None:
        """The dispatcher dies (what it held in memory with it), maybe after a flush."""
        if flushed:
            self.core.close()
        self.core = DispatchCore(self.root, self.core.policy)


_PLAN = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(["good", "flaky", "poison"])),
        st.tuples(st.just("step"), st.integers(1, 4)),
        st.tuples(st.just("crash"), st.booleans()),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=_PLAN, limit=st.integers(1, 3))
def test_exactly_the_always_failing_events_are_dead_lettered_and_order_holds(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[Any, ...]], limit: int
) -> None:
    root = tmp_path_factory.mktemp("dead")
    stock, sink = ResourceCore(Stock(), "stock", root), ResourceCore(Sink(), "sink", root)
    part = Partition(root, sink, limit)
    skus: list[tuple[str, str]] = []
    for action in plan:
        if action[0] == "write":
            sku = f"{action[1]}{len(skus)}"
            skus.append((action[1], sku))
            # flaky: fails fewer times than the limit in all, so never reaches it
            part.fails[sku] = {"good": 0, "flaky": limit - 1, "poison": -1}[action[1]]
            write(stock, "restock", sku, 1)
        elif action[0] == "step":
            for _ in range(action[1]):
                part.step()
        else:
            part.crash(flushed=action[1])
    for _ in range(10 * len(skus) * limit + 2):  # no more crashes: drain
        if not part.step():
            break
    expected = [("dead" if kind == "poison" else "handled", sku) for kind, sku in skus]
    assert part.outcomes == expected  # each once, in order: none passed before its turn
    assert sink.state.get("g", []) == [sku for kind, sku in skus if kind != "poison"]
    letters = part.core.dead.of("g")
    assert [(d.record.seq, d.error_type, d.attempts) for d in letters] == [
        (i + 1, "Boom", limit) for i, (kind, _) in enumerate(skus) if kind == "poison"
    ]
    assert all(lag.lag == 0 for lag in part.core.lags() if lag.resource == "stock")
    # the bound holds across the crashes: each poison event ran exactly ``limit`` times
    poison = [sku for kind, sku in skus if kind == "poison"]
    assert {sku: part.runs[sku] for sku in poison} == dict.fromkeys(poison, limit)


def test_a_restarted_dispatcher_goes_on_counting_and_buries_at_the_limit(
    store_root: Location,
) -> None:
    stock, sink = (
        ResourceCore(Stock(), "stock", store_root),
        ResourceCore(Sink(), "sink", store_root),
    )
    part = Partition(store_root, sink, limit=3)
    part.fails = {"a": -1}
    write(stock, "restock", "a", 1)
    write(stock, "restock", "b", 1)
    part.step()  # the first failure
    part.crash(flushed=False)
    part.step()  # the second, counted on from the store
    part.crash(flushed=True)
    assert part.core.dead.of("g") == []
    part.step()  # the third: buried
    part.step()  # then b
    assert (part.outcomes, part.runs) == ([("dead", "a"), ("handled", "b")], {"a": 3, "b": 1})
    (letter,) = part.core.dead.of("g")
    assert (letter.record.seq, letter.attempts) == (1, 3)
    part.crash(flushed=False)
    assert part.core.attempts("g", "stock", 1) == 1  # the count went with the letter


def test_a_handled_event_s_count_goes_with_the_flush_that_passes_it(
    store_root: Location,
) -> None:
    stock, sink = (
        ResourceCore(Stock(), "stock", store_root),
        ResourceCore(Sink(), "sink", store_root),
    )
    part = Partition(store_root, sink, limit=3)
    part.fails = {"a": 2}
    write(stock, "restock", "a", 1)
    part.step()
    part.step()
    assert DispatchCore(store_root).attempts("g", "stock", 1) == 3  # two stored
    part.step()  # handled: the count goes at the next flush, not before
    assert DispatchCore(store_root).attempts("g", "stock", 1) == 3
    part.core.flush()
    assert DispatchCore(store_root).attempts("g", "stock", 1) == 1
    assert (part.outcomes, part.core.dead.of("g")) == ([("handled", "a")], [])


# The dispatcher's store as the releases before the failure counts made it.
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups(grp TEXT PRIMARY KEY, types TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    grp TEXT NOT NULL,
    resource TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY(grp, resource)
);
CREATE INDEX IF NOT EXISTS checkpoints_resource ON checkpoints(resource, seq);
"""


def test_a_store_made_before_the_failure_counts_opens_and_counts(store_root: Location) -> None:
    old = connect(store_root / "events" / "dispatch.sqlite")
    old.executescript(_OLD_SCHEMA)
    with transaction(old, "an old store") as conn:
        conn.execute("INSERT INTO groups VALUES('g', '[\"Restocked\"]', 't')")
        conn.execute("INSERT INTO checkpoints VALUES('g', 'stock', 1, 't')")
    old.close()
    stock, sink = (
        ResourceCore(Stock(), "stock", store_root),
        ResourceCore(Sink(), "sink", store_root),
    )
    write(stock, "restock", "a", 1)  # passed before the upgrade
    write(stock, "restock", "b", 1)
    part = Partition(store_root, sink, limit=2)
    part.fails = {"b": -1}
    assert part.core.lags(["stock"])[0].checkpoint == 1
    part.step()
    part.crash(flushed=False)
    part.step()
    assert (part.outcomes, part.runs) == ([("dead", "b")], {"b": 2})
    assert [(d.record.seq, d.attempts) for d in part.core.dead.of("g")] == [(2, 2)]


def test_failures_are_counted_per_event_and_reset_by_a_success(store_root: Location) -> None:
    stock, sink = (
        ResourceCore(Stock(), "stock", store_root),
        ResourceCore(Sink(), "sink", store_root),
    )
    part = Partition(store_root, sink, limit=3)
    part.fails = {"a": 2, "b": 2, "c": -1}
    for sku in "abcd":
        write(stock, "restock", sku, 1)
    for _ in range(3):  # a fails twice, then is handled: the count starts again at b
        part.step()
    assert part.outcomes == [("handled", "a")]
    assert part.core.dead.of("g") == []
    part.step()  # b's second failure
    part.step()  # b handled, c's first failure
    assert (part.outcomes, part.runs["c"]) == ([("handled", "a"), ("handled", "b")], 1)
    part.step()
    part.step()  # c's third failure in a row: dead-lettered
    part.step()  # then d
    assert part.outcomes == [("handled", "a"), ("handled", "b"), ("dead", "c"), ("handled", "d")]
    (letter,) = part.core.dead.of("g")
    assert isinstance(letter, DeadLetter)
    assert (letter.group, letter.record.event_id, letter.record.seq) == ("g", "stock:3:0", 3)
    assert (letter.error_type, letter.error, letter.attempts) == ("Boom", "cannot take c", 3)
    assert letter.dead_at == NOW.isoformat()
    assert Restocked.model_validate_json(letter.record.payload).sku == "c"
    assert part.core.dead.counts() == {("g", "stock"): 1}
    stored = DispatchCore(store_root).lags(["stock"])
    assert [lag.checkpoint for lag in stored] == [3]  # stored with the letter


def test_a_success_resets_the_count(tmp_path: Path) -> None:
    stock, sink = ResourceCore(Stock(), "stock", tmp_path), ResourceCore(Sink(), "sink", tmp_path)
    part = Partition(tmp_path, sink, limit=3)
    part.fails = {"a": 2}
    write(stock, "restock", "a", 1)
    for _ in range(3):  # two failures, then handled
        part.step()
    part.core.rewind(["g"], "stock", 0)
    part.fails = {"a": 1}
    part.step()  # a third failure of a, but not in a row: the success came between
    part.step()
    assert (part.outcomes, part.runs["a"], part.core.dead.of("g")) == ([("handled", "a")], 5, [])


def test_none_keeps_a_failing_event_forever(tmp_path: Path) -> None:
    stock, sink = ResourceCore(Stock(), "stock", tmp_path), ResourceCore(Sink(), "sink", tmp_path)
    part = Partition(tmp_path, sink, limit=None)
    part.fails = {"a": -1}
    write(stock, "restock", "a", 1)
    write(stock, "restock", "b", 1)
    for _ in range(20):
        part.step()
    assert (part.outcomes, part.runs, part.core.dead.of("g")) == ([], {"a": 20}, [])


def test_a_contract_refusal_is_never_counted() -> None:
    refused = DeliveryReport(
        0, 0, "e: ContractMismatchError: x", "contract", "ContractMismatchError"
    )
    assert dead_letters.failing([], refused) is None
    core: Any = None  # never reached: nothing to bury
    event = EventRecord(
        "stock", 1, "stock:1:0", 1, "Restocked", b"{}", "c" * 32, "system", "w", "t"
    )
    for _ in range(5):
        assert after_failure(core, "g", "stock", Pending(0, [event], 1), refused, NOW) is None
    handler = DeliveryReport(0, 0, "stock:1:0: Boom: no", "handler", "Boom")
    assert dead_letters.failing([event], handler) == event
    assert dead_letters.message(event, handler) == "no"


def test_a_crash_between_the_letter_and_the_checkpoint_neither_loses_nor_doubles_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock, sink = ResourceCore(Stock(), "stock", tmp_path), ResourceCore(Sink(), "sink", tmp_path)
    part = Partition(tmp_path, sink, limit=2)
    part.fails = {"a": -1}
    write(stock, "restock", "a", 1)
    write(stock, "restock", "b", 1)
    part.step()
    # The letter is inserted, then the checkpoint's statement fails: the transaction is
    # rolled back, as when the process dies between the two.
    monkeypatch.setattr(dead_letters, "UPSERT", "INSERT INTO no_such_table VALUES(?, ?, ?, ?)")
    with pytest.raises(StorageError):
        part.step()
    monkeypatch.undo()
    part.crash(flushed=False)
    assert part.core.dead.of("g") == []
    assert [e.seq for e in part.core.pending("g", "stock").events] == [1, 2]  # not lost
    for _ in range(2):  # the stored count (1) goes on: one more failure, then b
        part.step()
    assert part.outcomes == [("dead", "a"), ("handled", "b")]
    part.crash(flushed=False)  # right after: the letter and the checkpoint are both there
    assert [d.record.seq for d in part.core.dead.of("g")] == [1]
    part.core.rewind(["g"], "stock", 0)  # a replay: a fails twice again, one letter still
    for _ in range(3):
        part.step()
    assert [(d.record.seq, d.attempts) for d in part.core.dead.of("g")] == [(1, 2)]
    assert sink.state["g"] == ["b"]


def test_redelivery_settles_a_letter_and_forget_and_retention_delete_them(
    store_root: Location,
) -> None:
    stock, sink = (
        ResourceCore(Stock(), "stock", store_root),
        ResourceCore(Sink(), "sink", store_root),
    )
    part = Partition(store_root, sink, limit=1)
    part.fails = {"a": -1, "b": -1}
    for sku in "ab":
        write(stock, "restock", sku, 1)
    part.step()
    part.step()
    dead = part.core.dead
    first, _ = dead.of("g")
    failed = DeliveryReport(0, 0, "stock:1:0: Boom: still", "handler", "Boom")
    later = NOW + timedelta(hours=1)
    assert not dead.settle(first, failed, later)
    again = dead.get("g", "stock:1:0")
    assert (again.attempts, again.error, again.dead_at) == (2, "still", later.isoformat())
    assert dead.settle(again, DeliveryReport(1, 1), later)
    with pytest.raises(UnknownDeadLetterError):
        dead.get("g", "stock:1:0")
    with pytest.raises(InvalidArgumentError):
        dead.get("g", 3)  # type: ignore[arg-type]
    assert dead.prune(NOW.isoformat(), 10) == 0  # dead-lettered at NOW: not before it
    assert dead.prune((NOW + timedelta(seconds=1)).isoformat(), 10) == 1
    part.step()  # nothing left; a new letter, then the group forgotten
    write(stock, "restock", "c", 1)
    part.fails["c"] = -1
    part.step()
    assert [d.record.event_id for d in dead.of("g")] == ["stock:3:0"]
    part.core.forget("g")
    assert dead.of("g") == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM dead_letters WHERE grp='g' ORDER BY resource, seq",
        "SELECT * FROM dead_letters WHERE grp='g' AND event_id='e'",
        "DELETE FROM dead_letters WHERE grp='g' AND event_id='e'",
        "DELETE FROM dead_letters WHERE grp='g'",
        "DELETE FROM dead_letters WHERE dead_at IN (SELECT dead_at FROM dead_letters "
        "WHERE dead_at < 'z' ORDER BY dead_at LIMIT 5)",
        "SELECT grp, resource, COUNT(*) FROM dead_letters GROUP BY grp, resource",
    ],
)
def test_every_query_of_the_dead_letters_uses_an_index(tmp_path: Path, query: str) -> None:
    DispatchCore(tmp_path)
    probe = sqlite3.connect(tmp_path / "events" / "dispatch.sqlite")
    plan = " ".join(row[3] for row in probe.execute(f"EXPLAIN QUERY PLAN {query}"))
    # The count per partition reads the whole key index (a covering scan): never the rows.
    assert "USING" in plan and not re.search(r"SCAN dead_letters(?! USING)", plan), plan


class _Ready:
    """What a Ray call returns, already answered: the dispatcher awaits ``future()``."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def future(self) -> concurrent.futures.Future[Any]:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        done.set_result(self._value)
        return done


class _FailingReplica:
    """A subscriber replica whose handler fails at every event it is sent."""

    class _Deliver:
        def remote(self, wire: Any) -> Any:
            return _Ready(DeliveryReport(0, 0, "stock:1:0: Boom: no", "handler", "Boom").wire())

    deliver = _Deliver()


@pytest.mark.parametrize(
    ("limit", "module", "statement"),
    [(1, dead_letters, "UPSERT"), (3, checkpoints, "_COUNT")],  # the letter, the count
)
@pytest.mark.timeout(60)
def test_a_failure_that_cannot_be_stored_is_retried_after_the_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, module: Any, statement: str
) -> None:
    write(ResourceCore(Stock(), "stock", tmp_path), "restock", "a", 1)

    async def deliver_once() -> tuple[tuple[bool, Any], DispatchCore]:
        host = EventsHost(str(tmp_path), "ns", EventsPolicy(max_delivery_attempts=limit))
        for task in host._main:  # the test drives the one delivery itself
            task.cancel()
        core = host._open()
        core.register("g", ["Restocked"])
        host._routes._replicas["g"] = [_FailingReplica()]
        monkeypatch.setattr(module, statement, "INSERT INTO no_such_table VALUES(?)")
        return await host._deliver("g", "stock", core.pending("g", "stock")), core

    (failed, ahead), core = asyncio.run(deliver_once())
    # the partition backs off and delivers again: not a task that died
    assert failed is True and ahead is None
    assert (core.dead.of("g"), core.attempts("g", "stock", 1)) == ([], 1)  # not counted
