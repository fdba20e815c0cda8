"""Lost updates on a shared inventory: plain Ray read-modify-write against agentcast.

Order agents sell one unit at a time and supplier agents restock one unit at a time, all
at once, with a little "thinking" between reading the stock and writing it back. Demand
exceeds supply, so every unit should sell exactly once.

The naive agents meet once at a start line, after their first read and before their first
write, so the race shows on every run however the machine schedules them: all their first
writes rest on one reading, and all but one of them overwrite an update.

Run it on the embedded default:        python examples/inventory_race.py
or on a cluster:   ray job submit --working-dir . -- python examples/inventory_race.py

It exits non-zero if agentcast lost, duplicated or oversold anything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, AgentGroup, Resource, ResourceHandle, System, handler, read, write

SKU = "widget"


class OutOfStockError(Exception):
    """Not enough stock: the reservation is refused and the state is unchanged."""


class Inventory(Resource):
    @write
    def restock(self, state: dict[str, int], sku: str, qty: int) -> int:
        state[sku] = state.get(sku, 0) + qty
        return state[sku]

    @write
    def reserve(self, state: dict[str, int], sku: str, qty: int) -> int:
        if state.get(sku, 0) < qty:
            raise OutOfStockError(sku, qty)
        state[sku] -= qty
        return state[sku]

    @read
    def available(self, state: dict[str, int], sku: str) -> int:
        return state.get(sku, 0)


@ray.remote(num_cpus=0)
class NaiveStore:
    """A plain Ray dict actor, used the usual way: read, think, write back."""

    def __init__(self) -> None:
        self.stock: dict[str, int] = {}
        self.version = 0
        self.overwritten = 0  # writes based on a stale read: someone's update was lost

    def get(self, sku: str) -> tuple[int, int]:
        return self.stock.get(sku, 0), self.version

    def put(self, sku: str, value: int, read_version: int) -> None:
        if read_version != self.version:
            self.overwritten += 1
        self.stock[sku] = value
        self.version += 1

    def summary(self) -> tuple[int, int]:
        return self.stock.get(SKU, 0), self.overwritten


@ray.remote(num_cpus=0)
class StartLine:
    """Holds each naive agent until ``parties`` of them have arrived (a one-shot barrier)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_in = asyncio.Event()

    async def wait(self, timeout_s: float = 60.0) -> None:
        """Return once every party has arrived.

        Raises:
            TimeoutError: they did not all arrive within ``timeout_s``.
        """
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), timeout_s)


class Work(BaseModel):
    units: int
    think_ms: float
    naive: bool


class Done(BaseModel):
    applied: int  # units this agent sold (orders) or restocked (supplier)
    refused: int  # reservations refused for lack of stock


async def _think(ms: float) -> None:
    await asyncio.sleep(ms / 1000)


class OrderAgent(Agent):
    @handler
    async def sell(self, work: Work) -> Done:
        if work.naive:
            return await _naive_units(work, self.namespace, change=-1)
        return await self._sell(work)

    async def _sell(self, work: Work) -> Done:
        inventory, sold, refused = self.resource("inventory"), 0, 0
        for _ in range(work.units):
            await _think(work.think_ms)
            try:
                await inventory.reserve(SKU, 1)
                sold += 1
            except OutOfStockError:
                refused += 1
        return Done(applied=sold, refused=refused)


async def _naive_units(work: Work, namespace: str, change: int) -> Done:
    """Read the stock, think, write back the stock read plus ``change``, one unit at a time:
    plain Ray, the usual way. A sale (``change`` -1) is refused when none is left."""
    store = ray.get_actor("naive-store", namespace=namespace)
    start_line = ray.get_actor("naive-start-line", namespace=namespace)
    applied = refused = 0
    for unit in range(work.units):
        stock, version = await store.get.remote(SKU)
        if unit == 0:
            await start_line.wait.remote()
        await _think(work.think_ms)
        if stock + change < 0:
            refused += 1
            continue
        await store.put.remote(SKU, stock + change, version)
        applied += 1
    return Done(applied=applied, refused=refused)


class SupplierAgent(Agent):
    @handler
    async def supply(self, work: Work) -> Done:
        if work.naive:
            return await _naive_units(work, self.namespace, change=+1)
        inventory = self.resource("inventory")
        for _ in range(work.units):
            await _think(work.think_ms)
            await inventory.restock(SKU, 1)
        return Done(applied=work.units, refused=0)


@dataclass
class Outcome:
    name: str
    initial: int
    restocked: int
    sold: int
    final: int
    lost_updates: int
    duplicated: int = 0

    @property
    def expected(self) -> int:
        return self.initial + self.restocked - self.sold

    @property
    def oversold(self) -> int:
        return max(0, self.sold - self.initial - self.restocked)

    def line(self) -> str:
        return (
            f"{self.name:<10} updates lost: {self.lost_updates:>5}   units oversold: "
            f"{self.oversold:>5}   duplicated: {self.duplicated:>3}   final stock: "
            f"{self.final:>5}   expected: {self.expected:>5}"
        )


def _run_agents(
    orders: AgentGroup, suppliers: AgentGroup, args: argparse.Namespace, naive: bool
) -> tuple[int, int]:
    order_work = Work(units=args.units, think_ms=args.think_ms, naive=naive)
    supply_work = Work(units=args.restock_units, think_ms=args.think_ms, naive=naive)
    refs = [orders.call(order_work, replica=i) for i in range(len(orders.actors))]
    refs += [suppliers.call(supply_work, replica=i) for i in range(len(suppliers.actors))]
    done = ray.get(refs)
    sold = sum(d.applied for d in done[: len(orders.actors)])
    restocked = sum(d.applied for d in done[len(orders.actors) :])
    return sold, restocked


def run_naive(
    system: System, orders: AgentGroup, suppliers: AgentGroup, args: argparse.Namespace
) -> Outcome:
    store = NaiveStore.options(name="naive-store", namespace=system.namespace).remote()
    ray.get(store.put.remote(SKU, args.initial, 0))
    # Every replica with units to move meets the others at the start line once.
    parties = (len(orders.actors) if args.units else 0) + (
        len(suppliers.actors) if args.restock_units else 0
    )
    start_line = StartLine.options(name="naive-start-line", namespace=system.namespace)
    start_line = start_line.remote(parties)
    sold, restocked = _run_agents(orders, suppliers, args, naive=True)
    final, overwritten = ray.get(store.summary.remote())
    for actor in (store, start_line):
        ray.kill(actor)
    return Outcome("naive", args.initial, restocked, sold, final, lost_updates=overwritten)


def run_agentcast(
    system: System, orders: AgentGroup, suppliers: AgentGroup, args: argparse.Namespace
) -> Outcome:
    inventory = system.get_resource("inventory")
    start = inventory.read("available", SKU)
    sold, restocked = _run_agents(orders, suppliers, args, naive=False)
    final = inventory.read("available", SKU)
    # Every acknowledged unit must be exactly one record, the versions gap-free, and the
    # log must replay to the stock the resource reports.
    records = list(system.log("inventory").records(after=start.version))
    logged_sales = sum(1 for r in records if r.op == "reserve")
    logged_restocks = sum(1 for r in records if r.op == "restock")
    lost = max(0, sold - logged_sales) + max(0, restocked - logged_restocks)
    duplicated = max(0, logged_sales - sold) + max(0, logged_restocks - restocked)
    gaps = sum(1 for i, r in enumerate(records) if r.version != start.version + i + 1)
    replayed = start.value + logged_restocks - logged_sales
    lost += gaps + abs(final.value - replayed)
    return Outcome("agentcast", start.value, restocked, sold, final.value, lost, duplicated)


def _reset_stock(inventory: ResourceHandle, initial: int) -> None:
    stock = inventory.read("available", SKU).value
    if stock < initial:
        inventory.restock(SKU, initial - stock)
    elif stock > initial:
        inventory.reserve(SKU, stock - initial)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=4, help="order agent replicas")
    parser.add_argument("--suppliers", type=int, default=2, help="supplier agent replicas")
    parser.add_argument("--units", type=int, default=60, help="units each order agent tries")
    parser.add_argument("--restock-units", type=int, default=30, help="units each supplier adds")
    parser.add_argument("--initial", type=int, default=60, help="stock at the start")
    parser.add_argument(
        "--think-ms", type=float, default=2.0, help="thinking between read and write"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.restock_units, args.initial = 20, 10, 20

    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace="inventory-race") as system:
        inventory = system.resource(
            Inventory, name="inventory", writers=["orders", "supplier", "system"]
        )
        _reset_stock(inventory, args.initial)
        orders = system.agent(OrderAgent, name="orders", replicas=args.orders)
        suppliers = system.agent(SupplierAgent, name="supplier", replicas=args.suppliers)
        print(f"namespace {system.namespace}; watch it: {system.watch_commands()[0]}")
        print(
            f"{args.orders} order agents x {args.units} units, {args.suppliers} suppliers x "
            f"{args.restock_units} units, initial stock {args.initial}, think {args.think_ms} ms"
        )
        steps.next("the naive agents: read, think, write back")
        naive = run_naive(system, orders, suppliers, args)
        steps.next("the same agents through agentcast")
        ours = run_agentcast(system, orders, suppliers, args)
    print(naive.line())
    print(ours.line())
    bad = ours.lost_updates or ours.duplicated or ours.oversold or ours.final != ours.expected
    print("agentcast: FAILED" if bad else "agentcast: no update lost, duplicated or oversold")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
