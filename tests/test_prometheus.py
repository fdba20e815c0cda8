"""The Grafana board against a real Prometheus: a running agentcast system (its own Ray,
in a subprocess) is scraped through Ray's service-discovery file, and every panel's query
returns series, and the events metrics (a poison event dead-lettered, a contract refusal)
read back by value. Gauges stay in Prometheus while the system idles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from metrics_workload import EVENT_ATTEMPTS
from prometheus_server import Prometheus, prometheus, prometheus_binary
from waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "grafana" / "agentcast.json"
IDLE_S = 30  # Ray drops a gauge not set again within 2 report intervals (2 x 10 s)
_TAKER = 'resource="orders",subscriber="taker"'
# What tests/metrics_workload.py's events part leaves, exactly.
EVENT_VALUES = {
    f"sum(ray_agentcast_events_dead_lettered_total{{{_TAKER}}})": 1.0,
    f'sum(ray_agentcast_event_delivery_failures_total{{{_TAKER},reason="handler"}})': float(
        EVENT_ATTEMPTS
    ),
    f"sum(ray_agentcast_events_delivered_total{{{_TAKER}}})": 1.0,  # a, before the poison
    f"max(ray_agentcast_event_lag{{{_TAKER}}})": 2.0,  # stopped at b, c behind it
}


def panel_queries(board: dict[str, Any]) -> dict[str, str]:
    """Every panel's query, by panel title (rows' nested panels included)."""
    found: dict[str, str] = {}
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                found[f"{inner['title']} ({target['refId']})"] = target["expr"]
    return found


@contextmanager
def workload(storage: Path) -> Iterator[dict[str, Any]]:
    """Run tests/metrics_workload.py until the block ends; yields what it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "metrics_workload.py"), str(storage)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        # Ray may print its own warnings on stdout first: the workload's line is JSON.
        for line in process.stdout:  # bounded by the test's timeout
            if line.startswith("{"):
                drain = threading.Thread(target=process.stdout.read, daemon=True)
                drain.start()  # so that later output never fills the pipe and blocks it
                yield json.loads(line)
                break
        else:
            raise AssertionError(f"the workload exited with {process.wait()}")
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _targets(discovery: Path) -> bool:
    try:
        return any(group["targets"] for group in json.loads(discovery.read_text()))
    except (OSError, ValueError):
        return False


def test_the_board_names_only_agentcast_metrics_with_the_ray_prefix() -> None:
    queries = panel_queries(json.loads(BOARD.read_text()))
    assert len(queries) >= 18
    assert all("ray_agentcast_" in expr for expr in queries.values())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_panel_of_the_board_returns_series_from_a_real_prometheus(
    tmp_path: Path,
) -> None:
    prometheus_binary()
    queries = panel_queries(json.loads(BOARD.read_text()))
    with workload(tmp_path / "storage") as info:
        idle_since = time.monotonic()  # the workload wrote nothing after it printed
        discovery = Path(info["session_dir"]) / "prom_metrics_service_discovery.json"
        wait_until(lambda: _targets(discovery), f"targets in {discovery}", limit=120)
        with prometheus(tmp_path / "prometheus", discovery) as server:
            for title, expr in queries.items():
                wait_until(lambda e=expr: server.query(e), f"series for {title}: {expr}", 180)
            _events_by_value(server)
            _gauges_stay_while_idle(server, idle_since)


def _value(server: Prometheus, expr: str) -> float | None:
    """The value of a query that returns one series; None otherwise."""
    found = server.query(expr)
    return float(found[0]["value"][1]) if len(found) == 1 else None


def _events_by_value(server: Prometheus) -> None:
    """The events metrics read back from Prometheus equal what the workload did; the
    refused partition's contract failures go on growing (retried with backoff)."""
    for expr, value in EVENT_VALUES.items():
        wait_until(lambda e=expr, v=value: _value(server, e) == v, f"{expr} == {value}", 60)
    refused = f'sum(ray_agentcast_event_delivery_failures_total{{{_TAKER},reason="contract"}})'
    wait_until(lambda: (_value(server, refused) or 0) >= 1, f"{refused} >= 1", 60)
    stray = 'sum(ray_agentcast_event_delivery_failures_total{reason="handler"})'
    assert _value(server, stray) == EVENT_ATTEMPTS  # no handler failure but the poison's


def _gauges_stay_while_idle(server: Prometheus, idle_since: float) -> None:
    """Past Ray's gauge lifetime with no write, the version and incarnation are still
    scraped fresh (each sample under 5 s old)."""
    wait_until(lambda: time.monotonic() - idle_since > IDLE_S, "the system idled", IDLE_S + 60)
    for name in ("ray_agentcast_resource_version", "ray_agentcast_resource_incarnation"):
        fresh = server.query(f"time() - timestamp({name}{{resource='inventory'}}) < 5")
        assert len(fresh) == 1, f"{name} is not scraped fresh after {IDLE_S} s idle"
