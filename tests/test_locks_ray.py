"""Leases on a real local Ray: writes carry their tokens, a holder paused past its TTL is
refused by fencing, a killed or crashed holder loses its keys, the locks actor restarts
without losing or doubling a grant, and forged calls get typed errors."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from typing import Any

import pytest
import ray
from lock_agents_for_tests import Hold, Holder, Peek, Seen, WhoAmI
from resources_for_tests import Inventory
from waiting import wait_until

from actors import System
from actors._locks.core import Acquire
from policies import LockPolicy
from runtime import InvalidArgumentError, LeaseExpiredError, LockOrderError, StaleLeaseError

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


def holders(system: System, key: str) -> tuple[str, ...]:
    for state in system.locks.status().keys:
        if state.key == key:
            return state.holders
    return ()


def test_driver_writes_carry_the_lease_and_nested_leases_keep_the_order(system: System) -> None:
    inventory = system.resource(Inventory, name="inventory")
    with system.lease("pricing:A", "inventory:A", ttl=timedelta(seconds=5)) as lease:
        assert lease.grant.keys == ("inventory:A", "pricing:A")
        inventory.restock("A", 1)
        with pytest.raises(LockOrderError), system.lease("inventory:B"):
            pass
        with system.lease("stock:A") as inner:
            assert inner.tokens["stock:A"] > lease.tokens["pricing:A"]
    status = system.locks.status()
    assert (status.held, status.waiting) == (0, 0)
    # The resource saw the tokens: a write carrying an older one is refused.
    with system.lease("inventory:A"):
        inventory.restock("A", 1)
    with pytest.raises(StaleLeaseError):
        from actors._locks.held import HELD

        reset = HELD.set((("inventory:A", lease.tokens["inventory:A"]),))
        try:
            inventory.restock("A", 1)
        finally:
            HELD.reset(reset)
    assert [r.reason for r in system.log("inventory").rejections()] == ["stale_lease"]


def test_a_lease_held_past_its_ttl_is_renewed_by_the_runtime(system: System) -> None:
    system.use_locks(LockPolicy(tick=timedelta(milliseconds=50)))
    inventory = system.resource(Inventory, name="inventory")
    with system.lease("inventory:A", ttl=timedelta(seconds=1)) as lease:
        ends = time.monotonic() + 2.5  # two and a half TTLs
        wait_until(lambda: time.monotonic() > ends, "the lease outlived its TTL", 10)
        assert holders(system, "inventory:A")[0].startswith("system:")
        inventory.restock("A", 1)
        assert not lease.lost
    assert system.locks.status().expired == 0


def test_a_holder_paused_past_its_ttl_is_refused_by_fencing(system: System) -> None:
    system.use_locks(LockPolicy(tick=timedelta(milliseconds=50)))
    system.resource(Inventory, name="inventory")
    agent = system.agent(Holder, name="holder")
    pid = agent.ask(WhoAmI(), timeout=60).pid
    paused = agent.call(Hold(keys=["inventory:A"], ttl_s=1.0, write_at=time.time() + 10))
    wait_until(lambda: holders(system, "inventory:A"), "the agent holds the lease")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: not holders(system, "inventory:A"), "the runtime expired it", 30)
        with system.lease("inventory:A", ttl=timedelta(seconds=30)):
            system.get_resource("inventory").restock("A", 1)
    finally:
        os.kill(pid, signal.SIGCONT)
    held = ray.get(paused, timeout=60)
    assert (held.outcome, held.lost) == ("stale", True)
    log = system.log("inventory")
    assert [r.writer for r in log.records()] == ["system"]  # zero stale writes applied
    assert [r.reason for r in log.rejections()] == ["stale_lease"]


def test_the_kill_switch_ends_a_lease_at_once(system: System) -> None:
    system.resource(Inventory, name="inventory")
    agent = system.agent(Holder, name="holder")
    with system.lease("stock:A"):
        assert agent.ask(Peek(), timeout=60) == Seen(held=1, keys=["stock:A"])  # self.locks
    agent.call(Hold(keys=["inventory:A"], ttl_s=600.0, write_at=time.time() + 600))
    wait_until(lambda: holders(system, "inventory:A"), "the agent holds the lease")
    before = system.locks.status().last_token
    done = system.kill("holder")
    assert done["lease_keys_fenced"] == ["inventory:A"]
    with system.lease("inventory:A", timeout=timedelta(seconds=10)) as lease:
        assert lease.tokens["inventory:A"] > before + 1  # above the fence drawn by the kill
    assert [e.kind for e in system.locks.events()].count("killed") == 1


def test_a_crashed_holder_loses_its_keys_when_the_ttl_runs_out(system: System) -> None:
    system.use_locks(LockPolicy(tick=timedelta(milliseconds=50)))
    system.resource(Inventory, name="inventory")
    agent = system.agent(Holder, name="holder")
    agent.call(Hold(keys=["inventory:A"], ttl_s=1.0, write_at=time.time() + 600))
    wait_until(lambda: holders(system, "inventory:A"), "the agent holds the lease")
    ray.kill(agent.actors[0], no_restart=True)
    with system.lease("inventory:A", timeout=timedelta(seconds=30)):
        assert holders(system, "inventory:A")[0].startswith("system:")
    assert "expired" in [e.kind for e in system.locks.events()]


def test_the_locks_actor_killed_mid_run_loses_no_grant_and_doubles_none(system: System) -> None:
    locks = system.use_locks(LockPolicy(tick=timedelta(milliseconds=50)))
    system.resource(Inventory, name="inventory")
    agent = system.agent(Holder, name="holder")
    with system.lease("inventory:A", ttl=timedelta(seconds=60)) as held:
        waiting = agent.call(Hold(keys=["inventory:A"], write_at=0))
        wait_until(lambda: system.locks.status().waiting == 1, "the agent waits")
        ray.kill(locks.actor, no_restart=False)
        wait_until(lambda: system.locks.status().incarnation == 2, "the locks actor is back")
        status = system.locks.status()
        assert (status.held, status.waiting) == (1, 1)  # the agent's re-sent acquire resumed
        assert holders(system, "inventory:A")[0].startswith("system:")
        system.get_resource("inventory").restock("A", 1)
    after = ray.get(waiting, timeout=60)
    assert after.outcome == "applied"
    assert after.tokens["inventory:A"] > held.tokens["inventory:A"]
    grants = [e for e in system.locks.events() if e.kind in ("granted", "released")]
    assert [e.kind for e in grants] == ["granted", "released", "granted", "released"]


@pytest.mark.parametrize(
    ("method", "args", "error"),
    [
        ("acquire", ({"lease_id": "x"},), InvalidArgumentError),
        ("acquire", (Acquire(lease_id="x", owner="o", agent="a", keys=("",)),),
         InvalidArgumentError),
        ("acquire", (Acquire(lease_id="x", owner="o", agent="a", keys=("k",), ttl_s=-1),),
         InvalidArgumentError),
        ("renew", ("never",), LeaseExpiredError),
        ("release", (["x"],), InvalidArgumentError),
        ("kill", (None,), InvalidArgumentError),
    ],
)  # fmt: skip
def test_forged_calls_straight_to_the_actor_get_typed_errors(
    system: System, method: str, args: tuple[Any, ...], error: type[Exception]
) -> None:
    actor = system.locks.actor
    with pytest.raises(error):
        try:
            ray.get(getattr(actor, method).remote(*args), timeout=60)
        except ray.exceptions.RayTaskError as failed:
            raise failed.cause from None
    assert system.locks.status().held == 0
