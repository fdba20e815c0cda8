"""The driver of tests/test_two_nodes.py, run as its own process on the two-node cluster:
resources (spread over both nodes by PostgreSQL storage) take writes with idempotency keys;
the worker node's raylet is killed mid-run; every write is sent again with its key until
acknowledged; then it prints what it saw as JSON, on a line of its own after ``SEEN``
(Ray may forward a dying raylet's log lines to this stdout too)."""

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

from actors import AgentGroup, ResourceHandle, System, Write
from policies import HostPolicy
from runtime import resource_actor_name

RESOURCES = [f"inv{i}" for i in range(6)]
BEFORE_KILL, TOTAL = 30, 90
ONE_PER_HOST = HostPolicy(agents_per_host=1)  # each pooled agent starts a host of its own

SEEN = "SEEN "
"""What starts the line the test reads."""


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


def _placed(system: System, name: str, i: int) -> ResourceHandle:
    """Resource ``name`` as the system starts it (spread over the nodes, but Ray may put
    all on one node); started again until an odd one lives on the worker node and an even
    one on the head, so that both nodes surely hold some."""
    handle = system.resource(Inventory, name=name, writers=["system"])
    actor, wanted = resource_actor_name(name), "worker" if i % 2 else "head"
    for _ in range(20):
        if _placement().get(actor) == wanted:
            break
        ray.kill(ray.get_actor(actor, namespace=system.namespace), no_restart=True)
        _until_it_answers(lambda: _gone(actor, system.namespace))
        handle = system.resource(Inventory, name=name, writers=["system"])
    return handle


def _pooled_on_both_nodes(system: System) -> list[AgentGroup]:
    """Pooled agents, one per host, the hosts spread over the nodes: four, and more (to
    a bound) while Ray has not put one on each node."""
    groups = [
        system.agent(Worker, name=f"pooled{i}", placement="pooled", hosts=ONE_PER_HOST)
        for i in range(4)
    ]
    while len(groups) < 8 and len(_kinds(_placement(), "agent-host:")) < 2:
        name = f"pooled{len(groups)}"
        groups.append(system.agent(Worker, name=name, placement="pooled", hosts=ONE_PER_HOST))
    return groups


def _dedicated_on_both_nodes(system: System) -> list[AgentGroup]:
    """``workers`` (four dedicated replicas, spread over the nodes), and agents of one
    replica more (to a bound) while Ray has not put a dedicated replica on each node."""
    groups = [system.agent(Worker, name="workers", replicas=4)]
    while len(groups) < 8 and len(_kinds(_placement(), "agent:")) < 2:
        groups.append(system.agent(Worker, name=f"solo{len(groups)}"))
    return groups


def _kinds(placed: dict[str, str], prefix: str) -> set[str]:
    return {node for name, node in placed.items() if name.startswith(prefix)}


def _all_alive(actors: list[str]) -> bool:
    placed = _placement()
    if missing := [a for a in actors if a not in placed]:
        raise RuntimeError(f"not running yet: {missing}")
    return True


def _gone(actor: str, namespace: str) -> bool:
    try:
        ray.get_actor(actor, namespace=namespace)
    except ValueError:
        return True
    raise RuntimeError(f"{actor} still named")


def _nodes_are(kinds: list[str]) -> bool:
    if sorted(_nodes().values()) != kinds:
        raise RuntimeError(f"alive nodes: {sorted(_nodes().values())}")
    return True


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


def _ask(group: AgentGroup, replica: int) -> Any:
    return ray.get(group.call(Job(key=group.name), replica=replica), timeout=60)


def main(config: dict[str, Any]) -> dict[str, Any]:
    namespace = config["namespace"]
    ray.init(
        address=config["address"], namespace=namespace, logging_level=logging.ERROR,
        runtime_env={"env_vars": {"PYTHONPATH": config["pythonpath"]}},
    )  # fmt: skip
    system = System.connect(config["address"], storage=config["url"], namespace=namespace)
    handles = {n: _placed(system, n, i) for i, n in enumerate(RESOURCES)}
    dedicated = _dedicated_on_both_nodes(system)
    pooled = _pooled_on_both_nodes(system)
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
    _until_it_answers(lambda: _nodes_are(["head"]))  # the GCS has seen the worker go
    hosts = [f"agent-host:{i}" for i in range(len(pooled))]
    replicas = [f"agent:{g.name}:{i}" for g in dedicated for i in range(len(g.actors))]
    state = [resource_actor_name(n) for n in RESOURCES] + ["supervisor", "budget", *hosts]
    _until_it_answers(lambda: _all_alive(state + replicas))  # restarted by Ray, somewhere alive
    answers = [_until_it_answers(lambda g=g: g.ask(Job(key=g.name), timeout=60)) for g in pooled]
    answered = [  # each replica, the ones that lived on the worker included
        f"agent:{g.name}:{_until_it_answers(lambda g=g, i=i: _ask(g, i)).replica}"
        for g in dedicated
        for i in range(len(g.actors))
    ]
    result = {
        "before": before,
        "after": _placement(),
        "acked": dict(acked),
        "values": {n: handles[n].read("available", "A").value for n in RESOURCES},
        "versions": {n: [r.version for r in system.log(n).records()] for n in RESOURCES},
        "finished": finished,
        "pooled": [a.key for a in answers],
        "dedicated": answered,
        "nodes": sorted(_nodes().values()),
    }
    system.shutdown()
    return result


if __name__ == "__main__":
    print(SEEN + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
