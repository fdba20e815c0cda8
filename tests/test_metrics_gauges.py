"""Kept gauges: the last value of each series is set again, so an idle series does not
vanish from Prometheus (Ray drops a gauge not set within two report intervals)."""

from __future__ import annotations

from typing import Any

from runtime import KeptGauge


class _Recorder:
    def __init__(self) -> None:
        self.sets: list[tuple[float, dict[str, str] | None]] = []

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.sets.append((value, tags))


def test_refresh_sets_every_series_last_value_again() -> None:
    inner = _Recorder()
    kept = KeptGauge(inner)
    kept.set(1, tags={"resource": "a"})
    kept.set(2, tags={"resource": "a"})
    kept.set(7, tags={"resource": "b"})
    kept.set(3)
    inner.sets.clear()
    kept.refresh()
    assert sorted(inner.sets, key=repr) == sorted(
        [(2, {"resource": "a"}), (7, {"resource": "b"}), (3, None)], key=repr
    )


def test_a_forgotten_series_is_no_longer_refreshed() -> None:
    inner: Any = _Recorder()
    kept = KeptGauge(inner)
    kept.set(1, tags={"resource": "a"})
    kept.forget({"resource": "a"})
    inner.sets.clear()
    kept.refresh()
    assert inner.sets == []
