"""The lag gauge of the dispatcher (``DeliveryTally.lag``): one series per partition
that exists now; the series of a partition that is gone (its group forgotten, its
resource's store deleted) is no longer kept alive at its last value."""

from __future__ import annotations

import asyncio

import pytest

from actors._events import tally
from actors._events.partition import Lag
from runtime import KeptGauge
from runtime.testing import FakeClock


class _Recorder:
    def __init__(self) -> None:
        self.sets: list[tuple[float, dict[str, str] | None]] = []

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.sets.append((value, tags))


@pytest.mark.timeout(60)
def test_the_lag_of_a_forgotten_group_is_no_longer_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = _Recorder()
    kept = KeptGauge(inner)
    monkeypatch.setattr(tally, "gauge", lambda *args: kept)
    monkeypatch.setattr(tally, "LAG_EVERY_S", 0.0)
    counted = tally.DeliveryTally(FakeClock())
    partitions = [Lag("pricing", "stock", 3, 500), Lag("audit", "stock", 500, 500)]

    def lags(resources: list[str]) -> list[Lag]:
        assert resources == ["stock"]
        return list(partitions)

    async def rounds() -> None:
        counted.lag(lags, lambda: ["stock"])
        partitions.pop(0)  # ``forget("pricing")``
        counted.lag(lags, lambda: ["stock"])

    asyncio.run(rounds())
    inner.sets.clear()
    kept.refresh()
    assert inner.sets == [(0, {"resource": "stock", "subscriber": "audit"})]
