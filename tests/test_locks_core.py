"""The locks core as a plain class, on a fake clock: grants, FIFO order, tokens, global
order, deadlock cycles, expiry, timeouts, alerts, the kill switch, restarts, bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from actors._locks.core import Acquire, LocksCore
from actors._locks.status import LeaseGrant
from policies import LockPolicy
from runtime import (
    DeadlockError,
    InvalidArgumentError,
    LeaseExpiredError,
    Location,
    LockOrderError,
    LockTimeoutError,
)
from runtime.testing import FakeClock

UNORDERED = LockPolicy(enforce_order=False)


def core_at(root: Path, clock: FakeClock, policy: LockPolicy | None = None) -> LocksCore:
    return LocksCore(root, policy, clock=clock)


def ask(core: LocksCore, lease: str, owner: str, *keys: str, **kw: Any) -> LeaseGrant | None:
    agent = kw.pop("agent", owner.split(":")[0])
    grant = core.acquire(Acquire(lease_id=lease, owner=owner, agent=agent, keys=keys, **kw))
    core.commit()
    return grant


def resolved(core: LocksCore) -> dict[str, Any]:
    core.commit()
    return core.resolved()


def test_an_exclusive_lease_waits_and_gets_the_key_in_fifo_order(store_root: Location) -> None:
    core = core_at(store_root, FakeClock())
    first = ask(core, "l1", "a", "inventory:A")
    assert first is not None and first.tokens == {"inventory:A": 1}
    assert ask(core, "l2", "b", "inventory:A") is None
    assert ask(core, "l3", "c", "inventory:A") is None
    assert core.release("l1") is True
    granted = resolved(core)
    assert list(granted) == ["l2"]
    assert granted["l2"].tokens == {"inventory:A": 2}
    core.release("l2")
    assert resolved(core)["l3"].tokens == {"inventory:A": 3}
    assert core.release("l1") is False  # a release is safe to repeat


def test_shared_leases_hold_together_and_a_queued_writer_blocks_later_readers(
    store_root: Location,
) -> None:
    core = core_at(store_root, FakeClock())
    assert ask(core, "r1", "a", "doc:1", shared=True) is not None
    assert ask(core, "r2", "b", "doc:1", shared=True) is not None
    assert ask(core, "w", "c", "doc:1") is None
    assert ask(core, "r3", "d", "doc:1", shared=True) is None  # behind the writer: fair
    core.release("r1")
    assert resolved(core) == {}
    core.release("r2")
    assert list(resolved(core)) == ["w"]
    core.release("w")
    assert list(resolved(core)) == ["r3"]


def test_keys_are_taken_in_the_global_order_whatever_order_they_are_named_in(
    store_root: Location,
) -> None:
    core = core_at(store_root, FakeClock())
    grant = ask(core, "l1", "a", "pricing:A", "inventory:A")
    assert grant is not None and grant.keys == ("inventory:A", "pricing:A")
    assert grant.tokens == {"inventory:A": 1, "pricing:A": 2}
    declared = core_at(store_root / "declared", FakeClock(), LockPolicy(order=("pricing",)))
    grant = ask(declared, "l1", "a", "inventory:A", "pricing:A")
    assert grant is not None and grant.keys == ("pricing:A", "inventory:A")


def test_a_nested_lease_that_breaks_the_order_is_refused(store_root: Location) -> None:
    core = core_at(store_root, FakeClock())
    ask(core, "outer", "a:0:t1", "pricing:A")
    with pytest.raises(LockOrderError) as refused:
        ask(core, "inner", "a:0:t1", "inventory:A")
    assert refused.value.held == "pricing:A"
    with pytest.raises(LockOrderError):
        ask(core, "again", "a:0:t1", "pricing:A")  # a held key is not after itself
    assert ask(core, "after", "a:0:t1", "stock:A") is not None  # sorts after: fine
    assert ask(core, "other", "b:0:t2", "inventory:A") is not None  # another owner: fine
    kinds = [event.kind for event in core.events()]
    assert kinds.count("order_refused") == 2


def test_a_cycle_is_broken_at_once_at_its_youngest_waiter(store_root: Location) -> None:
    core = core_at(store_root, FakeClock(), UNORDERED)
    ask(core, "a1", "inv:0", "inventory:A")
    ask(core, "b1", "pri:0", "pricing:A")
    assert ask(core, "a2", "inv:0", "pricing:A") is None
    with pytest.raises(DeadlockError) as broken:
        ask(core, "b2", "pri:0", "inventory:A")  # the youngest waiter: it closed the cycle
    assert broken.value.cycle == ("pri:0", "inv:0")
    assert core.status().deadlocks == 1
    # counted for the metric although the victim is the request itself, not a waiter
    assert core.broken_keys == ["inventory:A"]
    core.release("b1")  # the victim's block ends: its outer lease goes
    assert list(resolved(core)) == ["a2"]
    deadlock = [event for event in core.events() if event.kind == "deadlock"]
    assert [(e.lease_id, e.detail) for e in deadlock] == [("b2", "pri:0 -> inv:0")]


def test_a_three_way_cycle_refuses_the_youngest_waiter_not_the_caller(store_root: Location) -> None:
    core = core_at(store_root, FakeClock(), UNORDERED)
    for owner, key in (("x", "k:1"), ("y", "k:2"), ("z", "k:3")):
        ask(core, f"{owner}1", owner, key)
    assert ask(core, "x2", "x", "k:2") is None
    assert ask(core, "z2", "z", "k:1") is None  # waits for x; younger than x2
    with pytest.raises(DeadlockError) as broken:
        ask(core, "y2", "y", "k:3")
    assert set(broken.value.cycle) == {"x", "y", "z"} and broken.value.cycle[0] == "y"
    assert core.broken_keys == ["k:3"]


def test_asking_again_for_a_key_held_exclusively_is_a_cycle_of_one(store_root: Location) -> None:
    core = core_at(store_root, FakeClock(), UNORDERED)
    ask(core, "l1", "a", "k:1")
    with pytest.raises(DeadlockError) as broken:
        ask(core, "l2", "a", "k:1")
    assert broken.value.cycle == ("a",)


def test_the_runtime_expires_a_lease_that_is_not_renewed(store_root: Location) -> None:
    clock = FakeClock()
    core = core_at(store_root, clock)
    ask(core, "l1", "a", "k:1", ttl_s=2.0)
    ask(core, "l2", "b", "k:1", ttl_s=2.0)
    clock.advance(1.5)
    assert core.renew("l1").tokens == {"k:1": 1}
    clock.advance(1.5)
    core.tick()
    assert resolved(core) == {}  # renewed: still held
    clock.advance(0.6)
    core.tick()
    assert resolved(core)["l2"].tokens == {"k:1": 2}
    assert core.status().expired == 1
    with pytest.raises(LeaseExpiredError):
        core.renew("l1")


def test_a_wait_times_out_with_nothing_held(store_root: Location) -> None:
    clock = FakeClock()
    core = core_at(store_root, clock)
    ask(core, "l1", "a", "k:2")
    assert ask(core, "l2", "b", "k:1", "k:2", timeout_s=1.0) is None  # holds k:1, waits
    clock.advance(1.01)
    core.tick()
    outcome = resolved(core)["l2"]
    assert isinstance(outcome, LockTimeoutError)
    assert ask(core, "l3", "c", "k:1") is not None  # the partial grant was handed back


def test_a_wait_past_twice_the_expected_hold_raises_one_alert(store_root: Location) -> None:
    clock = FakeClock()
    core = core_at(store_root, clock)
    ask(core, "l1", "holder", "k:1", expected_s=1.0)
    ask(core, "l2", "waiter", "k:1", expected_s=1.0)
    clock.advance(1.9)
    assert core.tick() == []
    clock.advance(0.2)
    (alert,) = core.tick()
    assert (alert.owner, alert.key, alert.blockers) == ("waiter", "k:1", ("holder",))
    assert core.tick() == []  # raised once
    status = core.status()
    assert [a.lease_id for a in status.alerts] == ["l2"]
    assert status.lines()[1].startswith("lock_wait_exceeded waiter waits 2.1s for k:1")
    core.commit()
    assert [e.lease_id for e in core.events() if e.kind == "lock_wait_exceeded"] == ["l2"]


def test_kill_ends_the_agents_leases_and_waits_and_draws_newer_tokens(store_root: Location) -> None:
    core = core_at(store_root, FakeClock())
    ask(core, "l1", "inv:0:t1", "k:1", "k:2", agent="inv")
    ask(core, "l2", "pri:0:t2", "k:3", agent="pri")
    ask(core, "l3", "inv:1:t3", "k:3", agent="inv")
    ask(core, "l4", "other:0:t4", "k:1", agent="other")
    fenced = core.kill("inv")
    assert sorted(fenced) == ["k:1", "k:2"] and min(fenced.values()) > 3
    outcomes = resolved(core)
    assert isinstance(outcomes["l3"], LeaseExpiredError)
    assert outcomes["l4"].tokens["k:1"] > max(fenced.values())
    assert core.status().held == 2


def test_a_restart_keeps_every_grant_and_never_reuses_a_token(store_root: Location) -> None:
    clock = FakeClock()
    core = core_at(store_root, clock, UNORDERED)
    held = ask(core, "l1", "a", "k:1", "k:2")
    assert ask(core, "l2", "b", "k:0", "k:2") is None  # holds k:0, waits for k:2
    core.close()
    again = core_at(store_root, clock, UNORDERED)
    assert again.incarnation == 2
    assert again.acquire(Acquire(lease_id="l1", owner="a", agent="a", keys=("k:1", "k:2"))) == held
    assert again.acquire(Acquire(lease_id="l2", owner="b", agent="b", keys=("k:0", "k:2"))) is None
    assert ask(again, "l3", "c", "k:0") is None  # k:0 stayed granted to l2
    again.release("l1")
    outcome = resolved(again)["l2"]
    assert outcome.tokens == {"k:0": 3, "k:2": 4}


@pytest.mark.parametrize(
    "change",
    [
        {"lease_id": ""},
        {"owner": 7},
        {"keys": ()},
        {"keys": ("",)},
        {"keys": "k:1"},
        {"keys": tuple(f"k:{i}" for i in range(65))},
        {"shared": "yes"},
        {"ttl_s": -1.0},
        {"ttl_s": 10_000.0},
        {"ttl_s": True},
        {"expected_s": 0},
        {"timeout_s": float("nan")},
    ],
)
def test_a_malformed_request_is_refused_with_a_typed_error(
    store_root: Location, change: dict[str, Any]
) -> None:
    core = core_at(store_root, FakeClock())
    fields: dict[str, Any] = {"lease_id": "l1", "owner": "a", "agent": "a", "keys": ("k:1",)}
    with pytest.raises(InvalidArgumentError):
        core.acquire(Acquire(**{**fields, **change}))
    assert core.status().held == 0


def test_bad_calls_other_than_acquire_are_refused(store_root: Location) -> None:
    core = core_at(store_root, FakeClock())
    with pytest.raises(InvalidArgumentError):
        core.acquire({"lease_id": "l1"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        core.release(12)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        core.kill("")
    with pytest.raises(LeaseExpiredError):
        core.renew("never-granted")


def test_events_older_than_the_window_are_pruned(store_root: Location) -> None:
    clock = FakeClock()
    core = core_at(store_root, clock, LockPolicy(events=timedelta(hours=1)))
    ask(core, "l1", "a", "k:1")
    core.release("l1")
    core.commit()
    clock.advance(timedelta(hours=2))
    ask(core, "l2", "a", "k:1")
    assert core.prune() is False
    assert [(e.kind, e.lease_id) for e in core.events()] == [("granted", "l2")]
