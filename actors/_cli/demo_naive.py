"""The naive half of ``agentcast demo``: two pricing agents raise prices the way plain
Ray invites, by reading a price from a shared actor, thinking, and writing it back. Each
overwrites the raises the other made while it was thinking: lost updates."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import ray

from .demo_agents import MODEL_LATENCY, SKUS, START_CENTS

PRICERS = 2
_START_S = 60.0  # how long a pricer waits for the other at the start line


class PlainPrices:
    """A plain Ray actor holding prices: get and set, nothing else."""

    def __init__(self) -> None:
        self.prices = dict.fromkeys(SKUS, START_CENTS)

    def get(self, sku: str) -> int:
        return self.prices[sku]

    def set(self, sku: str, cents: int) -> None:
        self.prices[sku] = cents

    def everything(self) -> dict[str, int]:
        return dict(self.prices)


@dataclass(frozen=True, slots=True)
class Raises:
    """What pricing agents did: raises made, and how many of them the prices show."""

    made: int
    applied: int

    @property
    def lost(self) -> int:
        return self.made - self.applied


def applied(prices: dict[str, int]) -> int:
    """The raises the prices show: each raise is one cent over the starting price."""
    return sum(prices.values()) - START_CENTS * len(SKUS)


def run_naive(rounds: int) -> Raises:
    """Two pricers, ``rounds`` raises each, on one plain Ray actor; what the prices show."""
    store: Any = ray.remote(PlainPrices).options(num_cpus=0).remote()
    start = threading.Barrier(PRICERS, timeout=_START_S)
    think = MODEL_LATENCY.total_seconds()

    def pricer() -> None:
        start.wait()
        for n in range(rounds):
            sku = SKUS[n % len(SKUS)]
            seen = ray.get(store.get.remote(sku))
            time.sleep(think)  # the model call
            ray.get(store.set.remote(sku, seen + 1))

    threads = [threading.Thread(target=pricer) for _ in range(PRICERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    prices: dict[str, int] = ray.get(store.everything.remote())
    ray.kill(store)
    return Raises(made=PRICERS * rounds, applied=applied(prices))
