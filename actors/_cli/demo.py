"""``agentcast demo``: a small storefront on the embedded default.

Shop agents ask a scripted model what a customer wants, reserve stock and record the
order; a supplier restocks; two pricing agents revise prices with optimistic concurrency
(so they conflict, and retry on the fresh version); an intern agent that was never
declared as a writer tries to restock and is refused. At the end every resource's state
is checked against the replay of its durable log.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from typing import Any

import ray
from pydantic import BaseModel

from runtime import ConflictError, Message, ScriptedModel, ScriptedRule

from .._agent.agent import Agent, handler
from .._resource.declare import Resource, read, write
from .._resource.handle import Write
from .._resource.state_view import replay
from .._system import System
from .output import emit, progress

SKUS = ("mug", "lamp", "desk", "chair")
SHOPS = 3


class OutOfStockError(Exception):
    """Not enough stock; the reservation changed nothing."""


class Inventory(Resource):
    def initial_state(self) -> dict[str, int]:
        # One unit per shop agent: every shop's first customer finds stock, however late
        # the supplier's first delivery lands.
        return dict.fromkeys(SKUS, SHOPS)

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
    def everything(self, state: dict[str, int]) -> dict[str, int]:
        return dict(state)


class OrderBook(Resource):
    @write
    def place(self, state: dict[str, Any], order_id: str, sku: str, qty: int) -> int:
        state[order_id] = {"sku": sku, "qty": qty}
        return len(state)

    @read
    def everything(self, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)


class Prices(Resource):
    def initial_state(self) -> dict[str, int]:
        return dict.fromkeys(SKUS, 100)

    @write
    def set_price(self, state: dict[str, int], sku: str, cents: int) -> int:
        if cents <= 0:
            raise ValueError("a price must be positive")
        state[sku] = cents
        return cents

    @read
    def price(self, state: dict[str, int], sku: str) -> int:
        return state[sku]

    @read
    def everything(self, state: dict[str, int]) -> dict[str, int]:
        return dict(state)


class Shift(BaseModel):
    seconds: float


class ShiftReport(BaseModel):
    done: int = 0
    refused: int = 0
    conflicts: int = 0


def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def _open(deadline: float) -> bool:
    return asyncio.get_running_loop().time() < deadline


class ShopAgent(Agent):
    """Asks the model what a customer wants, reserves it, records the order."""

    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report, deadline, n = ShiftReport(), _deadline(shift.seconds), 0
        while n == 0 or _open(deadline):  # every shift serves at least one customer
            n += 1
            reply = await self.model.complete(
                [Message(role="user", content=f"customer {self.replica}-{n} wants?")],
                max_tokens=8,
            )
            sku = (reply.text or "mug").strip()
            try:
                await self.resource("inventory").reserve(sku, 1)
            except OutOfStockError:
                report.refused += 1
                continue
            order_id = f"{self.replica}-{n}-{self.task.task_id}"
            await self.resource("orders").place(order_id, sku, 1)
            report.done += 1
        return report


class SupplierAgent(Agent):
    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report, deadline = ShiftReport(), _deadline(shift.seconds)
        while _open(deadline):
            await self.resource("inventory").write_many(
                [Write(op="restock", args=(sku, 2)) for sku in SKUS]
            )
            report.done += len(SKUS)
            await asyncio.sleep(0.05)
        return report


class PricingAgent(Agent):
    """Read the price and its version, think, write back only if nothing changed."""

    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report, deadline, n = ShiftReport(), _deadline(shift.seconds), 0
        prices = self.resource("prices")
        while _open(deadline):
            n += 1
            sku = SKUS[n % len(SKUS)]
            seen = await prices.read("price", sku)
            await self.model.complete(
                [Message(role="user", content=f"price for {sku}?")], max_tokens=4
            )
            cents = seen.value + (1 if self.replica == 0 else -1)
            result = await prices.write(
                Write(op="set_price", args=(sku, cents), expected_version=seen.version)
            )
            if isinstance(result.error, ConflictError):
                report.conflicts += 1  # conflict policy: re-read and try again next round
            else:
                result.unwrap()
                report.done += 1
        return report


class InternAgent(Agent):
    """Not a declared writer of the inventory: every attempt is refused and logged."""

    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report = ShiftReport()
        for _ in range(3):
            result = await self.resource("inventory").write("restock", "mug", 1000)
            report.refused += result.error is not None
        return report


def _shop_model() -> ScriptedModel:
    rules = [ScriptedRule(pattern=rf"-{i}\d* wants", reply=sku) for i, sku in enumerate(SKUS)]
    return ScriptedModel(
        rules=[*rules, ScriptedRule(pattern="price", reply="ok")],
        default_reply="mug",
        latency=timedelta(milliseconds=15),
    )


def _check(system: System, name: str, state: dict[str, Any], initial: dict[str, Any]) -> str:
    replayed = dict(initial)
    versions = replay(replayed, system.log(name).records())
    gap_free = versions == list(range(1, len(versions) + 1))
    return "OK" if replayed == state and gap_free else "MISMATCH"


def _summary(system: System) -> tuple[list[list[str]], bool]:
    rows, ok = [], True
    for name, cls in (("inventory", Inventory), ("orders", OrderBook), ("prices", Prices)):
        rejections = system.log(name).rejections()
        state = system.get_resource(name).read("everything")
        check = _check(system, name, state.value, cls().initial_state())
        ok = ok and check == "OK"
        refused = [r.reason for r in rejections if r.reason != "conflict"]
        rows.append([
            name, str(state.version), str(len(rejections) - len(refused)), str(len(refused)),
            ",".join(sorted(set(refused))) or "-", check,
        ])  # fmt: skip
    return rows, ok


def _print_table(rows: list[list[str]]) -> None:
    header = ["resource", "writes = version", "conflicts", "rejected", "why", "state vs log replay"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        emit("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def run_demo(*, seconds: float, storage: str | None, keep: bool) -> int:
    """Run the storefront for ``seconds`` and print what happened."""
    progress("demo: starting Ray")
    with System.start(storage, namespace="demo") as system:
        system.resource(Inventory, name="inventory", writers=["shop", "supplier", "system"])
        system.resource(OrderBook, name="orders", writers=["shop"])
        system.resource(Prices, name="prices", writers=["pricing"])
        model = _shop_model()
        groups = [
            system.agent(ShopAgent, name="shop", replicas=SHOPS, model=model),
            system.agent(SupplierAgent, name="supplier"),
            system.agent(PricingAgent, name="pricing", replicas=2, model=model),
            system.agent(InternAgent, name="intern"),
        ]
        emit(
            f"storefront running for {seconds:.0f} s: {SHOPS} shop, 1 supplier, 2 pricing, 1 intern"
        )
        emit(f"namespace {system.namespace}; watch it from another terminal:")
        for command in system.watch_commands():
            emit(f"  {command}")
        progress(f"demo: agents at work for {seconds:g} s")
        shift = Shift(seconds=seconds)
        refs = [g.call(shift, replica=i) for g in groups for i in range(len(g.actors))]
        reports = ray.get(refs)
        progress("demo: checking every resource against the replay of its log")
        shops = reports[:SHOPS]
        orders = sum(r.done for r in shops)
        emit(f"orders placed: {orders}, out of stock: {sum(r.refused for r in shops)}")
        rows, ok = _summary(system)
        _print_table(rows)
        emit(f"dashboard: {system.dashboard_url or 'not running'}")
        if keep:
            _wait_for_interrupt()
    return 0 if ok else 1


def _wait_for_interrupt() -> None:
    emit("--keep: Ray stays up; press Ctrl-C to stop.")
    try:
        signal.pause() if hasattr(signal, "pause") else input()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
