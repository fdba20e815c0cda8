"""An agent that does one of everything a trace shows: a model call, a tool call through
its breaker, and a write (importable by Ray workers by reference)."""

from __future__ import annotations

from pydantic import BaseModel

from actors import Agent, handler
from runtime import Message


class Order(BaseModel):
    sku: str
    qty: int


class Placed(BaseModel):
    left: int
    tokens: int


class Clerk(Agent):
    @handler
    async def place(self, order: Order) -> Placed:
        reply = await self.model.complete(
            [Message(role="user", content=f"place {order.qty} of {order.sku}")], max_tokens=8
        )
        async with self.budget.guard("tool:lookup"):
            pass  # the tool itself: nothing to call in a test
        left = await self.resource("inventory").restock(order.sku, order.qty)
        return Placed(left=left, tokens=reply.usage.completion_tokens)
