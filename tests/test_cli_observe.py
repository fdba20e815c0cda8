"""`agentcast status`, `trace` and `log` against a running system, and what they say
when there is none: parsed JSON compared by equality, one line instead of a traceback.
``log`` and ``trace`` run on both storage backends (``any_system``), with the same output."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import ray
from backends import any_system as any_system
from budget_agents_for_tests import Answer, Ask, Asker
from resources_for_tests import Inventory
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from actors._cli import cluster
from actors._cli.cluster import agentcast_actors
from actors._cli.main import main
from runtime import ScriptedModel

pytestmark = pytest.mark.ray


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command's exit status, stdout and stderr (captured at the descriptors: a
    ``--json`` command writes its document to the real stdout)."""
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def status_of(capfd: pytest.CaptureFixture[str], system: System) -> dict[str, Any]:
    code, out, _ = run(capfd, "status", "--namespace", system.namespace, "--json")
    assert code == 0
    (found,) = json.loads(out)["systems"]
    assert found["namespace"] == system.namespace
    return dict(found)


# -- status -----------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_status_shows_every_part_of_a_supervised_system(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory", writers=["workers", "system"])
    system.agent(Worker, name="workers", replicas=2)
    system.supervisor.submit(Job(key="a", writes=2), to="workers").result(timeout=60)
    refused = system.get_resource("inventory").write("reserve", "nothing", 5)
    assert refused.error is not None
    system.budget.status()  # the budget actor runs
    found = status_of(capfd, system)
    assert found["resources"] == [{
        "name": "inventory", "state": "ALIVE", "restarts": 0, "version": 2, "incarnation": 1,
        "writers": ["system", "workers"], "rejections": {"raised": 1},
        "derived": {"cached": 0, "computed": 0},
    }]  # fmt: skip
    assert found["agents"] == [{"name": "workers", "replicas": [
        {"replica": i, "state": "ALIVE", "restarts": 0,
         "repr": f"Worker(agent 'workers' replica {i})"}
        for i in (0, 1)
    ]}]  # fmt: skip
    supervisor = found["supervisor"]
    assert (supervisor["state"], supervisor["stored"], supervisor["open_escalations"]) == (
        "ALIVE", {"done": 1}, 0,
    )  # fmt: skip
    assert (found["budget"]["state"], found["budget"]["incarnation"]) == ("ALIVE", 1)
    code, text, err = run(capfd, "status", "--namespace", system.namespace)
    assert (code, err) == (0, "")
    assert text.splitlines()[:2] == [
        f"namespace {system.namespace}",
        "  resource inventory: version 2 (= writes), incarnation 1, restarts 0; "
        "writers: system, workers; refused: raised 1",
    ]


def test_status_finds_the_system_without_being_told_its_namespace(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    code, out, _ = run(capfd, "status", "--json")
    assert code == 0
    namespaces = [s["namespace"] for s in json.loads(out)["systems"]]
    assert system.namespace in namespaces


def test_a_system_with_only_a_resource_shows_every_other_part_absent(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    found = status_of(capfd, system)
    absent = ("agents", "supervisor", "budget", "leases", "conflicts", "subscribers")
    assert [found[part] for part in absent] == [None] * len(absent)
    code, text, _ = run(capfd, "status", "--namespace", system.namespace)
    assert code == 0
    assert text.splitlines()[2:] == [f"  no {part}" for part in absent]


@pytest.mark.timeout(180)
def test_a_dead_resource_and_a_restarted_one_are_lines_not_tracebacks(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    system.resource(Inventory, name="spares")
    system.get_resource("spares").write("restock", "A", 1).unwrap()
    ray.kill(ray.get_actor("resource:inventory", namespace=system.namespace), no_restart=True)
    ray.kill(ray.get_actor("resource:spares", namespace=system.namespace), no_restart=False)
    wait_until(lambda: system.get_resource("spares").read("available", "A").value == 1, "back")
    found = wait_until(
        lambda: (f := status_of(capfd, system))["resources"][0]["state"] == "DEAD" and f,
        "the killed resource is dead",
    )
    assert found["resources"] == [
        {"name": "inventory", "state": "DEAD", "restarts": 0, "error": None},
        {"name": "spares", "state": "ALIVE", "restarts": 1, "version": 1, "incarnation": 2,
         "writers": None, "rejections": {}, "derived": {"cached": 0, "computed": 0}},
    ]  # fmt: skip
    code, text, err = run(capfd, "status", "--namespace", system.namespace)
    assert (code, err) == (0, "")
    assert "  resource inventory: dead (restarts 0)" in text.splitlines()


def test_a_namespace_without_agentcast_is_one_line_naming_those_there_are(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    code, out, err = run(capfd, "status", "--namespace", "no-such-system")
    assert (code, out) == (1, "")
    assert err.startswith(
        "agentcast status: no agentcast actors in namespace 'no-such-system' (agentcast "
        "namespaces on this cluster: "
    )
    assert system.namespace in err and len(err.splitlines()) == 1


def test_the_dashboard_shows_the_users_classes_and_names(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.resource(Inventory, name="inventory")
    system.agent(Worker, name="workers")
    system.supervisor.submit(Job(key="r"), to="workers").result(timeout=60)
    system.budget.status()
    shown = {name: row.repr for name, row in agentcast_actors()[system.namespace].items()}
    assert shown == {
        "resource:inventory": "Inventory(resource 'inventory')",
        "agent:workers:0": "Worker(agent 'workers' replica 0)",
        "supervisor": f"Supervisor(namespace '{system.namespace}')",
        "budget": f"Budget(storage '{system.root}')",
    }


# -- log --------------------------------------------------------------------------------


def test_log_prints_decoded_records_and_filters_them(
    any_system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    inventory = any_system.resource(Inventory, name="inventory")
    inventory.write("restock", "A", 2).unwrap()
    inventory.write("restock", "B", 1).unwrap()
    inventory.write("reserve", "A", 1).unwrap()
    storage = ["--storage", str(any_system.root)]
    code, out, _ = run(capfd, "log", "inventory", *storage, "--op", "reserve", "--json")
    assert code == 0
    document = json.loads(out)
    (record,) = document["records"]
    assert {k: v for k, v in record.items() if k not in ("at", "idem_key")} == {
        "version": 3, "op": "reserve", "args": ["A", 1], "kwargs": {}, "result": 1,
        "writer": "system", "writer_epoch": 0, "incarnation": 1, "trace_id": any_system.trace_id,
        "changes": [{"key": "A", "before": 2, "after": 1}], "provenance": "system",
    }  # fmt: skip
    versions = lambda *flags: [  # noqa: E731
        r["version"]
        for r in json.loads(run(capfd, "log", "inventory", *storage, "--json", *flags)[1])[
            "records"
        ]
    ]
    assert versions() == [1, 2, 3]
    assert versions("--from-version", "2", "--to-version", "2") == [2]
    assert versions("--writer", "system", "--trace", any_system.trace_id) == [1, 2, 3]
    assert versions("--writer", "someone") == versions("--trace", "0" * 32) == []
    code, text, _ = run(capfd, "log", "inventory", *storage, "--to-version", "1")
    assert text.split(" ", 2)[0] == "v1"
    assert text.split(" ", 2)[2] == (
        f'system#0 restock("A", 2) -> 2  [A: (none) -> 2]  trace {any_system.trace_id}\n'
    )


def test_log_reads_the_file_while_the_resource_is_dead(
    any_system: System, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    any_system.resource(Inventory, name="inventory").write("restock", "A", 2).unwrap()
    ray.kill(ray.get_actor("resource:inventory", namespace=any_system.namespace), no_restart=True)
    monkeypatch.setenv("AGENTCAST_STORAGE", str(any_system.root))  # found without --storage
    code, out, _ = run(capfd, "log", "inventory", "--json")
    assert code == 0
    assert [r["changes"] for r in json.loads(out)["records"]] == [[{"key": "A", "after": 2}]]


def test_log_of_an_unknown_resource_names_those_there_are(
    any_system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    any_system.resource(Inventory, name="inventory")
    code, out, err = run(capfd, "log", "nope", "--storage", str(any_system.root))
    assert (code, out) == (1, "")
    assert (
        err
        == f"agentcast log: no resource 'nope' in {any_system.root} (resources there: inventory)\n"
    )


# -- trace ------------------------------------------------------------------------------


def _kinds(found: dict[str, Any], subtask: str) -> list[str]:
    return [i["kind"] for i in found["timeline"] if i["subtask"] == subtask]


@pytest.mark.timeout(240)
def test_trace_shows_subtasks_attempts_writes_and_model_use_also_with_the_actors_down(
    any_system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    any_system.resource(Inventory, name="inventory", writers=["workers", "system"])
    any_system.agent(Worker, name="workers")
    any_system.agent(Asker, name="askers", model=ScriptedModel(default_reply="hello there"))
    job = any_system.supervisor.submit(Job(key="j", writes=2), to="workers")
    ask = any_system.supervisor.submit(Ask(prompt="say hello"), to="askers")
    assert job.result(timeout=60) == Done(key="j", replica=0)
    answer = ask.result(timeout=60)
    assert isinstance(answer, Answer)
    storage = ["--storage", str(any_system.root)]

    def traced() -> dict[str, Any]:
        code, out, _ = run(capfd, "trace", any_system.trace_id, *storage, "--json")
        assert code == 0
        return dict(json.loads(out))

    # Agents settle their model allowances shortly after their handlers end.
    def settled_trace() -> dict[str, Any] | None:
        found = traced()
        return found if any(i["kind"] == "budget settle" for i in found["timeline"]) else None

    found = wait_until(settled_trace, "the model use is settled")
    assert found["subtasks"] == {
        job.id: {"id": job.id, "parent": None, "to": "workers", "state": "done"},
        ask.id: {"id": ask.id, "parent": None, "to": "askers", "state": "done"},
    }
    assert _kinds(found, job.id) == [
        "submitted",
        "write",
        "write",
        "attempt",
        "finished",
        "handoff",
    ]
    submitted, first, second, attempt, finished, _ = [
        i for i in found["timeline"] if i["subtask"] == job.id
    ]
    assert submitted["message"] == {"type": "Job", "data": Job(key="j", writes=2).model_dump()}
    assert [(w["version"], w["changes"]) for w in (first, second)] == [
        (1, [{"key": "A", "after": 1}]), (2, [{"key": "A", "before": 1, "after": 2}]),
    ]  # fmt: skip
    assert (attempt["number"], attempt["replica"], attempt["outcome"]) == (
        1,
        "workers:0",
        "succeeded",
    )
    assert finished["output"] == {"type": "Done", "data": {"key": "j", "replica": 0}}
    settled = [i for i in found["timeline"] if i["kind"] == "budget settle"]
    assert {(i["agent"], i["model"]) for i in settled} == {("askers", "scripted")}
    assert sum(i["used"]["completion_tokens"] for i in settled) == answer.completion_tokens
    assert [i["at"] for i in found["timeline"]] == sorted(i["at"] for i in found["timeline"])
    # Everything above is read from the files: the same with every actor of the system down.
    for name, row in agentcast_actors()[any_system.namespace].items():
        if row.alive:
            ray.kill(ray.get_actor(name, namespace=any_system.namespace), no_restart=True)
    assert traced() == found
    _, out, _ = run(capfd, "trace", "--subtask", job.id, *storage, "--json")
    assert json.loads(out)["subtasks"] == {job.id: found["subtasks"][job.id]}
    _, tree, _ = run(capfd, "trace", any_system.trace_id, *storage)
    lines = tree.splitlines()
    assert lines[0] == f"trace {any_system.trace_id}"
    assert f"subtask {job.id} to workers (done)" in "\n".join(lines)
    assert any('write inventory v2 workers#1 restock("A", 1) -> 2  [A: 1 -> 2]' in x for x in lines)


def test_trace_of_nothing_is_one_line(
    any_system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    any_system.resource(Inventory, name="inventory")
    code, out, err = run(capfd, "trace", "f" * 32, "--storage", str(any_system.root))
    assert (code, out) == (1, "")
    assert err == f"agentcast trace: nothing stored under trace {'f' * 32} in {any_system.root}\n"
    code, _, err = run(capfd, "trace", "--subtask", "t-none", "--storage", str(any_system.root))
    assert (code, err) == (1, f"agentcast trace: no subtask 't-none' in {any_system.root}\n")


def test_version(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capfd.readouterr().out
    assert out.startswith("agentcast ") and out.count("\n") == 1


@pytest.mark.timeout(180)
def test_a_paused_actor_is_a_line_saying_it_did_not_answer(
    system: System, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    system.resource(Inventory, name="inventory")
    system.supervisor.status()
    supervisor = ray.get_actor("supervisor", namespace=system.namespace)
    pid = ray.get(supervisor.__ray_call__.remote(lambda self: os.getpid()))
    monkeypatch.setattr(cluster, "ASK_TIMEOUT_S", 2.0)
    os.kill(pid, signal.SIGSTOP)
    try:
        found = status_of(capfd, system)
        code, text, _ = run(capfd, "status", "--namespace", system.namespace)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert found["supervisor"] == {
        "state": "ALIVE", "restarts": 0, "error": "no answer within 2s",
    }  # fmt: skip
    assert found["resources"][0]["version"] == 0  # the rest of the system is shown
    assert code == 0
    assert "  supervisor: alive (restarts 0): no answer within 2s" in text.splitlines()
    assert system.supervisor.status()["open_escalations"] == 0  # it goes on once resumed
