"""An agent for the dedicated-restart tests (importable by Ray workers by reference): it
says which process it runs in, and holds a task until a gate file exists."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel

from actors import Agent, handler


class Who(BaseModel):
    gate: str = ""  # a file to wait for first ("" answers at once)


class Me(BaseModel):
    pid: int
    replica: int


class Survivor(Agent):
    max_concurrency = 2

    @handler
    async def whoami(self, who: Who) -> Me:
        while who.gate and not Path(who.gate).exists():
            await asyncio.sleep(0.02)
        return Me(pid=os.getpid(), replica=self.replica)
