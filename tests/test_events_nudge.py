"""The push nudge on a real Ray: a resource's commit wakes the dispatcher; a lost nudge
(the dispatcher killed between commit and nudge, the resource restarted) delays events
and loses none; a forged nudge is refused or harmless."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from events_for_tests import Recorder, Sink, Stock
from pydantic import BaseModel
from waiting import wait_until

from actors import Subscriptions, System
from actors._events.emit import collecting, emit
from actors._events.nudge import Nudger, check_nudge
from actors.lowlevel import ResourceCore, WriteCall
from policies import EventsPolicy
from runtime import InvalidArgumentError, encode, lookup, resource_actor_name


def sink_items(system: System, group: str) -> list[str]:
    return list(system.log("sink").replay().get(group, []))


def start(system: System, policy: EventsPolicy | None = None) -> Subscriptions:
    subs = Subscriptions.start(system, policy)
    system.resource(Stock, name="stock")
    system.resource(Sink, name="sink")
    system.agent(Recorder, name="recorder")
    return subs


def restock(system: System, skus: list[str]) -> None:
    stock = system.get_resource("stock")
    for sku in skus:
        stock.restock(sku, 1)


class NudgeRecorder:
    """Stands where the dispatcher stands (named ``events``): records each nudge."""

    def __init__(self) -> None:
        self.nudges: list[tuple[str, int]] = []

    def nudge(self, resource: str, seq: int) -> None:
        self.nudges.append((resource, seq))

    def seen(self) -> list[tuple[str, int]]:
        return self.nudges


@pytest.mark.timeout(120)
def test_a_commit_that_emitted_nudges_once_with_the_newest_event_number(
    ray_session: None, tmp_path: Path
) -> None:
    namespace = f"nudge-{uuid.uuid4().hex[:8]}"
    stock = ResourceCore(Stock(), "stock", tmp_path)
    nudger = Nudger("stock", tmp_path, namespace)
    recorder = ray.remote(NudgeRecorder).options(name="events", namespace=namespace)

    def restock_and_commit(*skus: str) -> None:
        calls = [
            WriteCall("restock", encode([[sku, 1], {}]), "w", 1, uuid.uuid4().hex, "c" * 32)
            for sku in skus
        ]
        assert all(r.error is None for r in stock.apply_batch(calls))
        nudger.committed()

    async def scenario() -> list[tuple[str, int]]:  # the nudger runs on an event loop
        nudger.committed()  # nobody listens yet and no event: nothing, no error
        seen = recorder.remote()
        await seen.seen.remote()
        restock_and_commit("A", "B")
        nudger.committed()  # no new event since: no second nudge
        while await seen.seen.remote() != [("stock", 2)]:  # bounded by the timeout
            await asyncio.sleep(0.01)
        restock_and_commit("C")
        while len(await seen.seen.remote()) < 2:
            await asyncio.sleep(0.01)
        nudges: list[tuple[str, int]] = await seen.seen.remote()
        ray.kill(seen)
        return nudges

    assert asyncio.run(scenario()) == [("stock", 2), ("stock", 3)]
    nudger.close()


_FORGED = [("no such/resource", 1), ("stock", -1), ("stock", "3"), (7, 1), ("stock", True)]


@pytest.mark.parametrize(("resource", "seq"), [*_FORGED, ("stock", 1.5)])
def test_malformed_nudges_are_invalid_arguments(resource: Any, seq: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        check_nudge(resource, seq)


@pytest.mark.timeout(240)
def test_forged_nudges_are_refused_or_harmless(system: System) -> None:
    subs = start(system)
    restock(system, ["a", "b"])
    subs.wait_caught_up()
    dispatcher = lookup("events", system.namespace)
    for resource, seq in (("no such/resource", 1), ("stock", -5), ("stock", "many")):
        with pytest.raises(InvalidArgumentError):
            ray.get(dispatcher.nudge.remote(resource, seq))
    for resource, seq in (("stock", 10**15), ("nothing-here", 3), ("stock", 0)):
        ray.get(dispatcher.nudge.remote(resource, seq))  # a wake-up for nothing
    restock(system, ["c"])
    wait_until(lambda: len(sink_items(system, "recorder")) >= 3, "the real events", 120)
    (lag,) = [lag for lag in subs.wait_caught_up() if lag.resource == "stock"]
    assert (lag.checkpoint, lag.last_seq) == (3, 3)  # the forged 10**15 moved nothing
    assert sink_items(system, "recorder") == ["a", "b", "c"]


@pytest.mark.timeout(240)
def test_nudges_lost_to_a_killed_dispatcher_delay_and_lose_no_event(system: System) -> None:
    subs = start(system, EventsPolicy(poll_interval=timedelta(seconds=2)))
    restock(system, ["s0", "s1"])
    subs.wait_caught_up()
    ray.kill(lookup("events", system.namespace), no_restart=False)  # Ray restarts it
    skus = [f"s{i}" for i in range(2, 30)]
    restock(system, skus)  # committed while the dispatcher is down: their nudges lost
    wait_until(lambda: len(sink_items(system, "recorder")) >= 30, "all 30 handled", 180)
    subs.wait_caught_up(timedelta(minutes=2))
    assert sink_items(system, "recorder") == ["s0", "s1", *skus]


@pytest.mark.timeout(240)
def test_with_a_long_poll_events_arrive_before_and_after_the_dispatcher_restarts(
    system: System,
) -> None:
    # The poll (a minute) never fires here: the nudge, or for a nudge lost to the kill
    # the partitions' idle look (every second: it reads the newest number again), is
    # what wakes them, before the kill and after the restart.
    subs = start(system, EventsPolicy(poll_interval=timedelta(minutes=1)))
    restock(system, ["s0"])
    wait_until(lambda: sink_items(system, "recorder") == ["s0"], "the first event", 60)
    ray.kill(lookup("events", system.namespace), no_restart=False)  # Ray restarts it
    restock(system, ["s1", "s2"])  # the nudge in flight may be lost
    wait_until(lambda: len(sink_items(system, "recorder")) >= 3, "events after the kill", 50)
    restock(system, ["s3"])  # the resource nudges the restarted dispatcher again
    wait_until(lambda: len(sink_items(system, "recorder")) >= 4, "the last event", 50)
    subs.wait_caught_up(timedelta(seconds=50))
    assert sink_items(system, "recorder") == ["s0", "s1", "s2", "s3"]


@pytest.mark.timeout(240)
def test_a_restarted_resource_nudges_again_and_no_event_is_lost(system: System) -> None:
    subs = start(system, EventsPolicy(poll_interval=timedelta(seconds=2)))
    restock(system, ["s0", "s1", "s2"])
    ray.kill(lookup(resource_actor_name("stock"), system.namespace), no_restart=False)
    wait_until(lambda: system.get_resource("stock"), "the stock is back", 120)
    restock(system, ["s3", "s4"])  # a new incarnation: a new nudger, numbers go on
    wait_until(lambda: len(sink_items(system, "recorder")) >= 5, "all 5 handled", 180)
    (lag,) = [lag for lag in subs.wait_caught_up() if lag.resource == "stock"]
    assert (lag.checkpoint, lag.last_seq) == (5, 5)
    assert sink_items(system, "recorder") == ["s0", "s1", "s2", "s3", "s4"]


class Pinged(BaseModel):
    n: int


@pytest.mark.timeout(30)
def test_a_batch_that_emitted_nothing_reads_nothing_and_one_that_did_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nudger = Nudger("stock", tmp_path, "no-dispatcher")
    sends: list[int] = []
    monkeypatch.setattr(nudger, "_send", lambda: sends.append(1))
    nudger.committed()  # catches up with what earlier tests of this process emitted
    sends.clear()
    nudger.committed()
    nudger.committed()
    assert sends == []  # no event since: not even a read of the events table
    with collecting("stock", []):
        emit(Pinged(n=1))
    nudger.committed()
    nudger.committed()
    assert sends == [1]
