"""Metrics through ``ray.util.metrics``: they reach Ray's Prometheus endpoint and the
dashboard. Created lazily inside actors, once per process and name."""

from __future__ import annotations

from typing import Any

from ray.util import metrics as ray_metrics

_CACHE: dict[str, Any] = {}
_LATENCY_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]


def counter(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Counter:
    """The process's counter ``agentcast_<name>``."""
    key = f"c:{name}"
    if key not in _CACHE:
        _CACHE[key] = ray_metrics.Counter(f"agentcast_{name}", description, tag_keys=tags)
    return _CACHE[key]  # type: ignore[no-any-return]


def gauge(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Gauge:
    """The process's gauge ``agentcast_<name>``."""
    key = f"g:{name}"
    if key not in _CACHE:
        _CACHE[key] = ray_metrics.Gauge(f"agentcast_{name}", description, tag_keys=tags)
    return _CACHE[key]  # type: ignore[no-any-return]


def histogram(name: str, description: str, tags: tuple[str, ...]) -> ray_metrics.Histogram:
    """The process's latency histogram ``agentcast_<name>`` in milliseconds."""
    key = f"h:{name}"
    if key not in _CACHE:
        _CACHE[key] = ray_metrics.Histogram(
            f"agentcast_{name}", description, boundaries=_LATENCY_MS, tag_keys=tags
        )
    return _CACHE[key]  # type: ignore[no-any-return]
