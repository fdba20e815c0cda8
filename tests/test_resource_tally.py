"""The resource's write metrics: counted in memory per batch, recorded once per interval."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import actors._resource.tally as tally_module
from actors import WriteResult
from actors._resource.tally import WriteTally
from runtime import ConflictError


class _Sink:
    """Stands in for Ray's metric objects: what was recorded, in order."""

    def __init__(self, name: str, calls: list[tuple[Any, ...]]) -> None:
        self.name, self.calls = name, calls

    def inc(self, n: float, tags: dict[str, str]) -> None:
        self.calls.append((self.name, n, tags))

    observe = set = inc


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    for kind in ("counter", "gauge", "histogram"):
        monkeypatch.setattr(tally_module, kind, lambda name, *_: _Sink(name, calls))
    return calls


def _batch(version: int) -> list[WriteResult[Any]]:
    return [
        WriteResult(version, 1), WriteResult(version, 1, duplicate=True),
        WriteResult(version, error=ConflictError("r", 1, 2)),
    ]  # fmt: skip


@pytest.mark.timeout(30)
def test_batches_are_counted_in_memory_and_recorded_once_per_interval(
    recorded: list[tuple[Any, ...]],
) -> None:
    async def run() -> tuple[int, int]:
        tally = WriteTally("inv", every_s=0.2)
        for version in (1, 2, 3):
            tally.note(_batch(version), 1.5, version)
        before = len(recorded)
        for _ in range(100):  # bounded wait for the timer
            if recorded:
                break
            await asyncio.sleep(0.05)
        return before, len(recorded)

    before, after = asyncio.run(run())
    tags = {"resource": "inv"}
    assert before == 0
    assert after == len(recorded) == 7
    assert recorded == [
        ("resource_writes_total", 3, {**tags, "outcome": "committed"}),
        ("resource_writes_total", 3, {**tags, "outcome": "duplicate"}),
        ("resource_writes_total", 3, {**tags, "outcome": "ConflictError"}),
        ("resource_batch_ms", 1.5, tags), ("resource_batch_ms", 1.5, tags),
        ("resource_batch_ms", 1.5, tags),
        ("resource_version", 3, tags),
    ]  # fmt: skip


def test_without_an_event_loop_a_batch_is_recorded_at_once(
    recorded: list[tuple[Any, ...]],
) -> None:
    WriteTally("inv").note([WriteResult(4, 1)], 2.0, 4)
    assert [(name, n) for name, n, _ in recorded] == [
        ("resource_writes_total", 1), ("resource_batch_ms", 2.0), ("resource_version", 4),
    ]  # fmt: skip
