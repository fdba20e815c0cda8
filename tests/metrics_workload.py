"""A small agentcast system with its own Ray (and Ray's dashboard, which writes the
Prometheus service-discovery file) that makes every agentcast metric move, then idles
until its standard input closes. Run by tests/test_prometheus.py as a subprocess; prints
one JSON line: the Ray session directory and the namespace."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import timedelta

import ray
from metrics_agents_for_tests import Broken, Chore, Done, Greedy, Worker
from resources_for_tests import Inventory

from actors import System
from policies import (
    BudgetLimit,
    BudgetPolicy,
    Deadlines,
    Dimension,
    ModelPrice,
    PriceTable,
    SamplingPolicy,
    Scope,
    ScopeKind,
)
from runtime.testing import ScriptedModel

NAMESPACE = "metrics-workload"


def _policy() -> BudgetPolicy:
    greedy = BudgetLimit(
        scope=Scope(kind=ScopeKind.AGENT, key="greedy"), dimension=Dimension.PROMPT_TOKENS, cap=10
    )
    cluster = BudgetLimit(
        scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.CALLS, cap=10_000
    )
    prices = PriceTable(default=ModelPrice(prompt_per_1k=0.01, completion_per_1k=0.02))
    return BudgetPolicy(limits=(greedy, cluster), prices=prices)


def _truth(chore: Chore) -> Done:
    return Done(kind=chore.kind, note="ok" if chore.kind == "ask" else "")


def _work(system: System) -> None:
    system.resource(Inventory, name="inventory", writers=["workers", "system"])
    model = ScriptedModel(default_reply="ok")
    system.agent(Worker, name="workers", replicas=2, model=model)
    system.agent(Greedy, name="greedy", model=model)
    supervisor = system.supervisor
    supervisor.declare_stage("ship", timedelta(milliseconds=300))
    supervisor.sample("workers", _truth, policy=SamplingPolicy(rate=1.0))
    short = Deadlines(running=timedelta(seconds=1))
    handles = [
        supervisor.submit(Chore(kind=k), to="workers", expect=Done)
        for k in ("ask", "write", "tool")
    ]
    handles.append(supervisor.submit(Chore(kind="ask"), to="greedy", expect=Done))
    handles.append(
        supervisor.submit(Chore(kind="pack"), to="workers", expect=Done, next_stage="ship")
    )
    for handle in handles:
        handle.result(timeout=120)
    failing = [
        supervisor.submit(Chore(kind="odd"), to="workers", expect=Broken),
        supervisor.submit(Chore(kind="slow", n=3), to="workers", expect=Done, deadline=short),
    ]
    for handle in failing:
        with contextlib.suppress(Exception):  # they fail: schema, deadline
            handle.result(timeout=120)
    system.get_resource("inventory").restock("b", 1)


def main() -> int:
    with System.start(None if len(sys.argv) < 2 else sys.argv[1], namespace=NAMESPACE,
                      budgets=_policy()) as system:  # fmt: skip
        _work(system)
        node = ray._private.worker.global_worker.node
        print(json.dumps({"session_dir": node.get_session_dir_path(), "namespace": NAMESPACE}))
        sys.stdout.flush()
        sys.stdin.read()  # idle until the test closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(main())
