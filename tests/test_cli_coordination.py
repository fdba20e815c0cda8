"""`agentcast status` and `agentcast check` on a system that uses leases and the conflict
ladder: the locks actor's holders, waits and alerts, the conflicts by settling level, and
the checklist's lease, order and deadlock items passing (or failing when order is off)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from ownership_for_tests import Drafts
from waiting import wait_until

from actors import System, Write
from actors._cli.check import check_namespace
from actors._cli.main import main
from policies import ConflictAction, ConflictPolicy, ConflictRule, LockPolicy, ResourcePolicy

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def status(capfd: pytest.CaptureFixture[str], system: System) -> dict[str, Any]:
    assert main(["status", "--namespace", system.namespace, "--json"]) == 0
    (found,) = json.loads(capfd.readouterr().out)["systems"]
    return dict(found)


def checks(system: System) -> dict[str, tuple[str, str]]:
    report = check_namespace(system.namespace)
    return {c["name"]: (c["status"], c["evidence"]) for c in report["checks"]}


def test_status_shows_a_wait_alert_and_conflicts_by_level(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    merge = ConflictRule(action=ConflictAction.MERGE, merge_op="merge_revise")
    policy = ResourcePolicy(conflicts=ConflictPolicy(rules=(merge,)))
    drafts = system.resource(Drafts, name="drafts", policy=policy)
    drafts.revise("d1", "first")
    assert drafts.write(Write(op="revise", args=["d1", "second"], expected_version=0)).error is None
    before = status(capfd, system)
    assert (before["leases"], before["conflicts"]) == (
        None, {"total": 1, "open": 0, "by_level": {"1": 1}, "share": {"1": 1.0},
               "outcomes": {"applied": 1}},
    )  # fmt: skip

    waited: list[bool] = []

    def second_holder() -> None:
        with system.lease("drafts:d1", expected=timedelta(seconds=0.2)):
            waited.append(True)

    with system.lease("drafts:d1", ttl=timedelta(seconds=60)):
        waiter = threading.Thread(target=second_holder)
        waiter.start()
        alerted = wait_until(
            lambda: (found := status(capfd, system))["leases"]["alerts"] and found,
            "the wait past twice its expected hold is an alert",
        )
    waiter.join(timeout=60)
    assert waited == [True]
    leases = alerted["leases"]
    assert (leases["held"], leases["waiting"], [k["key"] for k in leases["keys"]]) == (
        1, 1, ["drafts:d1"],
    )  # fmt: skip
    head, alert = leases["lines"]
    assert head == "locks: 1 held, 1 waiting, 1 keys, 0 deadlocks broken, 0 expired"
    assert (
        alert.startswith("lock_wait_exceeded system:") and "for drafts:d1 (expected 0.2s)" in alert
    )
    assert main(["status", "--namespace", system.namespace]) == 0
    text = capfd.readouterr().out.splitlines()
    assert "  conflicts: 1, 0 open; settled at level 1 1 (100%)" in text
    assert any(line.startswith("  locks: ") for line in text)


def test_check_passes_the_lock_items_when_the_locks_actor_runs(system: System) -> None:
    system.use_locks()
    found = checks(system)
    for item in ("leases with TTL", "global lock order enforced"):
        assert found[item][0] == "PASS", found[item]
    assert found["deadlock detection and wait alerting"] == (
        "PASS",
        "wait-for graph checked every 100 ms and on every wait (the youngest waiter of a cycle "
        "gets DeadlockError); lock_wait_exceeded after 2x the declared expected hold",
    )
    assert found["global lock order enforced"][1] == "keys taken in one global order: sorted names"


def test_check_fails_the_order_item_when_order_is_not_enforced(system: System) -> None:
    system.use_locks(LockPolicy(enforce_order=False))
    assert checks(system)["global lock order enforced"] == (
        "FAIL", "the locks actor does not enforce it",
    )  # fmt: skip
