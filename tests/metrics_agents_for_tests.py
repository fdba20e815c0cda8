"""Agents of the metrics workload (importable by Ray workers by reference): between them
they make every agentcast metric move at least once."""

from __future__ import annotations

import asyncio

from contract_events_for_tests import V2
from pydantic import BaseModel

from actors import Agent, handler, subscribe
from runtime import BudgetExceededError, Message


class Chore(BaseModel):
    kind: str
    n: int = 0


class Done(BaseModel):
    kind: str
    note: str = ""


class Broken(BaseModel):
    """An output the handler never returns: its subtasks fail on schema."""

    never: int


class Worker(Agent):
    max_concurrency = 4

    @handler
    async def chore(self, chore: Chore) -> Done:
        if chore.kind == "ask":
            reply = await self.model.complete([Message(role="user", content="hi")], max_tokens=8)
            return Done(kind=chore.kind, note=reply.text or "")
        if chore.kind == "write":
            await self.resource("inventory").restock("a", 1)
            try:
                await self.resource("inventory").reserve("zzz", 1)  # refused: out of stock
            except Exception as error:
                return Done(kind=chore.kind, note=type(error).__name__)
        if chore.kind == "slow":
            await asyncio.sleep(chore.n)
        if chore.kind == "tool":
            await self.budget.try_retry("tool:flaky")
            try:
                async with self.budget.guard("tool:flaky"):
                    raise ConnectionError("flaky tool is down")
            except ConnectionError:
                pass
        return Done(kind=chore.kind)


class Greedy(Agent):
    """Asks for more than its cap allows: refused by the budget."""

    @handler
    async def chore(self, chore: Chore) -> Done:
        try:
            await self.model.complete([Message(role="user", content="x" * 400)], max_tokens=8)
        except BudgetExceededError as error:
            return Done(kind="refused", note=str(error))
        return Done(kind="allowed")


class Taker(Agent):
    """Speaks ``order_placed`` v2 (a v1 event is refused by contract); its handler always
    fails at the sku ``bad`` (a poison event) and takes every other."""

    @subscribe(V2.Placed)
    async def on_placed(self, event: V2.Placed) -> None:
        if event.sku == "bad":
            raise ValueError("bad is poison")
