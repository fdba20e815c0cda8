"""Fencing of lease tokens at the resource, as a plain class: the newest token per key is
kept with the write, an older one is refused and logged, and that survives a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from resources_for_tests import Inventory

from actors._agent.registry import AgentRegistry
from actors._locks.held import HELD, held_tokens
from actors._locks.lease import Lease, lease_request
from actors._locks.status import LeaseGrant
from actors._resource.calls import pack_calls, unpack_results
from actors._resource.fencing import MAX_LEASES
from actors.lowlevel import ResourceCore, ResourceHost, WriteCall
from policies import ResourcePolicy, ResourceRetention, WriteAuthority
from runtime import InvalidArgumentError, StaleLeaseError, UnauthorizedWriterError, encode
from runtime.testing import FakeClock

pytestmark = pytest.mark.timeout(60)


def call(op: str, *args: Any, leases: Any = (), token: str = "") -> WriteCall:
    return WriteCall(
        op, encode([list(args), {}]), "orders", 1, uuid.uuid4().hex, "a" * 32, None, token,
        leases,
    )  # fmt: skip


def test_an_older_token_is_refused_and_logged_a_newer_one_admitted(tmp_path: Path) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    first, newer, stale, same = core.apply_batch(
        [
            call("restock", "A", 1, leases=(("inventory:A", 3),)),
            call("restock", "A", 1, leases=(("inventory:A", 5), ("pricing:A", 6))),
            call("restock", "A", 1, leases=(("inventory:A", 3),)),
            call("restock", "A", 1, leases=(("inventory:A", 5),)),
        ]
    )
    assert [first.value, newer.value, same.value] == [1, 2, 3]
    assert isinstance(stale.error, StaleLeaseError)
    assert (stale.error.key, stale.error.token, stale.error.newest) == ("inventory:A", 3, 5)
    assert [r.reason for r in core.log.rejections()] == ["stale_lease"]
    unfenced = core.apply_batch([call("restock", "A", 1)])  # no lease: fencing is per lease
    assert unfenced[0].value == 4


def test_the_newest_token_survives_a_restart(tmp_path: Path) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    core.apply_batch([call("restock", "A", 1, leases=(("inventory:A", 9),))])
    core.close()
    again = ResourceCore(Inventory(), "inventory", tmp_path)
    (refused,) = again.apply_batch([call("restock", "A", 1, leases=(("inventory:A", 8),))])
    assert isinstance(refused.error, StaleLeaseError) and refused.error.newest == 9


def test_a_token_seen_on_a_write_that_raised_still_fences(tmp_path: Path) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    (raised,) = core.apply_batch([call("reserve", "A", 5, leases=(("inventory:A", 4),))])
    assert raised.error is not None and not isinstance(raised.error, StaleLeaseError)
    (refused,) = core.apply_batch([call("restock", "A", 1, leases=(("inventory:A", 2),))])
    assert isinstance(refused.error, StaleLeaseError)


def test_a_call_refused_before_admission_never_raises_the_fence(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path)
    token = registry.issue_token("orders", 1)
    core = ResourceCore(
        Inventory(), "inventory", tmp_path, authority=WriteAuthority(), tokens=registry
    )
    (forged,) = core.apply_batch([call("restock", "A", 1, leases=(("inventory:A", 99),))])
    assert isinstance(forged.error, UnauthorizedWriterError)
    (ok,) = core.apply_batch([call("restock", "A", 1, leases=(("inventory:A", 2),), token=token)])
    assert ok.error is None


@pytest.mark.parametrize(
    "leases",
    [
        "inventory:A",
        [["inventory:A"]],
        [["", 1]],
        [["inventory:A", -1]],
        [["inventory:A", True]],
        [["inventory:A", 2**63]],
        [[7, 1]],
        [["k", 1]] * (MAX_LEASES + 1),
    ],
)
def test_malformed_lease_fields_sent_straight_to_the_actor_fail_alone(
    tmp_path: Path, leases: Any
) -> None:
    token = AgentRegistry(tmp_path).issue_token("orders", 1)
    host = ResourceHost(Inventory, "inventory", str(tmp_path), ResourcePolicy(), WriteAuthority())
    forged = call("restock", "A", 1, leases=leases, token=token)
    blob = pack_calls([forged, call("restock", "A", 1, token=token)])
    bad, good = unpack_results(asyncio.run(host.submit(blob)))
    assert isinstance(bad.error, InvalidArgumentError) and good.value == 1
    log = ResourceCore(Inventory(), "inventory", tmp_path).log
    assert [r.reason for r in log.rejections()] == ["malformed"]


def test_compaction_forgets_keys_not_written_under_a_lease_for_the_audit_window(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    retention = ResourceRetention(audit=timedelta(hours=1), compact_every=timedelta(minutes=1))
    policy = ResourcePolicy(snapshot_every=1, retention=retention)
    core = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    core.apply_batch([call("restock", "A", 1, leases=(("old:A", 5),))])
    clock.advance(timedelta(hours=2))
    core.apply_batch([call("restock", "A", 1, leases=(("new:A", 7),))])
    core.close()
    again = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    results = again.apply_batch(
        [
            call("restock", "A", 1, leases=(("old:A", 1),)),
            call("restock", "A", 1, leases=(("new:A", 1),)),
        ]
    )
    assert results[0].error is None
    assert isinstance(results[1].error, StaleLeaseError)


@pytest.mark.parametrize(("shared", "carried"), [(False, (("doc:1", 7),)), (True, ())])
def test_writes_carry_an_exclusive_leases_tokens_and_not_a_shared_ones(
    shared: bool, carried: tuple[tuple[str, int], ...]
) -> None:
    request = lease_request(
        ("doc:1",), owner="o", agent="a", ttl=None, expected=None, shared=shared, timeout=None
    )
    lease = Lease(None, request)  # type: ignore[arg-type]  # no actor: the grant is given
    lease._grant = LeaseGrant(
        lease_id=request.lease_id, keys=("doc:1",), tokens={"doc:1": 7}, ttl_s=1.0, shared=shared
    )
    reset = lease._held()
    try:
        assert held_tokens() == carried
    finally:
        HELD.reset(reset)
    assert held_tokens() == ()
