"""``agentcast check`` against live systems on a real local Ray: the demo's storefront
passes the items it has; a well-configured system passes every item whose part runs; a
deliberately misconfigured one fails with the right lines; the command's exit status and
JSON follow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from resources_for_tests import Inventory
from supervised_agents import Done, Job, Worker

from actors import System
from actors._cli import demo
from actors._cli.check import check_namespace
from actors._cli.main import main
from policies import BudgetLimit, BudgetPolicy, Dimension, SamplingPolicy, Scope, ScopeKind
from runtime import InvalidArgumentError
from runtime.testing import ScriptedModel

pytestmark = pytest.mark.ray

LOCKS_ITEMS = (
    "leases with TTL",
    "global lock order enforced",
    "deadlock detection and wait alerting",
    "lock-contention and conflict metrics",
)


def _start(tmp_path: Path, **kwargs: Any) -> System:
    return System.start(tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}", **kwargs)


@pytest.fixture
def started(ray_session: None, tmp_path: Path) -> Iterator[list[System]]:
    systems: list[System] = []
    yield systems
    for system in systems:
        system.shutdown()


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {name: c["status"] for name, c in _by_name(report).items()}


def _truth(job: Job) -> dict[str, Any]:
    return {"key": job.key, "replica": 0}


@pytest.mark.timeout(300)
def test_the_demo_storefront_passes_the_items_it_has(started: list[System], tmp_path: Path) -> None:
    system = _start(tmp_path)
    started.append(system)
    system.resource(demo.Inventory, name="inventory", writers=["shop", "supplier", "system"])
    system.resource(demo.OrderBook, name="orders", writers=["shop"])
    system.resource(demo.Prices, name="prices", writers=["pricing"])
    model = demo._shop_model()
    groups = [
        system.agent(demo.ShopAgent, name="shop", replicas=2, model=model),
        system.agent(demo.SupplierAgent, name="supplier"),
        system.agent(demo.PricingAgent, name="pricing", replicas=2, model=model),
        system.agent(demo.InternAgent, name="intern"),
    ]
    shift = demo.Shift(seconds=0.5)
    ray.get([g.call(shift, replica=i) for g in groups for i in range(len(g.actors))])
    report = check_namespace(system.namespace)
    statuses = _statuses(report)
    for item in (
        "shared resources mapped",
        "single writer per resource",
        "idempotent writes",
        "kill switch per agent",
        "retry budget and breakers",
    ):
        assert statuses[item] == "PASS", _by_name(report)[item]
    mapped = _by_name(report)["shared resources mapped"]["evidence"]
    assert "inventory <- shop, supplier, system" in mapped
    assert "prices <- pricing" in mapped


@pytest.mark.timeout(300)
def test_a_well_configured_system_passes_all_but_the_parts_it_lacks(
    started: list[System], tmp_path: Path
) -> None:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.CALLS, cap=100)
    system = _start(tmp_path, budgets=BudgetPolicy(limits=(cap,)))
    started.append(system)
    system.resource(Inventory, name="inventory", writers=["workers"])
    system.agent(Worker, name="workers", model=ScriptedModel())
    system.supervisor.sample("workers", _truth, policy=SamplingPolicy(rate=0.5))
    for i in range(3):
        job = Job(key=f"k{i}", writes=1)
        system.supervisor.submit(job, to="workers", expect=Done).result(timeout=120)
    report = check_namespace(system.namespace)
    statuses = _statuses(report)
    lacking = {*LOCKS_ITEMS, "event-driven sync"}
    assert {n for n, s in statuses.items() if s != "PASS"} == lacking
    for item in LOCKS_ITEMS:
        assert (
            f"no locks actor in namespace {system.namespace!r}"
            in (_by_name(report)[item]["evidence"])
        )
    assert "no events actor" in _by_name(report)["event-driven sync"]["evidence"]
    assert "run * calls 100" in _by_name(report)["token and cost budgets declared"]["evidence"]
    assert (
        "3 subtasks to 1 agents"
        in (_by_name(report)["deadlines and schemas on every subtask"]["evidence"])
    )
    assert report["summary"]["FAIL"] == len(lacking)


@pytest.mark.timeout(300)
def test_a_misconfigured_system_fails_with_the_right_lines(
    started: list[System], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    system = _start(tmp_path)
    started.append(system)
    system.resource(Inventory, name="inventory")  # no writers declared: anyone may write
    system.agent(Worker, name="workers", model=ScriptedModel())  # metered, no cap
    system.supervisor.submit(Job(key="loose"), to="workers").result(timeout=120)  # no schema
    system.get_resource("inventory").restock("A", 1)  # outside a task: a one-off key
    report = check_namespace(system.namespace)
    lines = _by_name(report)
    assert lines["shared resources mapped"]["status"] == "FAIL"
    assert "inventory declares no writers" in lines["shared resources mapped"]["evidence"]
    assert lines["deadlines and schemas on every subtask"] == {
        "name": "deadlines and schemas on every subtask",
        "severity": "critical",
        "status": "FAIL",
        "evidence": "subtasks without an output schema (expect=None): workers: 1 of 1",
    }
    assert lines["token and cost budgets declared"]["status"] == "FAIL"
    assert "no cap" in lines["token and cost budgets declared"]["evidence"]
    assert lines["idempotent writes"]["status"] == "WARN"
    assert "inventory: 1" in lines["idempotent writes"]["evidence"]
    assert lines["end-to-end sampling against ground truth"]["status"] == "WARN"

    assert main(["check", "--namespace", system.namespace]) == 1
    printed = capfd.readouterr().out.splitlines()
    assert printed[0] == f"CHECK agentcast coordination: namespace {system.namespace}"
    assert "  FAIL  [critical] deadlines and schemas on every subtask: subtasks without" in (
        "\n".join(printed)
    )
    assert printed[-1].startswith("  summary: ") and "FAIL (" in printed[-1]

    assert main(["check", "--namespace", system.namespace, "--json"]) == 1
    document = json.loads(capfd.readouterr().out)
    assert document["systems"][0]["checks"] == report["checks"]

    # As a user runs it: another process joins the cluster (its token found by itself).
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    address = ray.get_runtime_context().gcs_address
    done = subprocess.run(
        [sys.executable, "-m", "actors._cli.main", "check", "--address", address,
         "--namespace", system.namespace, "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["systems"][0]["checks"] == report["checks"]
    assert "InvalidAuthToken" not in done.stderr


@pytest.mark.timeout(300)
def test_missing_parts_are_failures_that_name_them(started: list[System], tmp_path: Path) -> None:
    system = _start(tmp_path)
    started.append(system)
    system.resource(Inventory, name="inventory", writers=["system"])
    lines = _by_name(check_namespace(system.namespace))
    assert lines["token and cost budgets declared"]["evidence"] == (
        f"no budget actor in namespace {system.namespace!r}: token spend and retries are "
        "not metered"
    )
    assert lines["deadlines and schemas on every subtask"]["evidence"].startswith(
        f"no supervisor in namespace {system.namespace!r}"
    )
    assert lines["kill switch per agent"]["status"] == "WARN"
    actor = ray.get_actor("resource:inventory", namespace=system.namespace)
    for forged in ("all", -1, 10**9, True):
        with pytest.raises(InvalidArgumentError):
            ray.get(actor.audit.remote(forged), timeout=60)


def test_a_namespace_without_agentcast_exits_2(
    ray_session: None, capfd: pytest.CaptureFixture[str]
) -> None:
    namespace = f"empty-{uuid.uuid4().hex[:8]}"
    assert main(["check", "--namespace", namespace]) == 2
    assert capfd.readouterr().out == f"no agentcast actor in namespace {namespace!r}\n"
    assert main(["check", "--namespace", namespace, "--json"]) == 2
    assert json.loads(capfd.readouterr().out) == {"systems": []}
