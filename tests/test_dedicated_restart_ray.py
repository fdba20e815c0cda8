"""A dedicated replica whose process dies (a lost node, a crash) comes back: Ray restarts
it on a live node; the attempt that ran there fails as ``agent_died`` and the supervisor
drives it again on the replica that came back. The two-node test (tests/test_two_nodes.py)
shows the same after a whole node's loss."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import ray
from restart_agents import Me, Survivor, Who
from waiting import wait_until

from actors import System
from policies import RetryPolicy

pytestmark = [pytest.mark.ray]


def _pid(group: object, old: int) -> int | None:
    """The replica's process now, if it answers from another one than ``old``."""
    try:
        me: Me = group.ask(Who(), timeout=10)  # type: ignore[attr-defined]
    except Exception:  # restarting: Ray's typed errors, or no answer yet
        return None
    return me.pid if me.pid != old else None


@pytest.mark.timeout(300)
def test_a_dedicated_replica_whose_process_dies_comes_back_and_its_subtask_is_driven_again(
    system: System, tmp_path: Path
) -> None:
    group = system.agent(Survivor, name="phoenix", replicas=1)
    old = group.ask(Who(), timeout=60).pid
    gate = tmp_path / "gate"
    handle = system.supervisor.submit(
        Who(gate=str(gate)), to="phoenix", expect=Me,
        retry=RetryPolicy(max_attempts=3, initial_backoff=timedelta(milliseconds=50)),
    )  # fmt: skip
    wait_until(lambda: handle.status().state == "running", "the attempt runs")
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: _pid(group, old), "the replica answers again", limit=120)
    gate.touch()
    assert handle.result(timeout=120) == Me(pid=new, replica=0)
    outcomes = [a.outcome for a in handle.status().attempts]
    assert outcomes[0] == "agent_died" and outcomes[-1] == "succeeded", outcomes
    assert ray.get(group.call(Who()), timeout=60) == Me(pid=new, replica=0)
