"""A delivery call that outlasts ``delivery_timeout`` (a slow batch, not a lost replica):
the dispatcher waits for its answer instead of sending the batch again, which queued
behind it, ran its handlers twice, and never finished a batch longer than the timeout;
nor does it send the batch to another replica the partition maps to meanwhile. Driven on
the dispatcher actor's class with fake replicas, then on a real Ray."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from events_for_tests import Plodder, Sink, Stock

from actors import Subscriptions, System
from actors._events import routing as host_module
from actors._events.host import EventsHost
from actors._events.subscribe import DeliveryReport
from actors.lowlevel import ResourceCore, WriteCall
from policies import EventsPolicy
from runtime import encode

TIMEOUT = timedelta(milliseconds=200)


class _Late:
    """What a Ray call returns: answered ``after_s`` after it was made."""

    def __init__(self, value: Any, after_s: float) -> None:
        self._done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        timer = threading.Timer(after_s, self._done.set_result, (value,))
        timer.daemon = True
        timer.start()

    def future(self) -> concurrent.futures.Future[Any]:
        mine: concurrent.futures.Future[Any] = concurrent.futures.Future()
        # As Ray's: a future cancelled by a timeout is left alone when the answer comes.
        self._done.add_done_callback(
            lambda done: None if mine.cancelled() else mine.set_result(done.result())
        )
        return mine


class _SlowReplica:
    """A replica that takes ``after_s`` for any batch, and does all of it."""

    def __init__(self, after_s: float) -> None:
        self.batches: list[list[int]] = []
        self.after_s = after_s
        self.deliver = self

    def remote(self, wire: Any) -> _Late:
        self.batches.append(list(wire[2]))
        return _Late(DeliveryReport(wire[2][-1], len(wire[2])).wire(), self.after_s)


def _restocked(root: Path, count: int) -> None:
    stock = ResourceCore(Stock(), "stock", root)
    for i in range(count):
        args = encode([[f"s{i}", 1], {}])
        (done,) = stock.apply_batch(
            [WriteCall("restock", args, "w", 1, uuid.uuid4().hex, "c" * 32)]
        )
        assert done.error is None


def _deliver_once(
    root: Path, monkeypatch: pytest.MonkeyPatch, replicas: dict[str, Any]
) -> tuple[bool, EventsHost]:
    monkeypatch.setattr(host_module, "replicas_of", lambda namespace, group: dict(replicas))

    async def once() -> tuple[bool, EventsHost]:
        host = EventsHost(str(root), "ns", EventsPolicy(delivery_timeout=TIMEOUT))
        for task in host._main:  # the test drives the one delivery itself
            task.cancel()
        core = host._open()
        core.register("g", ["Restocked"])
        failed, _ = await host._deliver("g", "stock", core.pending("g", "stock"))
        return failed, host

    return asyncio.run(once())


@pytest.mark.timeout(60)
def test_a_batch_longer_than_the_timeout_is_waited_for_not_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _restocked(tmp_path, 3)
    slow = _SlowReplica(after_s=5 * TIMEOUT.total_seconds())
    failed, host = _deliver_once(tmp_path, monkeypatch, {"agent:g:0": slow})
    assert (failed, slow.batches, host._open().position("g", "stock")) == (False, [[1, 2, 3]], 3)


@pytest.mark.timeout(60)
def test_a_slow_call_is_waited_for_even_once_the_partition_maps_to_another_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The group grew while the call ran: the partition maps to the new replica now, but
    # the old one is still running the batch; sent there too, the events would be
    # handled by two replicas at once, out of order.
    _restocked(tmp_path, 2)
    slow, fresh = _SlowReplica(after_s=4 * TIMEOUT.total_seconds()), _SlowReplica(after_s=0.0)
    looked: list[str] = []

    def replicas_of(namespace: str, group: str) -> dict[str, Any]:
        looked.append(group)  # the first look-up finds slow alone; then fresh maps it
        return {"agent:g:0": slow} if len(looked) == 1 else {"agent:g:1": fresh}

    monkeypatch.setattr(host_module, "replicas_of", replicas_of)

    async def once() -> tuple[bool, EventsHost]:
        host = EventsHost(str(tmp_path), "ns", EventsPolicy(delivery_timeout=TIMEOUT))
        for task in host._main:
            task.cancel()
        core = host._open()
        core.register("g", ["Restocked"])
        failed, _ = await host._deliver("g", "stock", core.pending("g", "stock"))
        return failed, host

    failed, host = asyncio.run(once())
    assert (failed, slow.batches, fresh.batches) == (False, [[1, 2]], [])
    assert host._open().position("g", "stock") == 2


@pytest.mark.timeout(240)
def test_on_ray_a_batch_longer_than_the_timeout_is_handled_once(system: System) -> None:
    policy = EventsPolicy(delivery_timeout=timedelta(seconds=1), max_in_flight=5)
    subs = Subscriptions.start(system, policy)
    system.resource(Stock, name="stock")
    system.resource(Sink, name="sink")
    skus = [f"s{i}" for i in range(5)]
    for sku in skus:  # before the subscriber: its first batch is all five, 2 s of work
        system.get_resource("stock").restock(sku, 1)
    system.agent(Plodder, name="plodder")
    subs.wait_caught_up(timedelta(seconds=60))
    state = system.log("sink").replay()
    assert (state.get("plodder"), state.get("runs")) == (skus, skus)
