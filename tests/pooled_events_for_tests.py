"""An agent that hears events, validates promises and can be wedged: pooled in tests."""

from __future__ import annotations

import asyncio

from events_for_tests import Restocked
from pydantic import BaseModel
from visibility_for_tests import PromiseMade

from actors import Agent, Veto, handler, subscribe, validate


class Hang(BaseModel):
    pass


class Watcher(Agent):
    """Notes each restock; vetoes promises above 100; ``Hang`` holds its only slot."""

    max_concurrency = 1

    def __init__(self) -> None:
        self.seen: list[str] = []

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        self.seen.append(event.sku)

    @validate(PromiseMade)
    async def check(self, event: PromiseMade) -> Veto | None:
        return Veto(reason=f"{event.price} > 100") if event.price > 100 else None

    @handler
    async def hang(self, message: Hang) -> Hang:
        await asyncio.Event().wait()
        return message
