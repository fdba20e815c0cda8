"""The inventory/pricing deadlock: plain Ray locks against agentcast leases.

Inventory agents lock the inventory of an item, think, then lock its price to reprice it;
pricing agents lock the price, think, then lock the inventory to adjust the stock. Each
update changes both: one unit out of stock, one step up in price. With several agents of
each kind, an inventory agent that holds inventory:A and a pricing agent that holds
pricing:A wait for each other (the two first holders meet at a start line, so the cycle
forms on every run).

Naive: a plain Ray lock actor. Nothing detects the cycle: every agent hangs, and the
example gives up at its own timeout. agentcast: the same agents take leases
(``async with self.lease(...)``). The locks actor sees the cycle in its wait-for graph the
moment it closes and refuses the youngest waiter with ``DeadlockError`` (stated bound: the
victim hears of it within ``BOUND_S``, 2 s, of asking); it lets go of its lease and retries. Waits
longer than twice the declared expected hold raise the ``lock_wait_exceeded`` alert. Every
update is then checked against both resources' logs: applied exactly once.

The global order would prevent this cycle in the first place (the pricing agents' nested
lease on inventory:A sorts before pricing:A and is refused with ``LockOrderError``); the
example turns the order off (``LockPolicy(enforce_order=False)``) to show the detector.

Run it:  python examples/deadlock.py      (exits non-zero if agentcast fails its claim)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import timedelta

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, Resource, System, handler, read, write
from policies import LockPolicy
from runtime import DeadlockError

ITEM = "A"
BOUND_S = 2.0
"""The stated bound: a victim hears ``DeadlockError`` within this long of asking for the
lease that left it in a cycle. The locks actor detects a cycle the moment the wait that
closes it arrives (or at its next tick); what is measured here also holds the victim's
wait before the cycle closed and the round trip, on a machine that may be loaded."""
TICK = timedelta(milliseconds=50)


class Inventory(Resource):
    def initial_state(self) -> dict[str, int]:
        return {ITEM: 1000}

    @write
    def take(self, state: dict[str, int], item: str) -> int:
        state[item] -= 1
        return state[item]

    @read
    def stock(self, state: dict[str, int], item: str) -> int:
        return state[item]


class Pricing(Resource):
    def initial_state(self) -> dict[str, int]:
        return {ITEM: 100}

    @write
    def raise_price(self, state: dict[str, int], item: str) -> int:
        state[item] += 1
        return state[item]

    @read
    def price(self, state: dict[str, int], item: str) -> int:
        return state[item]


@ray.remote(num_cpus=0)
class StartLine:
    """Holds its callers until ``parties`` have come (once), or ``timeout_s`` passes."""

    def __init__(self, parties: int) -> None:
        self.parties, self.arrived, self.all_in = parties, 0, asyncio.Event()

    async def wait(self, timeout_s: float = 30.0) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), timeout_s)


@ray.remote(num_cpus=0)
class NaiveLocks:
    """A plain Ray lock actor: one asyncio lock per key, acquire and release."""

    def __init__(self) -> None:
        self.locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key: str) -> None:
        await self.locks.setdefault(key, asyncio.Lock()).acquire()

    async def release(self, key: str) -> None:
        self.locks[key].release()


@ray.remote(num_cpus=0)
class NaiveAgent:
    """An agent the usual way: lock the first key, think, lock the second, update both."""

    async def run(self, ns: str, first: str, second: str, rounds: int, think_s: float) -> int:
        locks = ray.get_actor("naive-locks", namespace=ns)
        start_line = ray.get_actor("naive-start-line", namespace=ns)
        done = 0
        for round_ in range(rounds):
            await locks.acquire.remote(first)
            if round_ == 0:
                await start_line.wait.remote()
            await asyncio.sleep(think_s)
            await locks.acquire.remote(second)  # the other kind holds it, and waits for ours
            done += 1
            await locks.release.remote(second)
            await locks.release.remote(first)
        return done


class Work(BaseModel):
    first: str
    second: str
    rounds: int
    think_s: float


class Report(BaseModel):
    updates: int
    deadlocks: int
    detection_s: list[float]


class Updater(Agent):
    """Takes its two keys in its own order, nested, and updates both resources."""

    @handler
    async def run(self, work: Work) -> Report:
        report = Report(updates=0, deadlocks=0, detection_s=[])
        for round_ in range(work.rounds):
            while not await self._update(work, round_ == 0 and report.deadlocks == 0, report):
                await asyncio.sleep(random.uniform(0.0, work.think_s))  # back off, then again
        return report

    async def _update(self, work: Work, meet: bool, report: Report) -> bool:
        expected = timedelta(seconds=work.think_s)
        try:
            async with self.lease(work.first, ttl=timedelta(seconds=5), expected=expected):
                if meet:
                    await ray.get_actor("agentcast-start-line", self.namespace).wait.remote()
                await asyncio.sleep(work.think_s)
                asked = time.monotonic()
                try:
                    async with self.lease(work.second, ttl=timedelta(seconds=5), expected=expected):
                        await self.resource("inventory").take(ITEM)
                        await self.resource("pricing").raise_price(ITEM)
                except DeadlockError:
                    report.detection_s.append(round(time.monotonic() - asked, 4))
                    raise
        except DeadlockError:
            report.deadlocks += 1
            return False
        report.updates += 1
        return True


def _plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Each agent's (first, second) key: inventory agents, then pricing agents."""
    inventory, pricing = f"inventory:{ITEM}", f"pricing:{ITEM}"
    return [(inventory, pricing)] * args.agents + [(pricing, inventory)] * args.agents


def run_naive(system: System, args: argparse.Namespace) -> bool:
    """Whether the naive agents finished before the example's timeout (they never do)."""
    ns = system.namespace
    locks = NaiveLocks.options(name="naive-locks", namespace=ns).remote()
    line = StartLine.options(name="naive-start-line", namespace=ns).remote(2)
    agents = [NaiveAgent.options(namespace=ns).remote() for _ in _plan(args)]
    refs = [
        agent.run.remote(ns, first, second, args.rounds, args.think_s)
        for agent, (first, second) in zip(agents, _plan(args), strict=True)
    ]
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=args.naive_timeout)
    for actor in (locks, line, *agents):
        ray.kill(actor)
    finished = len(done) == len(refs)
    verdict = (
        "finished"
        if finished
        else f"HUNG: stopped at the example's {args.naive_timeout:g} s timeout"
    )
    print(f"naive      {len(done)} of {len(refs)} agents done; {verdict}")
    return finished


def run_agentcast(system: System, args: argparse.Namespace) -> bool:
    """Whether agentcast held its claim: cycles broken within the bound, the alert
    raised, every update applied exactly once (checked against both logs)."""
    line = StartLine.options(name="agentcast-start-line", namespace=system.namespace).remote(2)
    group = system.agent(Updater, name="updaters", replicas=len(_plan(args)))
    started = time.monotonic()
    refs = [
        group.call(Work(first=f, second=s, rounds=args.rounds, think_s=args.think_s), replica=i)
        for i, (f, s) in enumerate(_plan(args))
    ]
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=args.naive_timeout * 6)
    if len(done) < len(refs):
        print(f"agentcast  HUNG: {len(done)} of {len(refs)} agents done")
        return False
    reports: list[Report] = ray.get(refs)
    ray.kill(line)
    return _check(system, args, reports, time.monotonic() - started)


def _check(system: System, args: argparse.Namespace, reports: list[Report], took: float) -> bool:
    updates = sum(r.updates for r in reports)
    detections = [d for r in reports for d in r.detection_s]
    kinds = [e.kind for e in system.locks.events(limit=100_000)]
    applied = {name: len(list(system.log(name).records())) for name in ("inventory", "pricing")}
    stock = system.get_resource("inventory").read("stock", ITEM).value
    price = system.get_resource("pricing").read("price", ITEM).value
    once = applied == {"inventory": updates, "pricing": updates} and (stock, price) == (
        1000 - updates,
        100 + updates,
    )
    slowest = max(detections, default=float("inf"))
    print(
        f"agentcast  {len(reports)} of {len(reports)} agents done in {took:.2f} s; "
        f"{updates} updates, each applied once: {once}; {len(detections)} deadlocks broken, "
        f"slowest detection {slowest * 1000:.0f} ms (bound {BOUND_S * 1000:.0f} ms); "
        f"lock_wait_exceeded alerts: {kinds.count('lock_wait_exceeded')}"
    )
    for line in system.locks.status().lines():
        print(f"           {line}")
    expected = args.rounds * len(_plan(args))
    return (
        once and updates == expected and bool(detections) and slowest <= BOUND_S
        and kinds.count("deadlock") == len(detections) and "lock_wait_exceeded" in kinds
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=3, help="agents of each kind")
    parser.add_argument("--rounds", type=int, default=4, help="updates per agent")
    parser.add_argument("--think-s", type=float, default=0.1, help="thinking while holding")
    parser.add_argument("--naive-timeout", type=float, default=5.0, help="give up after")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.rounds, args.naive_timeout = 2, 2, 3.0
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace=f"deadlock-{time.time_ns()}") as system:
        system.use_locks(LockPolicy(enforce_order=False, tick=TICK))
        system.resource(Inventory, name="inventory")
        system.resource(Pricing, name="pricing")
        print(
            f"{args.agents} inventory and {args.agents} pricing agents x {args.rounds} updates, "
            f"thinking {args.think_s:g} s while holding their first key"
        )
        steps.next("the naive agents: plain Ray locks, taken in their own order")
        naive_finished = run_naive(system, args)
        steps.next("the same agents with agentcast leases")
        held = run_agentcast(system, args)
    print("agentcast: held its claim" if held else "agentcast: FAILED its claim")
    print("naive: deadlocked" if not naive_finished else "naive: finished (no deadlock this run)")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
