"""Pooled agents on a real local Ray: many agents to a host actor, reached by their names
``agent:<name>:<i>`` by the supervisor, the kill switch and the budget."""

from __future__ import annotations

import os
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import ray
from budget_agents_for_tests import Answer, Ask, Asker
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from actors._agent.pooled import PooledReplica, hosts
from actors._cli.cluster import agentcast_actors
from actors._cli.status import collect_agents, render_agents
from policies import Deadlines, HostPolicy, RetryPolicy
from runtime import SubtaskFailedError
from runtime.testing import ScriptedModel

pytestmark = pytest.mark.ray

FEW = HostPolicy(agents_per_host=50)


def _host_status(system: System) -> dict[str, dict[str, object]]:
    found = hosts(system.namespace)
    return {name: ray.get(h.status.remote(), timeout=60) for name, h in found.items()}


@pytest.mark.timeout(300)
def test_two_hundred_pooled_agents_on_four_hosts_all_answer(system: System) -> None:
    group = system.agent(Worker, name="crowd", replicas=200, placement="pooled", hosts=FEW)
    assert all(isinstance(a, PooledReplica) for a in group.actors)
    refs = [group.call(Job(key=str(i)), replica=i) for i in range(200)]
    assert ray.get(refs, timeout=240) == [Done(key=str(i), replica=i) for i in range(200)]
    status = _host_status(system)
    assert sorted(status) == [f"agent-host:{i}" for i in range(4)]
    assert sorted(k for s in status.values() for k in s["agents"]) == sorted(  # type: ignore[attr-defined]
        f"crowd:{i}" for i in range(200)
    )
    assert len({s["pid"] for s in status.values()}) == 4  # four processes, not 200
    shown = agentcast_actors()[system.namespace]["agent-host:1"].repr  # on the dashboard
    assert shown == "AgentHost(agent-host:1: 50 agents: crowd 50-99)"
    supervised = system.supervisor.submit(Job(key="s"), to="crowd:137", expect=Done).result()
    assert supervised == Done(key="s", replica=137)  # the supervisor finds it by its name


@pytest.mark.timeout(240)
def test_a_wedged_pooled_agent_does_not_stop_its_host_mates_and_is_restarted_alone(
    system: System, tmp_path: Path
) -> None:
    stuck = system.agent(Worker, name="stuck", placement="pooled", hosts=FEW)
    mates = system.agent(Worker, name="mates", replicas=3, placement="pooled")
    assert {a.host_name for a in stuck.actors + mates.actors} == {"agent-host:0"}
    pid = _host_status(system)["agent-host:0"]["pid"]
    supervisor = system.supervisor
    wedged = supervisor.submit(
        Job(key="w", mode="stubborn", gate=str(tmp_path / "never")), to="stuck", expect=Done,
        deadline=Deadlines(running=timedelta(seconds=3), grace=timedelta(seconds=1)),
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    handles = [supervisor.submit(Job(key=str(i)), to="mates", expect=Done) for i in range(12)]
    assert sorted(h.result().key for h in handles) == sorted(str(i) for i in range(12))
    with pytest.raises(SubtaskFailedError):
        wedged.result()  # it ignores its cancel: past its grace, the supervisor restarts it
    events = wait_until(lambda: supervisor.events("wedged"), "the wedged agent is reported")
    assert [(e["subject"], e["detail"]) for e in events] == [("stuck:0", {"restarted": True})]
    again = supervisor.submit(Job(key="again"), to="stuck", expect=Done)
    assert again.result(timeout=120) == Done(key="again", replica=0)
    assert _host_status(system)["agent-host:0"]["pid"] == pid  # its host-mates ran on


@pytest.mark.timeout(240)
def test_killing_a_pooled_agent_revokes_it_and_leaves_its_host_mates_running(
    system: System,
) -> None:
    victim = system.agent(Worker, name="victim", replicas=2, placement="pooled", hosts=FEW)
    mates = system.agent(Worker, name="mates", replicas=2, placement="pooled")
    pid_before = _host_status(system)["agent-host:0"]["pid"]
    hung = victim.call(Job(key="h", mode="hang"), replica=1)
    record = system.kill("victim")
    assert record["replicas_killed"] == ["agent:victim:0", "agent:victim:1"]
    with pytest.raises(Exception, match=r"AgentGoneError|cancel"):
        ray.get(hung, timeout=60)
    with pytest.raises(Exception, match="AgentGoneError"):
        ray.get(victim.call(Job(key="x"), replica=0), timeout=60)
    assert ray.get([mates.call(Job(key=str(i))) for i in range(4)], timeout=60) == [
        Done(key=str(i), replica=i % 2) for i in range(4)
    ]
    status = _host_status(system)["agent-host:0"]
    assert status["pid"] == pid_before  # the host process lives on
    assert sorted(status["agents"]) == ["mates:0", "mates:1"]  # type: ignore[call-overload]
    with sqlite3.connect(system.root / "system.sqlite") as conn:
        revoked = conn.execute("SELECT revoked FROM tokens WHERE writer = 'victim'").fetchall()
    assert revoked == [(1,), (1,)]  # both capabilities revoked


@pytest.mark.timeout(300)
def test_a_host_crash_restarts_all_its_agents_and_the_supervisor_drives_the_subtask_again(
    system: System, tmp_path: Path
) -> None:
    system.agent(Worker, name="busy", placement="pooled", hosts=FEW)
    mates = system.agent(Worker, name="mates", replicas=2, placement="pooled")
    system.agent(Worker, name="victim", placement="pooled")
    system.kill("victim")  # before the crash: the restarted host must not bring it back
    gate = tmp_path / "gate"
    handle = system.supervisor.submit(
        Job(key="k", mode="gate", gate=str(gate)), to="busy", expect=Done,
        retry=RetryPolicy(max_attempts=3, initial_backoff=timedelta(milliseconds=50)),
    )  # fmt: skip
    status = _host_status(system)["agent-host:0"]
    wait_until(lambda: _host_status(system)["agent-host:0"]["agents"]["busy:0"]["running"], "runs")  # type: ignore[index]
    os.kill(int(status["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    wait_until(lambda: _restarted(system, status["pid"]), "the host came back", limit=120)
    gate.touch()
    assert handle.result() == Done(key="k", replica=0)
    attempts = handle.status().attempts
    assert [a.outcome for a in attempts][-1] == "succeeded"
    assert "agent_died" in [a.outcome for a in attempts]
    assert ray.get([mates.call(Job(key=str(i))) for i in range(2)], timeout=60) == [
        Done(key="0", replica=0), Done(key="1", replica=1),
    ]  # fmt: skip


def _restarted(system: System, old_pid: object) -> bool:
    try:
        status = _host_status(system)["agent-host:0"]
    except Exception:
        return False
    agents = sorted(status["agents"])  # type: ignore[call-overload]
    return status["pid"] != old_pid and agents == ["busy:0", "mates:0", "mates:1"]


@pytest.mark.timeout(240)
def test_the_budget_meters_pooled_agents_by_name(system: System) -> None:
    model = ScriptedModel(default_reply="x" * 8)
    first = system.agent(Asker, name="first", placement="pooled", model=model)
    second = system.agent(Asker, name="second", placement="pooled", model=model)
    assert first.actors[0].host_name == second.actors[0].host_name
    assert isinstance(first.ask(Ask(prompt="one")), Answer)
    for _ in range(2):
        assert isinstance(second.ask(Ask(prompt="two")), Answer)

    def spent() -> tuple[float, float] | None:
        status = system.budget.status()
        calls = tuple(
            status.spend(run=system.trace_id, agent=a, target="scripted").get("calls", 0)
            for a in ("first", "second")
        )
        return calls if calls == (1, 2) else None  # type: ignore[return-value]

    assert wait_until(spent, "each agent's calls settled under its own name") == (1, 2)
    found = collect_agents(agentcast_actors()[system.namespace])
    assert found == [
        {"name": name, "replicas": [
            {"replica": 0, "state": "ALIVE", "restarts": 0, "host": "agent-host:0"},
        ]}
        for name in ("first", "second")
    ]  # fmt: skip
    assert (
        render_agents(found or [])[0] == "agent first: 1 replicas, 1 alive; pooled on agent-host:0"
    )
