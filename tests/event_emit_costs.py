"""What emitting costs a write, as CPU time of the processes that pay it (docs/benchmarks.md,
"Events"): batches of 50 ``write_many`` writes to one resource (``Durability.PROCESS``),
with and without an event per write, in alternated rounds, in three settings: no
dispatcher running, the dispatcher running with no consumer group, and one group
registered (subscribed to another type, so it has a partition on the resource to wake).
Per batch: the resource actor's CPU and the dispatcher's (``/proc``; wall-clock rates on
the shared machine were noisier than the effect). Run it by hand:
``PYTHONPATH=$PWD python tests/event_emit_costs.py [batches per run] [rounds]``
(default 60, 6)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from typing import Any

import ray

from actors import Subscriptions, System
from actors._cli.bench.event_clients import TickCounter, TickFeed
from actors._resource.handle import Write
from policies import Durability, ResourcePolicy
from runtime import resource_actor_name

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None) -> float:
    """User and system CPU of process ``pid`` so far (0 for none)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def pids() -> dict[str, int]:
    """Named live actors' process ids (Ray's actor table; a hand-run tool)."""
    table = ray._private.state.actors()
    return {a["Name"]: a["Pid"] for a in table.values() if a["Name"] and a["State"] == "ALIVE"}


class Feed:
    """One resource and the CPU its writes cost, per batch of 50."""

    def __init__(self, system: System) -> None:
        policy = ResourcePolicy(durability=Durability.PROCESS)
        self.handle = system.resource(TickFeed, name="feed", policy=policy)
        self.pid = pids()[resource_actor_name("feed")]
        self.n = 0

    def run(self, op: str, batches: int, dispatcher: int | None) -> tuple[float, float]:
        """Milliseconds of CPU per batch: the resource's, the dispatcher's."""
        mine, theirs = cpu_s(self.pid), cpu_s(dispatcher)
        for _ in range(batches):
            writes = [Write(op=op, args=[self.n + i, time.time()]) for i in range(50)]
            self.handle.write_many(writes)
            self.n += 50
        time.sleep(0.05)  # the last nudge's answer lands
        return (
            (cpu_s(self.pid) - mine) * 1e3 / batches,
            (cpu_s(dispatcher) - theirs) * 1e3 / batches,
        )


def setting(feed: Feed, batches: int, rounds: int, dispatcher: int | None) -> dict[str, Any]:
    """Alternated rounds of silent and emitting batches; medians."""
    got: dict[str, list[tuple[float, float]]] = {"tick_silent": [], "mark": []}
    for op in got:
        feed.run(op, 10, dispatcher)  # warm-up
    for round_ in range(rounds):
        for op in list(got) if round_ % 2 == 0 else list(got)[::-1]:
            got[op].append(feed.run(op, batches, dispatcher))
    silent, emitting = (statistics.median(r for r, _ in got[op]) for op in got)
    return {
        "resource_ms_silent": round(silent, 2), "resource_ms_emitting": round(emitting, 2),
        "overhead": round(emitting / silent - 1, 3),
        "dispatcher_ms_emitting": round(statistics.median(d for _, d in got["mark"]), 2),
    }  # fmt: skip


def main(batches: int = 60, rounds: int = 6) -> None:
    with tempfile.TemporaryDirectory() as storage:
        system = System.start(storage, namespace=f"emit-costs-{os.getpid()}", dashboard=False)
        try:
            feed = Feed(system)
            print("no dispatcher:", setting(feed, batches, rounds, None))
            subs = Subscriptions.start(system)
            subs.lags()  # answered once it runs: then it is in the actor table
            dispatcher = pids()["events"]
            print("dispatcher, no group:", setting(feed, batches, rounds, dispatcher))
            system.agent(TickCounter, name="ticks")  # subscribes to Tick; the feed writes Mark
            subs.wait_caught_up(timedelta(minutes=2))
            print("one group:", setting(feed, batches, rounds, dispatcher))
        finally:
            system.shutdown()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
