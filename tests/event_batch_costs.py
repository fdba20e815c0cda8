"""CPU per delivered batch of 100 events (docs/benchmarks.md, "Events"): Ray's
serialization of the batch as ``EventRecord`` dataclasses (the form before the wire
batch) and as the wire batch, and the agent's ``deliver`` of it. Run it by hand:
``PYTHONPATH=$PWD python tests/event_batch_costs.py`` (best of 7 rounds of 50, by
``time.process_time``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ray
from ray._private.worker import global_worker

from actors._cli.bench.event_clients import Tick, TickCounter
from actors._events.subscribe import calling, deliver, subscriptions
from actors._events.wire import EventBatch
from actors.lowlevel import EventRecord


def cpu_us(fn: Callable[[], Any], rounds: int = 7, calls: int = 50) -> float:
    """The least CPU time of one call, in microseconds."""
    least = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            fn()
        least = min(least, (time.process_time() - started) / calls * 1e6)
    return least


def hundred_ticks(sent_at: float = 0.0) -> list[EventRecord]:
    """100 stored ``Tick`` events of resource ``feed``, numbered from 1."""
    payloads = [Tick(n=n, sent_at=sent_at).model_dump_json().encode() for n in range(100)]
    return [
        EventRecord("feed", n + 1, f"feed:{n + 1}:0", n + 1, "Tick", payload, "a" * 32,
                    "system", "writer:0", "2026-01-01T00:00:00+00:00")
        for n, payload in enumerate(payloads)
    ]  # fmt: skip


def main() -> None:
    records = hundred_ticks()
    wire = EventBatch.of("feed", records).wire()
    ray.init(address="local", include_dashboard=False, num_cpus=1, log_to_driver=False)
    try:
        context = global_worker.get_serialization_context()
        agent, loop = TickCounter(), asyncio.new_event_loop()
        specs, run = subscriptions(TickCounter), calling(agent)
        print(f"serialize 100 records: {cpu_us(lambda: context.serialize(records)):.0f} us")
        print(f"serialize the wire batch: {cpu_us(lambda: context.serialize(wire)):.0f} us")
        handled = cpu_us(lambda: loop.run_until_complete(deliver(specs, "w", "g", wire, run)))
        print(f"deliver 100 on the agent: {handled:.0f} us")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
