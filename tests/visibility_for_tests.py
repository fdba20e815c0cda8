"""A shop and the validator agents of the decision-visibility tests."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from actors import Agent, Resource, Veto, handler, read, subscribe, validate, write


class PromiseMade(BaseModel):
    sku: str
    price: int


class PriceChanged(BaseModel):
    sku: str
    price: int


class Shop(Resource):
    """Prices and the promises made against them, in one resource."""

    emits = (PromiseMade, PriceChanged)

    @write
    def set_price(self, state: dict[str, Any], sku: str, price: int) -> int:
        state[f"price:{sku}"] = price
        self.emit(PriceChanged(sku=sku, price=price))
        return price

    @write
    def promise(self, state: dict[str, Any], sku: str, price: int) -> int:
        state["promises"] = state.get("promises", 0) + 1
        self.emit(PromiseMade(sku=sku, price=price))
        return int(state["promises"])

    runs = 0  # how many times ``counted_promise`` ran in this resource instance

    @write
    def counted_promise(self, state: dict[str, Any], sku: str, price: int) -> int:
        """A promise that counts its method's runs (each call must run it once)."""
        self.runs += 1
        state["runs"] = self.runs
        self.emit(PromiseMade(sku=sku, price=price))
        return self.runs

    @write
    def note(self, state: dict[str, Any], text: str) -> str:
        state["note"] = text
        return text

    @read
    def price(self, state: dict[str, Any], sku: str) -> int:
        return int(state.get(f"price:{sku}", 0))

    @read
    def promises(self, state: dict[str, Any]) -> int:
        return int(state.get("promises", 0))

    @read
    def noted(self, state: dict[str, Any]) -> str:
        return str(state.get("note", ""))


class Ping(BaseModel):
    n: int = 0


class Pricing(Agent):
    """Vetoes a promise quoting another price than the shop's, read from the very
    resource whose write waits on this verdict."""

    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        current = await self.resource("shop").price(event.sku)
        if current != event.price:
            return Veto(reason=f"quoted {event.price}, price is {current}")
        return None

    @handler
    async def ping(self, message: Ping) -> Ping:
        return message


class Slow(Agent):
    """Answers after 30 s: past any deadline of the tests."""

    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        await asyncio.sleep(30)
        return None


class Crashy(Agent):
    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        raise RuntimeError("validator bug")


class Liar(Agent):
    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        return "fine"  # type: ignore[return-value]


class Deaf(Agent):
    """Running, but with no handler of any event."""

    @handler
    async def ping(self, message: Ping) -> Ping:
        return message


class Listener(Agent):
    """Hears of every price change (an ``immediate`` subscriber): notes it in the shop."""

    @subscribe(PriceChanged)
    async def heard(self, event: PriceChanged) -> None:
        await self.resource("shop").note(f"{event.sku} now {event.price}")


class Stuck(Agent):
    """Never answers on the sku ``stuck`` (a validator wedged by one input); allows the rest."""

    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        if event.sku == "stuck":
            await asyncio.Event().wait()
        return None
