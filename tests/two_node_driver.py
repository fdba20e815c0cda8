"""The driver of tests/test_two_nodes.py, run as its own process on the two-node cluster:
resources (spread over both nodes by PostgreSQL storage) take writes with idempotency keys;
the worker node's raylet is killed mid-run; every write is sent again with its key until
acknowledged; then it prints what it saw as JSON."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import ray
from resources_for_tests import Inventory
from supervised_agents import Done, Job, Worker

from actors import ResourceHandle, System, Write

RESOURCES = [f"inv{i}" for i in range(6)]
BEFORE_KILL, TOTAL = 30, 90


def _nodes() -> dict[str, str]:
    return {
        node["NodeID"]: "worker" if "worker_node" in node["Resources"] else "head"
        for node in ray.nodes()
        if node["Alive"]
    }


def _placement() -> dict[str, str]:
    """Where each alive named actor of the (test's own) cluster runs: head or worker."""
    nodes = _nodes()
    placed = {}
    for info in ray._private.state.actors().values():  # the GCS's table: no dashboard needed
        if info["State"] == "ALIVE" and info["Name"]:
            placed[info["Name"]] = nodes.get(info["Address"]["NodeID"], "dead")
    return placed


def _write_until_acked(handle: ResourceHandle, key: str, limit_s: float = 150.0) -> int:
    """Send the write with its key until the resource acknowledges it; its version."""
    ends = time.monotonic() + limit_s
    while True:
        try:
            return handle.write(Write(op="restock", args=("A", 1), key=key)).version
        except Exception:
            if time.monotonic() > ends:
                raise
            time.sleep(0.2)


def _until_it_answers(call: Any, limit_s: float = 150.0) -> Any:
    ends = time.monotonic() + limit_s
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > ends:
                raise
            time.sleep(0.5)


def main(config: dict[str, Any]) -> dict[str, Any]:
    namespace = config["namespace"]
    ray.init(
        address=config["address"], namespace=namespace, logging_level=logging.ERROR,
        runtime_env={"env_vars": {"PYTHONPATH": config["pythonpath"]}},
    )  # fmt: skip
    system = System.connect(config["address"], storage=config["url"], namespace=namespace)
    handles = {n: system.resource(Inventory, name=n, writers=["system"]) for n in RESOURCES}
    system.agent(Worker, name="workers", replicas=4)
    system.budget.status()  # starts the budget actor
    warm = [
        system.supervisor.submit(Job(key=f"warm{i}"), to="workers", expect=Done) for i in range(4)
    ]
    [h.result(timeout=120) for h in warm]
    before = _placement()
    acked: Counter[str] = Counter()
    for i in range(TOTAL):
        if i == BEFORE_KILL:
            os.kill(config["raylet_pid"], signal.SIGKILL)  # the worker node goes away
        name = RESOURCES[i % len(RESOURCES)]
        _write_until_acked(handles[name], f"w{i}")
        acked[name] += 1
    jobs = [system.supervisor.submit(Job(key=f"j{i}"), to="workers", expect=Done) for i in range(4)]
    finished = sorted(h.result(timeout=150).key for h in jobs)
    _until_it_answers(lambda: system.budget.status())
    result = {
        "before": before,
        "after": _placement(),
        "acked": dict(acked),
        "values": {n: handles[n].read("available", "A").value for n in RESOURCES},
        "versions": {n: [r.version for r in system.log(n).records()] for n in RESOURCES},
        "finished": finished,
        "nodes": sorted(_nodes().values()),
    }
    system.shutdown()
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
