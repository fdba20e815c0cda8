"""`agentcast status | escalations | answer | kill` against a running system."""

from __future__ import annotations

import json

import pytest
import ray
from resources_for_tests import Inventory
from supervised_agents import Job, StrictDone, Worker
from waiting import wait_until

from actors import System
from actors._cli.main import main
from actors._resource.handle import ResourceHandle, WriterIdentity
from actors._system import _DriverKeys
from policies import Escalate, RetryPolicy
from runtime import FencedError

pytestmark = pytest.mark.ray


def cli(system: System, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    common = ["--namespace", system.namespace]
    if args[0] != "status":
        common += ["--storage", str(system.root)]
    assert main([args[0], *common, *args[1:]]) == 0
    return capsys.readouterr().out


def test_escalations_are_listed_and_answered_from_the_command_line(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    system.agent(Worker, name="workers")
    handle = system.supervisor.submit(
        Job(key="q", mode="raise"), to="workers", expect=StrictDone,
        retry=RetryPolicy(max_attempts=1), on_failure=Escalate(),
    )  # fmt: skip
    wait_until(system.supervisor.escalations, "an open escalation")
    listed = cli(system, capsys, "escalations")
    assert handle.id in listed and "exception" in listed
    assert "open escalations: 1" in cli(system, capsys, "status")
    cli(system, capsys, "answer", handle.id, "--output", json.dumps({"key": "q", "replica": 7}))
    assert handle.result(timeout=60) == StrictDone(key="q", replica=7)
    assert "open escalations: 0" in cli(system, capsys, "status")


def test_kill_from_the_command_line_fences_the_agent(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    system.agent(Worker, name="workers")
    system.supervisor.submit(Job(key="w", writes=1), to="workers").result(timeout=60)
    (old_epoch,) = {r.writer_epoch for r in system.log("inventory").records()}
    assert json.loads(cli(system, capsys, "kill", "workers")) == {
        "agent": "workers", "epoch": old_epoch + 1, "attempts_failed": 0,
        "resources_fenced": ["inventory"], "replicas_killed": ["agent:workers:0"],
    }  # fmt: skip
    # A write stamped as the killed incarnation of the agent is refused from now on.
    actor = ray.get_actor("resource:inventory", namespace=system.namespace)
    # (a token of the old epoch, as the killed incarnation held)
    old_token = system._registry.issue_token("workers", old_epoch)
    identity = WriterIdentity("workers", old_epoch, old_token)
    as_killed_agent = ResourceHandle(actor, "inventory", identity, _DriverKeys(system.trace_id))
    assert isinstance(as_killed_agent.write("restock", "A", 1).error, FencedError)
    assert [r.writer for r in system.log("inventory").records()] == ["workers"]
    with pytest.raises(ValueError):
        ray.get_actor("agent:workers:0", namespace=system.namespace)
