"""A three-stage pipeline killed mid-stream: a polling loop with an in-memory cursor
against agentcast's checkpointed subscribers.

Inputs 0..N-1 enter a feed; stage ``parse`` doubles each, ``enrich`` adds one, ``publish``
appends the result to the published list. While inputs flow, each stage is killed (and
started again), and in the agentcast run the events dispatcher too. The claim: every
input is published exactly once, in order.

The naive stages are plain Ray actors, each polling its source list with a cursor kept in
memory: a restarted stage starts its cursor again from 0 and publishes duplicates (one
that started from the end instead would skip what was in flight). The agentcast stages
are agents with ``@subscribe`` handlers: a killed stage resumes after its consumer
group's durable checkpoint, and an event delivered twice writes once (its handler's
idempotency keys derive from the event id).

Run it on the embedded default:        python examples/pipeline_resume.py
or on a cluster:   ray job submit --working-dir . -- python examples/pipeline_resume.py

It exits non-zero if agentcast lost, duplicated or reordered an input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import BaseModel

from actors import Agent, Resource, Subscriptions, System, read, subscribe, write
from runtime import lookup

STAGES = ("parse", "enrich", "publish")


class Ingested(BaseModel):
    n: int


class Parsed(BaseModel):
    n: int
    value: int


class Enriched(BaseModel):
    n: int
    value: int


class Stage(Resource):
    """One stage's output: item number -> value, and the published list."""

    @write
    def ingest(self, state: dict[str, Any], n: int) -> None:
        state[str(n)] = n
        self.emit(Ingested(n=n))

    @write
    def parsed(self, state: dict[str, Any], n: int, value: int) -> None:
        state[str(n)] = value
        self.emit(Parsed(n=n, value=value))

    @write
    def enriched(self, state: dict[str, Any], n: int, value: int) -> None:
        state[str(n)] = value
        self.emit(Enriched(n=n, value=value))

    @write
    def publish(self, state: dict[str, Any], n: int, value: int) -> None:
        state.setdefault("published", []).append([n, value])

    @read
    def published_count(self, state: dict[str, Any]) -> int:
        return len(state.get("published", []))


THINK_S = 0.01  # each stage works a little on each item, so that kills land mid-stream


class Parse(Agent):
    @subscribe(Ingested)
    async def on_input(self, event: Ingested) -> None:
        await asyncio.sleep(THINK_S)
        await self.resource("parsed").parsed(event.n, event.n * 2)


class Enrich(Agent):
    @subscribe(Parsed)
    async def on_parsed(self, event: Parsed) -> None:
        await asyncio.sleep(THINK_S)
        await self.resource("enriched").enriched(event.n, event.value + 1)


class Publish(Agent):
    @subscribe(Enriched)
    async def on_enriched(self, event: Enriched) -> None:
        await asyncio.sleep(THINK_S)
        await self.resource("published").publish(event.n, event.value)


AGENTS: dict[str, type[Agent]] = {"parse": Parse, "enrich": Enrich, "publish": Publish}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What reached the end, against inputs 0..N-1 each published once, in order."""

    mode: str
    inputs: int
    published: list[int]

    @property
    def lost(self) -> int:
        return len(set(range(self.inputs)) - set(self.published))

    @property
    def duplicated(self) -> int:
        return len(self.published) - len(set(self.published))

    @property
    def in_order(self) -> bool:
        return self.published == sorted(self.published)

    def line(self) -> str:
        return (
            f"{self.mode:<10} inputs: {self.inputs:>4}  published: {len(self.published):>4}  "
            f"lost: {self.lost:>3}  duplicated: {self.duplicated:>3}  in order: {self.in_order}"
        )


# -- naive: plain Ray actors polling with a cursor in memory ------------------------------


@ray.remote(num_cpus=0)
class NaiveList:
    def __init__(self) -> None:
        self.items: list[int] = []

    def append(self, item: int) -> None:
        self.items.append(item)

    def after(self, cursor: int) -> list[int]:
        return self.items[cursor:]


@ray.remote(num_cpus=0, max_restarts=-1)
class NaiveStage:
    """Polls ``source`` after its cursor (in memory), appends ``f(item)`` to ``sink``."""

    def __init__(self, namespace: str, source: str, sink: str, add: int, mul: int) -> None:
        self.source = ray.get_actor(source, namespace=namespace)
        self.sink = ray.get_actor(sink, namespace=namespace)
        self.add, self.mul, self.cursor = add, mul, 0
        self.loop = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            for item in await self.source.after.remote(self.cursor):
                await asyncio.sleep(THINK_S)
                await self.sink.append.remote(item * self.mul + self.add)
                self.cursor += 1
            await asyncio.sleep(0.005)

    async def ping(self) -> int:
        return self.cursor


def run_naive(namespace: str, inputs: int, kills: int) -> Verdict:
    lists = {
        name: NaiveList.options(name=f"naive-{name}", namespace=namespace).remote()
        for name in ("feed", *STAGES)
    }
    links = [("feed", "parse", 0, 2), ("parse", "enrich", 1, 1), ("enrich", "publish", 0, 1)]
    stages = {
        sink: NaiveStage.options(namespace=namespace).remote(
            namespace, f"naive-{source}", f"naive-{sink}", add, mul
        )
        for source, sink, add, mul in links
    }
    ray.get([s.ping.remote() for s in stages.values()])
    feed(lambda n: ray.get(lists["feed"].append.remote(n)), inputs, kills, lambda i: _kill_naive(
        stages[STAGES[i % len(STAGES)]]
    ))  # fmt: skip
    published = lambda: ray.get(lists["publish"].after.remote(0))  # noqa: E731
    _wait(lambda: len(published()) >= inputs, 60)
    time.sleep(0.5)  # whatever else the restarted stages publish again
    values = published()
    for actor in (*lists.values(), *stages.values()):
        ray.kill(actor, no_restart=True)
    return Verdict("naive", inputs, [(v - 1) // 2 for v in values])


def _kill_naive(stage: Any) -> None:
    ray.kill(stage, no_restart=False)  # Ray starts it again; its cursor starts at 0


# -- agentcast: checkpointed subscribers ----------------------------------------------------


def run_agentcast(system: System, inputs: int, kills: int) -> Verdict:
    for name in ("feed", "parsed", "enriched", "published"):
        system.resource(Stage, name=name)
    for name, cls in AGENTS.items():
        system.agent(cls, name=name)
    feed_ = system.get_resource("feed")

    def kill(i: int) -> None:
        if i == kills - 1:  # the last kill takes the dispatcher: Ray restarts it
            ray.kill(lookup("events", system.namespace), no_restart=False)
            return
        name = STAGES[i % len(STAGES)]
        system.kill(name)  # fenced on every resource, its replica gone
        _respawn(system, name)

    feed(lambda n: feed_.ingest(n), inputs, kills, kill)
    published = system.get_resource("published")
    _wait(lambda: published.read("published_count").value >= inputs, 180)
    Subscriptions(system.namespace).wait_caught_up()
    rows = system.log("published").replay().get("published", [])
    return Verdict("agentcast", inputs, [n for n, value in rows if value == n * 2 + 1])


def _respawn(system: System, name: str) -> None:
    """A new incarnation of the consumer group, once Ray has let the killed name go."""
    ends = time.monotonic() + 60
    while True:
        try:
            system.agent(AGENTS[name], name=name)
            return
        except ValueError:  # the killed replica still holds its name
            if time.monotonic() > ends:
                raise
            time.sleep(0.1)


def feed(add: Any, inputs: int, kills: int, kill: Any) -> None:
    """Add inputs 0..N-1, killing something ``kills`` times at even intervals."""
    every = max(inputs // (kills + 1), 1)
    done = 0
    for n in range(inputs):
        add(n)
        if n and n % every == 0 and done < kills:
            time.sleep(THINK_S * 5)  # let the stages get going on what is in flight
            kill(done)
            done += 1


def _wait(condition: Any, limit_s: float) -> None:
    ends = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > ends:
            return  # the verdict says what is missing
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=120, help="inputs to feed")
    parser.add_argument("--kills", type=int, default=4, help="kills while inputs flow")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    if args.quick:
        args.inputs = 40
    with System.start(args.storage, namespace="pipeline-resume") as system:
        print(f"namespace {system.namespace}; watch it: {system.watch_commands()[0]}")
        print(f"{args.inputs} inputs through {len(STAGES)} stages, {args.kills} kills mid-stream")
        naive = run_naive(system.namespace, args.inputs, args.kills)
        ours = run_agentcast(system, args.inputs, args.kills)
    print(naive.line())
    print(ours.line())
    bad = ours.lost or ours.duplicated or not ours.in_order or len(ours.published) != args.inputs
    print(
        "agentcast: FAILED"
        if bad
        else "agentcast: every input published exactly once, in order, resumed from checkpoints"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
