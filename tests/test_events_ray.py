"""Events on a real Ray: delivery to a consumer group in order, exactly-once effects, and
resumption after the subscriber, the dispatcher or the resource is killed; replay. The
key cases run on both storage backends (``any_system``: SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
import ray
from backends import any_system as any_system
from events_for_tests import Recorder, Restocked, Sink, SlowRecorder, Stock
from pydantic import BaseModel
from waiting import wait_until

from actors import Agent, Subscriptions, System, handler, subscribe
from actors._agent.group import replicas_of
from actors._cli.main import main
from actors._events.subscribe import DeliveryReport
from actors._events.wire import EventBatch
from actors.lowlevel import EventLog, EventRecord
from policies import EventsPolicy
from runtime import (
    ConfigurationError,
    InvalidArgumentError,
    UnknownEventTypeError,
    lookup,
    resource_actor_name,
)


def sink_items(system: System, group: str) -> list[str]:
    state = system.log("sink").replay()
    return list(state.get(group, []))


def restock(system: System, skus: list[str]) -> None:
    stock = system.get_resource("stock")
    for sku in skus:
        stock.restock(sku, 1)


def start(system: System, agent: Any = Recorder, replicas: int = 1) -> Subscriptions:
    system.resource(Stock, name="stock")
    system.resource(Sink, name="sink")
    system.agent(agent, name="recorder", replicas=replicas)
    return Subscriptions(system.namespace)


@pytest.mark.timeout(180)
def test_every_event_reaches_the_group_once_in_order(any_system: System) -> None:
    subs = start(any_system, replicas=2)
    skus = [f"s{i}" for i in range(30)]
    restock(any_system, skus)
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 30, "all 30 handled", 120)
    subs.wait_caught_up()
    assert sink_items(any_system, "recorder") == skus
    (row,) = [r for r in subs.status() if r["resource"] == "stock"]
    assert (row["checkpoint"], row["last_seq"], row["lag"], row["error"]) == (30, 30, 0, None)


@pytest.mark.timeout(240)
def test_a_killed_subscriber_resumes_after_its_checkpoint(any_system: System) -> None:
    subs = start(any_system, SlowRecorder)
    skus = [f"s{i}" for i in range(60)]
    restock(any_system, skus[:40])
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 5, "some handled", 120)
    any_system.kill("recorder")  # mid-stream: its epoch is fenced, its replica killed
    restock(any_system, skus[40:])
    any_system.agent(SlowRecorder, name="recorder")  # a new incarnation of the group
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 60, "all 60 handled", 180)
    subs.wait_caught_up()
    assert sink_items(any_system, "recorder") == skus


@pytest.mark.timeout(240)
def test_a_killed_dispatcher_resumes_every_partition(any_system: System) -> None:
    subs = start(any_system, SlowRecorder)
    skus = [f"s{i}" for i in range(60)]
    restock(any_system, skus[:40])
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 5, "some handled", 120)
    ray.kill(lookup("events", any_system.namespace), no_restart=False)  # Ray restarts it
    restock(any_system, skus[40:])
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 60, "all 60 handled", 180)
    subs.wait_caught_up()
    assert sink_items(any_system, "recorder") == skus


@pytest.mark.timeout(240)
def test_a_killed_resource_loses_no_committed_event(system: System) -> None:
    subs = start(system)
    skus = [f"s{i}" for i in range(40)]
    restock(system, skus[:20])
    ray.kill(lookup(resource_actor_name("stock"), system.namespace), no_restart=False)
    wait_until(lambda: system.get_resource("stock"), "the stock is back", 120)
    restock(system, skus[20:])
    wait_until(lambda: len(sink_items(system, "recorder")) >= 40, "all 40 handled", 180)
    subs.wait_caught_up()
    assert sink_items(system, "recorder") == skus


@pytest.mark.timeout(180)
def test_replay_from_the_start_runs_handlers_again_and_writes_nothing_twice(
    system: System,
) -> None:
    subs = start(system)
    skus = [f"s{i}" for i in range(10)]
    restock(system, skus)
    wait_until(lambda: len(sink_items(system, "recorder")) >= 10, "all 10 handled", 120)
    subs.wait_caught_up()
    handled = [r["handled"] for r in subs.status() if r["resource"] == "stock"]
    subs.replay("recorder", "stock")
    wait_until(
        lambda: (
            [r["handled"] for r in subs.status() if r["resource"] == "stock"] == [handled[0] + 10]
        ),
        "the replay handled",
    )
    subs.wait_caught_up()
    assert sink_items(system, "recorder") == skus


@pytest.mark.timeout(180)
def test_status_shows_each_subscriber_lag(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    subs = start(system)
    restock(system, ["a", "b", "c"])
    wait_until(lambda: len(sink_items(system, "recorder")) >= 3, "all 3 handled", 120)
    subs.wait_caught_up()
    assert main(["status", "--namespace", system.namespace, "--json"]) == 0
    (found,) = json.loads(capfd.readouterr().out)["systems"]
    partitions = {p["resource"]: p for p in found["subscribers"]["partitions"]}
    assert partitions["stock"] == {
        "subscriber": "recorder", "resource": "stock", "checkpoint": 3, "last_seq": 3,
        "lag": 0, "handled": 3, "error": None, "dead_letters": 0,
    }  # fmt: skip
    assert main(["status", "--namespace", system.namespace]) == 0
    text = capfd.readouterr().out.splitlines()
    assert "    subscriber recorder on stock: checkpoint 3 of 3, lag 0" in text


@pytest.mark.timeout(180)
def test_forged_and_malformed_calls_to_the_actors_are_typed_errors(system: System) -> None:
    start(system)
    restock(system, ["a"])
    (replica,) = replicas_of(system.namespace, "recorder").values()
    forged = EventRecord("stock", 9, "stock:9:0", 9, "Nope", b"{}", "d" * 32, "system", "x", "t")
    with pytest.raises(UnknownEventTypeError):
        ray.get(replica.deliver.remote(EventBatch.of("stock", [forged]).wire()))
    garbled = dataclasses.replace(forged, type="Restocked", payload=b'{"sku": 1}')
    report = DeliveryReport.from_wire(
        ray.get(replica.deliver.remote(EventBatch.of("stock", [garbled]).wire()))
    )
    assert (report.done_upto, report.handled) == (8, 0)
    assert report.error is not None and "MalformedEventError" in report.error
    good = EventBatch.of("stock", [dataclasses.replace(garbled, payload=b'{"sku": "z"}')])
    for bad in (ray.put({"not": "a batch"}), ("agentcast.events/0", *good.wire()[1:]), [forged]):
        with pytest.raises(InvalidArgumentError):  # a ref to another object, a bad header
            ray.get(replica.deliver.remote(bad))
    dispatcher = lookup("events", system.namespace)
    for resource, to in (("stock", -1), ("stock", 2), ("stokc", 0)):  # newest is 1
        with pytest.raises(ConfigurationError):
            ray.get(dispatcher.rewind.remote("recorder", resource, to))
    with pytest.raises(ConfigurationError):
        ray.get(dispatcher.register.remote("recorder", "Restocked"))
    with pytest.raises(ConfigurationError):
        ray.get(dispatcher.register.remote("no such/group", ["Restocked"]))
    stock = lookup(resource_actor_name("stock"), system.namespace)
    with pytest.raises(InvalidArgumentError):
        ray.get(stock.trim_events.remote("all", "2000-01-01", 10))
    wait_until(lambda: len(sink_items(system, "recorder")) >= 1, "the real event handled")
    assert sink_items(system, "recorder") == ["a"]  # the forged events wrote nothing


@pytest.mark.timeout(180)
def test_retention_trims_passed_events_and_numbers_go_on(any_system: System) -> None:
    subs = Subscriptions.start(
        any_system, EventsPolicy(retention=timedelta(milliseconds=1), trim_every=timedelta(hours=1))
    )
    start(any_system)
    restock(any_system, ["a", "b", "c"])
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 3, "all 3 handled", 120)
    subs.wait_caught_up()
    dispatcher = lookup("events", any_system.namespace)
    assert ray.get(dispatcher.trim_now.remote())["stock"] == 3
    log = EventLog(any_system.root, "stock")
    assert (log.read(), log.last_seq()) == ([], 3)
    restock(any_system, ["d"])
    wait_until(lambda: len(sink_items(any_system, "recorder")) >= 4, "the next one handled", 120)
    assert sink_items(any_system, "recorder") == ["a", "b", "c", "d"]
    assert [e.seq for e in log.read()] == [4]


@pytest.mark.timeout(180)
def test_check_lists_the_subscribers_of_each_declared_event_type(system: System) -> None:
    # Stock declares Restocked and SoldOut; only Restocked has a consumer group.
    from actors._cli.check import check_namespace

    start(system)
    restock(system, ["a"])
    wait_until(lambda: sink_items(system, "recorder") == ["a"], "the event handled", 120)
    report = check_namespace(system.namespace)
    (sync,) = [c for c in report["checks"] if c["name"] == "event-driven sync"]
    assert (sync["status"], sync["evidence"]) == (
        "FAIL",
        "event types with no subscriber: SoldOut "
        "(subscribers per event type: Restocked -> recorder; SoldOut -> nobody)",
    )


@pytest.mark.timeout(180)
def test_the_trace_shows_each_event_under_the_write_that_emitted_it(any_system: System) -> None:
    from actors._cli.trace import collect, describe

    any_system.resource(Stock, name="stock")
    restock(any_system, ["a", "b"])
    timeline = collect(any_system.root, any_system.trace_id)["timeline"]
    events = [(i["type"], i["version"], i["data"]) for i in timeline if i["kind"] == "emitted"]
    assert events == [
        ("Restocked", 1, {"sku": "a", "qty": 1, "level": 1}),
        ("Restocked", 2, {"sku": "b", "qty": 1, "level": 1}),
    ]
    lines = [describe(i) for i in timeline if i["kind"] in ("write", "emitted")]
    assert lines[1] == 'emitted Restocked from stock v1: {"level": 1, "qty": 1, "sku": "a"}'


class AttemptsQuery(BaseModel):
    pass


class Attempts(BaseModel):
    skus: list[str]


class FailsOnceAtS15(Agent):
    """Notes every event its handler starts on, in order; fails the first time on s15."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        self.attempts.append(event.sku)
        if event.sku == "s15" and self.attempts.count("s15") == 1:
            raise RuntimeError("fails once")

    @handler
    async def seen(self, query: AttemptsQuery) -> Attempts:
        return Attempts(skus=self.attempts)


@pytest.mark.timeout(180)
def test_after_a_failure_in_a_backlog_nothing_past_it_is_handled_before_it(
    system: System,
) -> None:
    # Full batches of 10: while one is out the next is read ahead, and the failure at
    # s15 (second batch) must not let that read-ahead batch (s20-s29) go out before it.
    subs = Subscriptions.start(system, EventsPolicy(max_in_flight=10))
    system.resource(Stock, name="stock")
    skus = [f"s{i}" for i in range(60)]
    restock(system, skus)  # a backlog: committed before the group exists
    group = system.agent(FailsOnceAtS15, name="fails")
    subs.wait_caught_up(timedelta(seconds=120))
    assert group.ask(AttemptsQuery(), timeout=60).skus == skus[:16] + skus[15:]
