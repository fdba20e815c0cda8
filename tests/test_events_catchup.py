"""Waiting for consumer groups to catch up, answered by the dispatcher when the
checkpoints move (``CheckpointWatch`` driven with the plain core, then the whole call on
a real Ray across a dispatcher restart); replaying several groups in one call."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from events_for_tests import Restocked, Sink, SlowRecorder, Stock
from waiting import wait_until

from actors import Subscriptions, System
from actors._events.catchup import CheckpointWatch, check_wait
from actors._events.core import DispatchCore
from actors._events.partition import Lag
from actors.lowlevel import ResourceCore, WriteCall
from runtime import ConfigurationError, InvalidArgumentError, encode, lookup


def write(core: ResourceCore, op: str, *args: Any) -> None:
    call = WriteCall(op, encode([list(args), {}]), "w", 1, uuid.uuid4().hex, "c" * 32)
    (result,) = core.apply_batch([call])
    assert result.error is None, result.error


def four_events(root: Path) -> DispatchCore:
    stock = ResourceCore(Stock(), "stock", root)
    for sku in "ABCD":
        write(stock, "restock", sku, 1)
    core = DispatchCore(root)
    core.register("a", [Restocked.__name__])
    core.register("b", [Restocked.__name__])
    return core


def sink_items(system: System, group: str) -> list[str]:
    return list(system.log("sink").replay().get(group, []))


async def settled(task: asyncio.Task[None]) -> bool:
    for _ in range(5):  # let the waiter run whatever it was woken for
        await asyncio.sleep(0)
    return task.done()


@pytest.mark.timeout(60)
def test_the_wait_returns_when_every_named_partition_is_there_and_not_before(
    tmp_path: Path,
) -> None:
    core = four_events(tmp_path)

    async def scenario() -> None:
        watch = CheckpointWatch()
        waiter = asyncio.create_task(watch.until_caught_up(core, {"stock": 4}, ["a", "b"], 30))
        assert not await settled(waiter)
        core.acked("a", "stock", core.pending("a", "stock"), 4)
        watch.moved()
        assert not await settled(waiter)  # b is still at 0
        core.acked("b", "stock", core.pending("b", "stock"), 2)  # failed after 2
        watch.moved()
        assert not await settled(waiter)
        assert core.behind({"stock": 4}, ["a", "b"]) == [Lag("b", "stock", 2, 4)]
        core.acked("b", "stock", core.pending("b", "stock"), 4)
        watch.moved()
        assert await settled(waiter)
        await waiter  # no error

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_forgotten_group_no_longer_holds_the_wait(tmp_path: Path) -> None:
    core = four_events(tmp_path)

    async def scenario() -> None:
        watch = CheckpointWatch()
        waiter = asyncio.create_task(watch.until_caught_up(core, {"stock": 4}, ["a"], 30))
        assert not await settled(waiter)
        core.forget("a")
        watch.moved()
        assert await settled(waiter)
        await waiter

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_the_wait_times_out_with_the_partitions_still_behind(tmp_path: Path) -> None:
    core = four_events(tmp_path)
    core.acked("a", "stock", core.pending("a", "stock"), 4)
    wait = CheckpointWatch().until_caught_up(core, {"stock": 4}, ["a", "b"], 0.05)
    with pytest.raises(TimeoutError, match=r"group='b', resource='stock', checkpoint=0"):
        asyncio.run(wait)


@pytest.mark.timeout(60)
def test_malformed_waits_are_refused_and_the_defaults_are_every_group_and_the_newest(
    tmp_path: Path,
) -> None:
    core = four_events(tmp_path)
    assert check_wait(core, None, None, 5) == ({"stock": 4}, ["a", "b"])
    assert check_wait(core, {"stock": 2}, ["b"], 0.5) == ({"stock": 2}, ["b"])
    for upto, groups, timeout_s in (
        ({"stock": -1}, None, 5), ({"stock": "3"}, None, 5), ({"no/such": 1}, None, 5),
        ([("stock", 1)], None, 5), ({"stock": True}, None, 5), (None, "a", 5),
        (None, [1], 5), (None, None, 0), (None, None, -1), (None, None, float("inf")),
        (None, None, "5"), (None, None, True),
    ):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            check_wait(core, upto, groups, timeout_s)
    with pytest.raises(ConfigurationError, match="nobody"):
        check_wait(core, None, ["a", "nobody"], 5)


@pytest.mark.timeout(60)
def test_a_replay_of_several_groups_is_one_stored_move(tmp_path: Path) -> None:
    core = four_events(tmp_path)
    for group in ("a", "b"):
        core.acked(group, "stock", core.pending(group, "stock"), 4)
    core.flush()
    core.rewind(["a", "b"], "stock", 1)
    assert [(lag.group, lag.checkpoint) for lag in core.lags()] == [("a", 1), ("b", 1)]
    for groups in (["a", "nobody"], ["a", ["b"]], "a", None):
        with pytest.raises(ConfigurationError):  # refused before anything is stored
            core.rewind(groups, "stock", 0)  # type: ignore[arg-type]
    core.close()
    again = DispatchCore(tmp_path)
    assert [(lag.group, lag.checkpoint) for lag in again.lags()] == [("a", 1), ("b", 1)]


@pytest.mark.timeout(240)
def test_the_wait_outlives_a_dispatcher_restart_and_times_out_typed(system: System) -> None:
    # The client makes the call again to the restarted dispatcher, within its timeout.
    stock = system.resource(Stock, name="stock")
    system.resource(Sink, name="sink")
    system.agent(SlowRecorder, name="recorder")
    subs = Subscriptions(system.namespace)
    skus = [f"s{i}" for i in range(80)]
    for sku in skus:
        stock.restock(sku, 1)
    with pytest.raises(TimeoutError):  # 20 ms per event: far from done
        subs.wait_caught_up(timedelta(milliseconds=50))
    with pytest.raises(InvalidArgumentError):
        subs.wait_caught_up(upto={"stock": -2})
    outcome: list[Any] = []
    waiter = threading.Thread(target=lambda: outcome.append(subs.wait_caught_up()))
    waiter.start()
    wait_until(lambda: len(sink_items(system, "recorder")) >= 5, "some handled", 120)
    ray.kill(lookup("events", system.namespace), no_restart=False)  # Ray restarts it
    assert waiter.is_alive()  # the kill landed while the call was waiting
    waiter.join(180)
    (lags,) = outcome
    assert [(lag.resource, lag.checkpoint, lag.lag) for lag in lags if lag.resource == "stock"] == [
        ("stock", 80, 0)
    ]
    assert sink_items(system, "recorder") == skus


@pytest.mark.timeout(120)
def test_a_wait_on_a_paused_dispatcher_ends_typed_after_its_timeout(system: System) -> None:
    # The dispatcher's own timer cannot end a wait while its process is stopped: the
    # caller's bound does.
    system.resource(Stock, name="stock").restock("A", 1)
    system.agent(SlowRecorder, name="recorder")
    subs = Subscriptions(system.namespace)
    subs.wait_caught_up(timedelta(seconds=60))
    dispatcher = lookup("events", system.namespace)
    pid = ray.get(dispatcher.__ray_call__.remote(lambda self: os.getpid()))
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError, match="did not answer"):  # not the test's timeout
            subs.wait_caught_up(timedelta(seconds=1))
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [lag.lag for lag in subs.wait_caught_up(timedelta(seconds=60))] == [0]
