"""The CPU floor of an actor call from one async actor to another, in plain Ray, and what
carrying k items per call saves: the measure behind the supervisor's next design (several
attempts to one replica in one call). Not part of ``agentcast bench``; run it as
``python -m actors._cli.bench.call_floor [N]``: one JSON line per k, the CPU per item in
microseconds of the calling actor (the supervisor's place) and of the called one (the
agent's place), each item a pydantic message and an ``Envelope``, every call of a round
in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import ray
from pydantic import BaseModel

from runtime import Envelope

from .supervisor_cpu import cpu_s

BATCHES = (1, 4, 16)


class Ping(BaseModel):
    i: int


class Callee:
    """The agent's place: answers each item."""

    async def one(self, message: Ping, envelope: Envelope) -> Ping:
        return Ping(i=message.i)

    async def many(self, items: list[tuple[Ping, Envelope]]) -> list[Ping]:
        return [Ping(i=m.i) for m, _ in items]

    def pid(self) -> int:
        return os.getpid()


class Caller:
    """The supervisor's place: sends N items, k per call, all at once."""

    def __init__(self, callee: Any) -> None:
        self._callee = callee

    def pid(self) -> int:
        return os.getpid()

    async def run(self, n: int, k: int) -> int:
        envelope = Envelope()
        if k == 1:
            refs = [self._callee.one.remote(Ping(i=i), envelope) for i in range(n)]
            return len(await asyncio.gather(*refs))
        calls = [
            self._callee.many.remote([(Ping(i=i), envelope) for i in range(s, min(n, s + k))])
            for s in range(0, n, k)
        ]
        return sum(len(r) for r in await asyncio.gather(*calls))


def main(n: int = 4_000) -> None:
    """Print, per k, the CPU per item of the caller and the callee."""
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    callee: Any = ray.remote(Callee).options(max_concurrency=1000).remote()
    caller: Any = ray.remote(Caller).options(max_concurrency=1000).remote(callee)
    pids: dict[str, int] = {
        "caller": ray.get(caller.pid.remote()), "callee": ray.get(callee.pid.remote())
    }  # fmt: skip
    ray.get(caller.run.remote(500, 1))  # warm up
    for k in BATCHES:
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        began = time.perf_counter()
        ray.get(caller.run.remote(n, k))
        wall = time.perf_counter() - began
        row: dict[str, Any] = {
            name: round((cpu_s(pid) - before[name]) * 1e6 / n) for name, pid in pids.items()
        }
        print(json.dumps({"k": k, "n": n, "us_per_item": row, "items_per_s": round(n / wall)}))
    ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4_000)
