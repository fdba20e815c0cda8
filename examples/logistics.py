"""Decision blindness ($2.3M): inventory reorders, pricing reprices, fulfillment keeps
promising next-day delivery from what it cached.

Three agents share one catalog. Each round the inventory agent puts a low-stock SKU on
reorder (no next-day delivery until it arrives), the pricing agent raises another SKU's
price, then the fulfillment agent promises next-day delivery to the round's customers at
the prices it cached when it started. No agent fails; each decides in a bubble.

Naive: a plain Ray actor holds the catalog; fulfillment promises from its cache. Every
promise is checked against the catalog at the moment it is made: a promise of next-day
delivery on a reordered SKU, or at a price that is no longer the price, is incoherent.

agentcast: the catalog is a resource whose writes emit events (``Reordered``,
``PriceChanged``, ``PromiseMade``). A decision-visibility policy pushes reorders and
price changes to fulfillment (``immediate``: its ``@subscribe`` handlers drop the SKU
from its cache) and makes inventory and pricing within-transaction validators of every
``PromiseMade``: before a promise commits they read the catalog (served while the
promise waits) and veto an incoherent one, which the push alone cannot rule out (a
promise may be made before the event arrives); fulfillment, vetoed, looks the SKU up
again. Incoherent promises are counted by replaying the catalog's audit log, not by
trusting the agents.

Run it:            python examples/logistics.py
on a cluster:      ray job submit --working-dir . -- python examples/logistics.py

It exits non-zero if agentcast let one incoherent promise commit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import ray
from pydantic import BaseModel

from actors import (
    Agent,
    AgentGroup,
    Resource,
    System,
    Veto,
    Visibility,
    handler,
    read,
    subscribe,
    validate,
    write,
)
from policies import load_policies
from runtime import VetoedError, decode

POLICY = """
visibility:
  Reordered: {notify: [fulfillment], latency: immediate}
  PriceChanged: {notify: [fulfillment], latency: immediate}
  PromiseMade: {notify: [inventory, pricing], latency: within_transaction, deadline: 10s,
                on_timeout: veto}
"""
SKUS = ("anvil", "bolt", "crate", "drill", "easel", "flask")
BASE_PRICE = 100


class Reordered(BaseModel):
    sku: str


class PriceChanged(BaseModel):
    sku: str
    price: int


class PromiseMade(BaseModel):
    order: str
    sku: str
    price: int
    next_day: bool


class Catalog(Resource):
    """Prices, SKUs on reorder, and the promises made to customers."""

    emits = (Reordered, PriceChanged, PromiseMade)

    def initial_state(self) -> dict[str, Any]:
        return {f"price:{sku}": BASE_PRICE for sku in SKUS}

    @write
    def reorder(self, state: dict[str, Any], sku: str) -> None:
        state[f"reordered:{sku}"] = True
        self.emit(Reordered(sku=sku))

    @write
    def reprice(self, state: dict[str, Any], sku: str, price: int) -> None:
        state[f"price:{sku}"] = price
        self.emit(PriceChanged(sku=sku, price=price))

    @write
    def promise(
        self, state: dict[str, Any], order: str, sku: str, price: int, next_day: bool
    ) -> int:
        state["promises"] = state.get("promises", 0) + 1
        self.emit(PromiseMade(order=order, sku=sku, price=price, next_day=next_day))
        return int(state["promises"])

    @read
    def quote(self, state: dict[str, Any], sku: str) -> tuple[int, bool]:
        return int(state[f"price:{sku}"]), bool(state.get(f"reordered:{sku}", False))


@ray.remote(num_cpus=0)
class NaiveCatalog:
    """The naive catalog: a plain Ray actor; it only counts what it is told."""

    def __init__(self) -> None:
        self.prices = {sku: BASE_PRICE for sku in SKUS}
        self.reordered: set[str] = set()
        self.promises = self.incoherent = 0

    def reorder(self, sku: str) -> None:
        self.reordered.add(sku)

    def reprice(self, sku: str, price: int) -> None:
        self.prices[sku] = price

    def quote(self, sku: str) -> tuple[int, bool]:
        return self.prices[sku], sku in self.reordered

    def promise(self, order: str, sku: str, price: int, next_day: bool) -> None:
        self.promises += 1
        self.incoherent += int(incoherent(self.prices[sku], sku in self.reordered, price, next_day))

    def summary(self) -> tuple[int, int]:
        return self.promises, self.incoherent


def incoherent(price: int, reordered: bool, quoted: int, next_day: bool) -> bool:
    """A promise at another price than the catalog's, or next-day on a reordered SKU."""
    return quoted != price or (next_day and reordered)


class Round(BaseModel):
    number: int
    naive: bool


class Orders(BaseModel):
    number: int
    naive: bool
    customers: int


class Done(BaseModel):
    promised: int = 0
    vetoed: int = 0


def naive_catalog(namespace: str) -> Any:
    return ray.get_actor("naive-catalog", namespace=namespace)


class InventoryAgent(Agent):
    @handler
    async def plan(self, step: Round) -> Done:
        sku = SKUS[step.number % len(SKUS)]  # stock ran low: reorder it
        if step.naive:
            await naive_catalog(self.namespace).reorder.remote(sku)
        else:
            await self.resource("catalog").reorder(sku)
        return Done()

    @validate(PromiseMade)
    async def no_next_day_on_reorder(self, event: PromiseMade) -> Veto | None:
        _, reordered = await self.resource("catalog").quote(event.sku)
        if event.next_day and reordered:
            return Veto(reason=f"{event.sku} is on reorder: no next-day delivery")
        return None


class PricingAgent(Agent):
    @handler
    async def plan(self, step: Round) -> Done:
        sku = SKUS[(step.number + 3) % len(SKUS)]
        price = BASE_PRICE + 5 * (step.number + 1)  # demand is up: raise the price
        if step.naive:
            await naive_catalog(self.namespace).reprice.remote(sku, price)
        else:
            await self.resource("catalog").reprice(sku, price)
        return Done()

    @validate(PromiseMade)
    async def quoted_at_the_price(self, event: PromiseMade) -> Veto | None:
        price, _ = await self.resource("catalog").quote(event.sku)
        if event.price != price:
            return Veto(reason=f"quoted {event.price} for {event.sku}, the price is {price}")
        return None


class FulfillmentAgent(Agent):
    """Promises from a cache. Naive, the cache is filled once. With agentcast, the
    committed ``Reordered`` and ``PriceChanged`` events are pushed to it (``immediate``)
    and drop the SKU from the cache; a promise made before such an event arrived is
    vetoed by the validators, and the SKU is looked up again."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[tuple[bool, str], tuple[int, bool]] = {}  # (naive run?, sku)

    @handler
    async def serve(self, orders: Orders) -> Done:
        done = Done()
        for i in range(orders.customers):
            sku = SKUS[(orders.number * orders.customers + i) % len(SKUS)]
            order = f"o-{orders.number}-{i}"
            if orders.naive:
                await self._promise_naively(order, sku)
            else:
                done.vetoed += await self._promise(order, sku)
            done.promised += 1
        return done

    @subscribe(Reordered)
    async def reordered(self, event: Reordered) -> None:
        self.cache.pop((False, event.sku), None)

    @subscribe(PriceChanged)
    async def repriced(self, event: PriceChanged) -> None:
        self.cache.pop((False, event.sku), None)

    async def _cached(self, naive: bool, sku: str, fetch: Any) -> tuple[int, bool]:
        if (naive, sku) not in self.cache:
            self.cache[naive, sku] = await fetch(sku)
        return self.cache[naive, sku]

    async def _promise_naively(self, order: str, sku: str) -> None:
        catalog = naive_catalog(self.namespace)
        price, reordered = await self._cached(True, sku, lambda s: catalog.quote.remote(s))
        await catalog.promise.remote(order, sku, price, not reordered)

    async def _promise(self, order: str, sku: str) -> int:
        """Promise from the cache; on a veto, refresh the SKU and promise again."""
        catalog = self.resource("catalog")

        async def fetch(s: str) -> tuple[int, bool]:
            price, reordered = await catalog.quote(s)
            return int(price), bool(reordered)

        for vetoes in range(5):
            price, reordered = await self._cached(False, sku, fetch)
            try:
                await catalog.promise(order, sku, price, not reordered)
                return vetoes
            except VetoedError:
                self.cache.pop((False, sku), None)  # a decision not heard of yet: look again
        raise RuntimeError(f"{order}: vetoed five times")


def run(system: System, groups: list[AgentGroup], args: argparse.Namespace, naive: bool) -> int:
    """Play the rounds; returns how many promises were vetoed (0 for naive)."""
    inventory, pricing, fulfillment = groups
    vetoed = 0
    for number in range(args.rounds):
        step = Round(number=number, naive=naive)
        ray.get([inventory.call(step), pricing.call(step)])
        orders = Orders(number=number, naive=naive, customers=args.customers)
        vetoed += ray.get(fulfillment.call(orders)).vetoed
    return vetoed


def audit(system: System, after: int) -> tuple[int, int]:
    """Replay the catalog's whole log: (promises committed after version ``after``,
    those incoherent with the catalog they committed onto)."""
    prices = {sku: BASE_PRICE for sku in SKUS}
    reordered: set[str] = set()
    promises = bad = 0
    for record in system.log("catalog").records():
        args, _ = decode(record.args)
        if record.op == "reorder":
            reordered.add(args[0])
        elif record.op == "reprice":
            prices[args[0]] = args[1]
        elif record.op == "promise" and record.version > after:
            _, sku, price, next_day = args
            promises += 1
            bad += int(incoherent(prices[sku], sku in reordered, price, next_day))
    return promises, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12, help="rounds of decisions")
    parser.add_argument("--customers", type=int, default=6, help="promises per round")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.customers = 5, 4
    with System.start(args.storage, namespace="logistics") as system:
        system.resource(Catalog, name="catalog", writers=["inventory", "pricing", "fulfillment"])
        groups = [
            system.agent(InventoryAgent, name="inventory"),
            system.agent(PricingAgent, name="pricing"),
            system.agent(FulfillmentAgent, name="fulfillment"),
        ]
        Visibility.enforce(system, load_policies(POLICY).visibility)
        print(f"namespace {system.namespace}; watch it: {system.watch_commands()[0]}")
        naive_store = NaiveCatalog.options(name="naive-catalog", namespace=system.namespace)
        store = naive_store.remote()
        run(system, groups, args, naive=True)
        naive_promises, naive_bad = ray.get(store.summary.remote())
        ray.kill(store)
        start = system.get_resource("catalog").read("quote", SKUS[0]).version
        vetoed = run(system, groups, args, naive=False)
        promises, bad = audit(system, start)
    print(f"naive      promises: {naive_promises:>4}   incoherent: {naive_bad:>4}")
    print(f"agentcast  promises: {promises:>4}   incoherent: {bad:>4}   vetoed: {vetoed:>4}")
    ok = bad == 0 and promises == args.rounds * args.customers
    print("agentcast: no incoherent promise committed" if ok else "agentcast: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
