"""The membership pooled hosts keep in Ray's key-value store, read from the store itself:
a killed agent leaves its host's entry at once, and a system's shutdown takes every entry
of its namespace, leaving another namespace's alone."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ray import cloudpickle
from ray.experimental import internal_kv
from supervised_agents import Done, Job, Worker

from actors import System
from actors._agent.pool_host import KV_NAMESPACE, host_entries
from policies import HostPolicy

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

TWO = HostPolicy(agents_per_host=2)


def test_host_entries_go_with_a_killed_agent_and_with_the_shutdown(
    ray_session: None, tmp_path: Path
) -> None:
    namespace = f"kv-{uuid.uuid4().hex[:10]}"
    # A host entry of another namespace, whose name starts with this one's: it must stay.
    other = f"{namespace}-2:{uuid.uuid4().hex}"
    internal_kv._internal_kv_put(other, cloudpickle.dumps([]), namespace=KV_NAMESPACE)
    try:
        system = System.start(tmp_path / "storage", namespace=namespace)
        try:
            _kill_one_of_two(system, namespace)
        finally:
            system.shutdown()
        assert host_entries(namespace) == {}
        assert host_entries(f"{namespace}-2") == {other: []}
    finally:
        internal_kv._internal_kv_del(other, namespace=KV_NAMESPACE)


def _kill_one_of_two(system: System, namespace: str) -> None:
    system.agent(Worker, name="keep", replicas=2, placement="pooled", hosts=TWO)
    gone = system.agent(Worker, name="gone", replicas=2, placement="pooled", hosts=TWO)
    assert gone.ask(Job(key="x"), timeout=120) == Done(key="x", replica=0)
    stored = host_entries(namespace)
    assert len(stored) == 2  # two hosts of two agents each
    assert sorted(a for agents in stored.values() for a in agents) == [
        "gone:0", "gone:1", "keep:0", "keep:1",
    ]  # fmt: skip
    system.kill("gone")
    after_kill = host_entries(namespace)
    assert sorted(a for agents in after_kill.values() for a in agents) == ["keep:0", "keep:1"]
