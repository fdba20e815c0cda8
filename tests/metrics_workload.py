"""A small agentcast system with its own Ray (and Ray's dashboard, which writes the
Prometheus service-discovery file) that makes every agentcast metric move, then idles
until its standard input closes. Run by tests/test_prometheus.py as a subprocess; prints
one JSON line: the Ray session directory and the namespace."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from datetime import timedelta

import ray
from contract_events_for_tests import AnyOrders
from metrics_agents_for_tests import Broken, Chore, Done, Greedy, Taker, Worker
from ownership_for_tests import Drafts
from resources_for_tests import Inventory
from waiting import wait_until

from actors import Subscriptions, System, Write
from actors._cli.bench.lock_checks import detection_samples
from actors._locks.client import LocksCalls
from actors._locks.lease import lease_request
from actors._reconnect import run_blocking
from policies import (
    BudgetLimit,
    BudgetPolicy,
    ConflictAction,
    ConflictPolicy,
    ConflictRule,
    Deadlines,
    Dimension,
    EventsPolicy,
    LockPolicy,
    ModelPrice,
    PriceTable,
    ResourcePolicy,
    SamplingPolicy,
    Scope,
    ScopeKind,
)
from runtime.testing import ScriptedModel

NAMESPACE = "metrics-workload"
# What the events part leaves, as tests/test_prometheus.py reads it back from Prometheus.
EVENT_ATTEMPTS = 2  # max_delivery_attempts: the poison event's handler failures


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


def _take_after_a_wait(system: System) -> None:
    with system.lease("orders:1", expected=timedelta(milliseconds=50)):
        pass


def _leases_and_conflicts(system: System) -> None:
    """A wait cycle broken, a wait past its expected hold, a lease expired by the runtime,
    and a conflict settled by a rule: every lease and conflict metric moves."""
    tick = timedelta(milliseconds=50)
    system.use_locks(LockPolicy(enforce_order=False, tick=tick))
    detection_samples(system, 1, tick)
    with system.lease("orders:1", ttl=timedelta(seconds=30)):
        waiter = threading.Thread(target=_take_after_a_wait, args=(system,))
        waiter.start()
        wait_until(lambda: system.locks.status().alerts, "a wait past its expected hold")
    waiter.join(60)
    calls = LocksCalls(lambda: system.locks.actor)
    paused = lease_request(
        ("orders:2",), owner="paused", agent="paused", ttl=timedelta(milliseconds=300),
        expected=None, shared=False, timeout=timedelta(seconds=60),
    )  # fmt: skip
    run_blocking(calls.acquire(paused, 60.0), calls.clock)  # never renewed
    wait_until(lambda: system.locks.status().expired, "a lease expired by the runtime")
    merge = ConflictRule(action=ConflictAction.MERGE, merge_op="merge_revise")
    drafts = system.resource(
        Drafts, name="drafts", policy=ResourcePolicy(conflicts=ConflictPolicy(rules=(merge,)))
    )
    drafts.revise("d1", "first")
    drafts.write(Write(op="revise", args=["d1", "second"], expected_version=0))


def _events(system: System) -> None:
    """One subscriber, one resource: ``a`` taken (1 delivered), ``bad`` dead-lettered after
    ``EVENT_ATTEMPTS`` handler failures, then ``b`` refused by contract (v1): the partition
    stops there, retried with backoff until the system ends, ``b`` and ``c`` past its
    checkpoint (lag 2)."""
    policy = EventsPolicy(
        max_delivery_attempts=EVENT_ATTEMPTS, retry_backoff=timedelta(milliseconds=20),
        max_backoff=timedelta(seconds=2),
    )  # fmt: skip
    subs = Subscriptions.start(system, policy)
    orders = system.resource(AnyOrders, name="orders")
    system.agent(Taker, name="taker")
    for sku, version in (("a", 2), ("bad", 2), ("b", 1), ("c", 2)):
        orders.place(sku, version)

    def stopped() -> bool:
        (row,) = [row for row in subs.status() if row["resource"] == "orders"]
        return row["checkpoint"] == 2 and str(row["error"]).startswith("contract:")

    wait_until(stopped, "the poison dead-lettered and the contract refusal", 120)


def main() -> int:
    with System.start(None if len(sys.argv) < 2 else sys.argv[1], namespace=NAMESPACE,
                      budgets=_policy()) as system:  # fmt: skip
        _work(system)
        _leases_and_conflicts(system)
        _events(system)
        node = ray._private.worker.global_worker.node
        print(json.dumps({"session_dir": node.get_session_dir_path(), "namespace": NAMESPACE}))
        sys.stdout.flush()
        sys.stdin.read()  # idle until the test closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(main())
