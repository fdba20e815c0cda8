"""The storefront of ``agentcast demo``: its resources, messages and agents.

Shop agents ask a scripted model what a customer wants, reserve stock and record the
order; a supplier restocks; two pricing agents raise prices by read, think, write, each
round under a lease on ``prices:<sku>`` (so neither writes over the other's raise); an
intern agent that was never declared as a writer tries to restock and is refused. Every
shift is a subtask of the supervisor, held to a deadline and to ``ShiftReport``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from runtime import Message, ScriptedModel, ScriptedRule

from .._agent.agent import Agent, handler
from .._resource.declare import Resource, read, write
from .._resource.handle import Write

SKUS = ("mug", "lamp", "desk", "chair")
SHOPS = 3
START_CENTS = 100
INTERN_TRIES = 3
MODEL_LATENCY = timedelta(milliseconds=15)


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
        return dict.fromkeys(SKUS, START_CENTS)

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
    """Read the price, think, write it back one cent higher: under a lease on the sku,
    so the other pricing agent cannot read the same price in between."""

    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report, deadline, n = ShiftReport(), _deadline(shift.seconds), 0
        prices = self.resource("prices")
        while _open(deadline):
            n += 1
            sku = SKUS[n % len(SKUS)]
            async with self.lease(f"prices:{sku}", ttl=timedelta(seconds=5), expected=_HOLD):
                seen = await prices.read("price", sku)
                await self.model.complete(
                    [Message(role="user", content=f"price for {sku}?")], max_tokens=4
                )
                result = await prices.write("set_price", sku, seen.value + 1)
            result.unwrap()  # under the lease nothing else moves the price: an error is a bug
            report.done += 1
        return report


_HOLD = timedelta(milliseconds=500)  # a pricing round's expected hold: 2x it raises an alert


class InternAgent(Agent):
    """Not a declared writer of the inventory: every attempt is refused and logged."""

    @handler
    async def work(self, shift: Shift) -> ShiftReport:
        report = ShiftReport()
        for _ in range(INTERN_TRIES):
            result = await self.resource("inventory").write("restock", "mug", 1000)
            report.refused += result.error is not None
        return report


def intern_truth(shift: Shift) -> ShiftReport:
    """The ground truth the supervisor samples the intern's shifts against: refused every
    time it tries."""
    return ShiftReport(refused=INTERN_TRIES)


def shop_model() -> ScriptedModel:
    """The scripted model of the shops and the pricing agents (no network)."""
    rules = [ScriptedRule(pattern=rf"-{i}\d* wants", reply=sku) for i, sku in enumerate(SKUS)]
    return ScriptedModel(
        rules=[*rules, ScriptedRule(pattern="price", reply="ok")],
        default_reply="mug",
        latency=MODEL_LATENCY,
    )
