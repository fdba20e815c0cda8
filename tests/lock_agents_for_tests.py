"""Agents that take leases, shared by the lock tests and importable by Ray workers."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from pydantic import BaseModel

from actors import Agent, handler
from runtime import LockError, StaleLeaseError


class Hold(BaseModel):
    keys: list[str]
    sku: str = "A"
    ttl_s: float = 10.0
    write_at: float = 0.0  # time.time() to write at, holding the lease until then
    timeout_s: float = 30.0


class Held(BaseModel):
    tokens: dict[str, int]
    outcome: str  # "applied", "stale" or the lock error's type
    lost: bool


class WhoAmI(BaseModel):
    pass


class Pid(BaseModel):
    pid: int


class Peek(BaseModel):
    pass


class Seen(BaseModel):
    held: int
    keys: list[str]


class Holder(Agent):
    """Takes a lease, holds it until ``write_at``, then writes once under it."""

    @handler
    async def hold(self, message: Hold) -> Held:
        try:
            async with self.lease(
                *message.keys, ttl=timedelta(seconds=message.ttl_s),
                timeout=timedelta(seconds=message.timeout_s),
            ) as lease:  # fmt: skip
                while time.time() < message.write_at:
                    await asyncio.sleep(0.02)
                try:
                    await self.resource("inventory").restock(message.sku, 1)
                    outcome = "applied"
                except StaleLeaseError:
                    outcome = "stale"
                return Held(tokens=lease.tokens, outcome=outcome, lost=lease.lost)
        except LockError as error:
            return Held(tokens={}, outcome=type(error).__name__, lost=True)

    @handler
    async def peek(self, message: Peek) -> Seen:
        status = await self.locks.status()
        return Seen(held=status.held, keys=[key.key for key in status.keys])

    @handler
    async def pid(self, message: WhoAmI) -> Pid:
        return Pid(pid=os.getpid())
