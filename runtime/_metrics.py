"""Metrics through ``ray.util.metrics``: they reach Ray's Prometheus endpoint and the
dashboard. Created lazily inside actors, once per process and name.

Gauges are kept alive: Ray 2.60's metrics agent drops a gauge series that was not set
again within two report intervals (``metrics_report_interval_ms``, 10 s by default; see
``OpenTelemetryMetricRecorder``), so a gauge set once (an actor's incarnation) or only on
activity (a resource's version) vanished from Prometheus while the actor idled. Every
gauge value set through ``gauge(...)`` is remembered and set again every
``GAUGE_REFRESH_S`` by one daemon thread per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from ray.util import metrics as ray_metrics

_CACHE: dict[str, Any] = {}
_LATENCY_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]

GAUGE_REFRESH_S = 4.0
"""How often remembered gauge values are set again: well inside Ray's default 20 s."""


class RecordTimer:
    """Calls ``record`` ``every_s`` after the first ``due()`` since it last ran, from the
    running event loop; at once when no loop runs in this thread. Counts summed in
    memory and handed to Ray this way cost a few metric calls a second, not a few per
    batch (a Ray metric call is tens of microseconds of Python)."""

    def __init__(self, record: Callable[[], None], every_s: float) -> None:
        self._record, self._every_s = record, every_s
        self._armed = False

    def due(self) -> None:
        if self._armed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._record()
            return
        self._armed = True
        loop.call_later(self._every_s, self._fire)

    def _fire(self) -> None:
        self._armed = False
        self._record()


def counter(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Counter:
    """The process's counter ``agentcast_<name>``."""
    key = f"c:{name}"
    if key not in _CACHE:
        _CACHE[key] = ray_metrics.Counter(f"agentcast_{name}", description, tag_keys=tags)
    return _CACHE[key]  # type: ignore[no-any-return]


def gauge(name: str, description: str, tags: tuple[str, ...]) -> KeptGauge:
    """The process's gauge ``agentcast_<name>``, whose values are set again every
    ``GAUGE_REFRESH_S`` so that an idle series does not vanish."""
    key = f"g:{name}"
    if key not in _CACHE:
        _CACHE[key] = KeptGauge(ray_metrics.Gauge(f"agentcast_{name}", description, tag_keys=tags))
    return _CACHE[key]  # type: ignore[no-any-return]


def histogram(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Histogram:
    """The process's latency histogram ``agentcast_<name>`` in milliseconds."""
    key = f"h:{name}"
    if key not in _CACHE:
        _CACHE[key] = ray_metrics.Histogram(
            f"agentcast_{name}", description, boundaries=_LATENCY_MS, tag_keys=tags
        )
    return _CACHE[key]  # type: ignore[no-any-return]


class KeptGauge:
    """A Ray gauge that remembers its last value per tag set and sets it again from the
    process's refresher thread."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._last: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()
        _Refresher.watch(self)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Set the gauge for ``tags`` (and keep the value alive)."""
        with self._lock:
            self._last[tuple(sorted((tags or {}).items()))] = value
        self._inner.set(value, tags=tags)

    def forget(self, tags: dict[str, str] | None = None) -> None:
        """Stop refreshing the series ``tags`` (it then ages out of Prometheus)."""
        with self._lock:
            self._last.pop(tuple(sorted((tags or {}).items())), None)

    def refresh(self) -> None:
        """Set every remembered value again."""
        with self._lock:
            kept = list(self._last.items())
        for tags, value in kept:
            self._inner.set(value, tags=dict(tags) or None)


class _Refresher:
    """The one daemon thread of a process that refreshes its kept gauges."""

    _gauges: list[KeptGauge] = []
    _thread: threading.Thread | None = None
    _lock = threading.Lock()
    _period = threading.Event()  # never set: waiting on it is the pause between rounds

    @classmethod
    def watch(cls, kept: KeptGauge) -> None:
        with cls._lock:
            cls._gauges.append(kept)
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(
                    target=cls._run, name="agentcast-gauges", daemon=True
                )
                cls._thread.start()

    @classmethod
    def _run(cls) -> None:
        while not cls._period.wait(GAUGE_REFRESH_S):
            with cls._lock:
                gauges = list(cls._gauges)
            for kept in gauges:
                with contextlib.suppress(Exception):  # a hiccup must not stop the thread
                    kept.refresh()
