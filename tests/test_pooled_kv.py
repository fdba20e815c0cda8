"""The membership pooled hosts keep in Ray's key-value store, read from the store itself:
a killed agent leaves its host's entry at once, and a system's shutdown takes every entry
of its namespace, leaving another namespace's alone; the entries of a driver that died
without shutting down go when the next system starts, a live system's stay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import ray
from ray import cloudpickle
from ray._private import state
from ray.experimental import internal_kv
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from actors._agent.pool_host import KV_NAMESPACE, host_entries
from policies import HostPolicy

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

TWO = HostPolicy(agents_per_host=2)
TESTS = Path(__file__).resolve().parent


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


def _dead(key: str) -> bool:
    """Whether the GCS says the host of entry ``key`` is dead for good."""
    return state.actors(actor_id=key.rpartition(":")[2]).get("State") == "DEAD"


@pytest.mark.timeout(400)
def test_a_dead_drivers_host_entries_go_when_the_next_system_starts_a_live_ones_stay(
    system: System, tmp_path: Path
) -> None:
    live = system.agent(Worker, name="alive", placement="pooled")
    assert live.ask(Job(key="a"), timeout=120) == Done(key="a", replica=0)
    ours = host_entries(system.namespace)
    assert sorted(a for agents in ours.values() for a in agents) == ["alive:0"]
    dead = f"dead-{uuid.uuid4().hex[:10]}"
    config = {
        "address": ray.get_runtime_context().gcs_address, "namespace": dead,
        "storage": str(tmp_path / "dead"), "ready": str(tmp_path / "ready"),
        "pythonpath": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
    }  # fmt: skip
    driver = subprocess.Popen([sys.executable, str(TESTS / "kv_driver.py"), json.dumps(config)])
    try:
        wait_until(lambda: Path(config["ready"]).exists() or driver.poll(), "ready", limit=240)
        assert driver.poll() is None, "the driver failed"
        orphaned = host_entries(dead)
        assert sorted(a for agents in orphaned.values() for a in agents) == [
            "orphans:0", "orphans:1",
        ]  # fmt: skip
    finally:
        driver.send_signal(signal.SIGKILL)  # no shutdown: its entries stay behind
        driver.wait(timeout=60)
    wait_until(lambda: all(_dead(k) for k in orphaned), "Ray ends the dead driver's hosts", 120)
    assert host_entries(dead) == orphaned  # still there, until a system starts
    System.start(system.root, namespace=f"next-{uuid.uuid4().hex[:10]}").shutdown()
    assert host_entries(dead) == {}
    assert host_entries(system.namespace) == ours  # a live system's hosts keep theirs
    assert live.ask(Job(key="b"), timeout=120) == Done(key="b", replica=0)
