"""CPU of the receiving process per delivery call of a batch of 100 events (docs/benchmarks.md,
"Where the dedicated replicas' time goes"): a plain Ray subscriber taking tuples, a plain actor
running the agent's ``deliver`` on the wire batch (with and without the replica's concurrency
groups), and a real agent replica. Each actor takes ``CALLS`` calls one after the other per
round, the kinds in turns (the order flipped each round), its CPU read from ``/proc`` around
them. Run it by hand: ``PYTHONPATH=$PWD python tests/event_call_costs.py [calls] [rounds]``."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import ray
from event_batch_costs import hundred_ticks

from actors import System
from actors._agent.group import replicas_of
from actors._agent.host import CONTROL_GROUP
from actors._cli.bench.event_clients import PlainSubscriber, TickCounter
from actors._events.subscribe import calling, deliver, subscriptions
from actors._events.wire import EventBatch


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PlainDeliver:
    """A plain actor running what a replica runs for a delivery, and nothing else."""

    def __init__(self) -> None:
        self.run = calling(TickCounter())
        self.specs = subscriptions(TickCounter)

    async def on_events(self, wire: list[Any]) -> list[Any]:
        return (await deliver(self.specs, "plain", "plain", wire, self.run)).wire()


def pid_of(actor: Any) -> int:
    return int(ray.get(actor.__ray_call__.remote(lambda _self: os.getpid())))


def main(calls: int, rounds: int) -> None:
    wire = EventBatch.of("feed", hundred_ticks(time.time())).wire()
    tuples = [(n, time.time()) for n in range(100)]
    with tempfile.TemporaryDirectory() as storage:
        system = System.start(storage, namespace="event-call-costs", dashboard=False)
        try:
            system.agent(TickCounter, name="sub")
            options = {"num_cpus": 0, "namespace": "event-call-costs"}
            grouped = ray.remote(concurrency_groups={CONTROL_GROUP: 16})(PlainDeliver)
            kinds = {
                "plain subscriber": (ray.remote(PlainSubscriber), tuples),
                "plain actor running deliver": (ray.remote(PlainDeliver), wire),
                "the same with the replica's groups": (grouped, wire),
            }
            actors = {name: cls.options(**options).remote() for name, (cls, _) in kinds.items()}
            methods = {name: actor.on_events for name, actor in actors.items()}
            args = {name: arg for name, (_, arg) in kinds.items()}
            actors["agent replica"] = next(iter(replicas_of("event-call-costs", "sub").values()))
            methods["agent replica"], args["agent replica"] = actors["agent replica"].deliver, wire
            pids = {name: pid_of(actor) for name, actor in actors.items()}
            for name, method in methods.items():  # warm-up
                ray.get([method.remote(args[name]) for _ in range(20)])
            spent: dict[str, list[int]] = {name: [] for name in methods}
            for round_ in range(rounds):
                order = list(methods) if round_ % 2 == 0 else list(methods)[::-1]
                for name in order:
                    before = cpu_s(pids[name])
                    for _ in range(calls):
                        ray.get(methods[name].remote(args[name]))
                    spent[name].append(round((cpu_s(pids[name]) - before) / calls * 1e6))
            for name, values in spent.items():
                print(f"{name:<36} CPU per call, us: {sorted(values)}")
        finally:
            system.shutdown()


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 500, int(sys.argv[2]) if len(sys.argv) > 2 else 4
    )
