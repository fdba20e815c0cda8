"""Two Ray nodes on one machine, state in PostgreSQL: state actors and agents spread over
both nodes; the worker node's raylet is killed mid-run; every acknowledged write survives,
nothing is applied twice, the state actors, dedicated agent replicas and pooled agent hosts
that lived there come back on the head, and every agent answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from postgres_server import fresh
from two_node_cluster import two_nodes
from two_node_driver import SEEN

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

TESTS = Path(__file__).resolve().parent
PACKAGES = TESTS.parent


def test_state_actors_of_a_dead_node_come_back_on_the_head_from_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    pythonpath = os.pathsep.join([str(PACKAGES), str(TESTS)])
    with two_nodes(tmp_path, pythonpath) as cluster:
        config = {
            "address": cluster.address, "url": fresh(postgres_url),
            "namespace": f"two-{uuid.uuid4().hex[:8]}", "pythonpath": pythonpath,
            "raylet_pid": cluster.worker_raylet_pid(),
        }  # fmt: skip
        done = subprocess.run(
            [sys.executable, str(TESTS / "two_node_driver.py"), json.dumps(config)],
            capture_output=True, text=True, env=cluster.env, timeout=600,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(SEEN)]  # not Ray's log lines
    seen = json.loads(line.removeprefix(SEEN))
    resources = [name for name in seen["before"] if name.startswith("resource:")]
    on_worker = [name for name in resources if seen["before"][name] == "worker"]
    assert on_worker and len(on_worker) < len(resources), seen["before"]  # spread over both
    assert seen["nodes"] == ["head"]  # the worker node is gone
    for name in [*resources, "supervisor", "budget"]:  # every state actor runs, on the head
        assert seen["after"].get(name) == "head", (name, seen["before"], seen["after"])
    for name, count in seen["acked"].items():  # acknowledged, none lost, none twice
        assert seen["values"][name] == count
        assert seen["versions"][name] == list(range(1, count + 1))
    assert sum(seen["acked"].values()) == 90
    assert seen["finished"] == ["j0", "j1", "j2", "j3"]
    _agents_spread_and_come_back(seen)


def _agents_spread_and_come_back(seen: dict[str, Any]) -> None:
    """Dedicated replicas and pooled hosts were spread over both nodes (``SPREAD``); the
    replicas and hosts of the lost worker run again on the head (Ray restarts both), and
    every agent answers."""
    replicas = {n: at for n, at in seen["before"].items() if n.startswith("agent:")}
    assert len(replicas) >= 4 and set(replicas.values()) == {"head", "worker"}, replicas
    hosts = {n: at for n, at in seen["before"].items() if n.startswith("agent-host:")}
    assert len(hosts) >= 4 and set(hosts.values()) == {"head", "worker"}, hosts
    assert {n: seen["after"].get(n) for n in hosts} == {n: "head" for n in hosts}
    assert seen["pooled"] == [f"pooled{i}" for i in range(len(hosts))]  # all answer
    assert {n: seen["after"].get(n) for n in replicas} == {n: "head" for n in replicas}
    assert sorted(seen["dedicated"]) == sorted(
        replicas
    )  # every dedicated replica answers, from the head
