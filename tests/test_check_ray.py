"""``agentcast check`` against live systems on a real local Ray: the running demo passes
every item; a well-configured system passes every item whose part runs; a
deliberately misconfigured one fails with the right lines; the command's exit status and
JSON follow."""

from __future__ import annotations

import json
import os
import re
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
from waiting import wait_until

from actors import System
from actors._cli.check import check_namespace
from actors._cli.main import main
from policies import (
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    LockPolicy,
    SamplingPolicy,
    Scope,
    ScopeKind,
)
from runtime import InvalidArgumentError
from runtime.testing import ScriptedModel

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
ITEMS = (
    "shared resources mapped",
    "single writer per resource",
    "idempotent writes",
    "leases with TTL",
    "global lock order enforced",
    "deadlock detection and wait alerting",
    "event-driven sync",
    "kill switch per agent",
    "lock-contention and conflict metrics",
    "token and cost budgets declared",
    "retry budget and breakers",
    "deadlines and schemas on every subtask",
    "end-to-end sampling against ground truth",
)
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


def _demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _kept_or_ended(demo: subprocess.Popen[bytes], out: Path) -> str | None:
    """What the demo printed, once it waits with ``--keep`` or has ended (it failed)."""
    printed = out.read_text()
    if "--keep: Ray stays up" in printed or demo.poll() is not None:
        return printed or f"the demo exited {demo.returncode} and printed nothing"
    return None


def _stop(demo: subprocess.Popen[bytes]) -> None:
    """Ctrl-C's way out (SIGTERM does the same in the demo): it shuts its Ray down."""
    if demo.poll() is None:
        demo.terminate()
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=30)


@pytest.mark.timeout(600)
def test_the_running_demo_passes_every_item(tmp_path: Path) -> None:
    # As a user runs it: `agentcast demo --keep` in one terminal (its own Ray), then
    # `agentcast check` from another, with the command the demo printed.
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "actors._cli.main", "demo", "--seconds", "1",
             "--storage", str(tmp_path / "storage"), "--keep"],
            env=_demo_env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        printed = wait_until(
            lambda: _kept_or_ended(demo, out), "the demo waits with --keep or ends", limit=400
        )
        assert "--keep: Ray stays up" in printed, printed
        assert "verdict: agentcast held" in printed, printed
        command = re.search(r"  (agentcast check --address \S+ --namespace demo)\n", printed)
        assert command, printed
        done = subprocess.run(
            [sys.executable, "-m", "actors._cli.main", *command[1].split()[1:], "--json"],
            env=_demo_env(), capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        _stop(demo)
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)["systems"]
    assert report["namespace"] == "demo"
    assert {c["name"]: c["status"] for c in report["checks"]} == dict.fromkeys(ITEMS, "PASS")
    assert report["summary"] == {"PASS": len(ITEMS), "FAIL": 0, "WARN": 0, "failed_by_severity": {}}
    evidence = {c["name"]: c["evidence"] for c in report["checks"]}
    assert (
        "inventory <- shop, supplier, system; orders <- shop; prices <- pricing"
        in (evidence["shared resources mapped"])
    )
    assert evidence["event-driven sync"].startswith("no events declared")
    assert evidence["deadlines and schemas on every subtask"].startswith(
        "7 subtasks to 4 agents, each with a schema and a running deadline (longest: intern 6"
    )
    assert evidence["end-to-end sampling against ground truth"] == "sampled: intern at 100%"
    assert demo.returncode is not None


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
    lacking = set(LOCKS_ITEMS)
    assert {n for n, s in statuses.items() if s != "PASS"} == lacking
    for item in LOCKS_ITEMS:
        assert (
            f"no locks actor in namespace {system.namespace!r}"
            in (_by_name(report)[item]["evidence"])
        )
    assert _by_name(report)["event-driven sync"]["evidence"].startswith("no events declared")
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
    system.use_locks(LockPolicy(enforce_order=False))  # leases in any order: deadlock-prone
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
    assert lines["global lock order enforced"] == {
        "name": "global lock order enforced",
        "severity": "high",
        "status": "FAIL",
        "evidence": "the locks actor does not enforce it",
    }
    assert lines["leases with TTL"]["status"] == "PASS"
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
