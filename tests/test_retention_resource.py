"""Compaction of a resource's log: what is old goes, what is young stays, and state,
recovery and idempotency inside the windows are unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from resources_for_tests import Inventory

from actors.lowlevel import ResourceCore, WriteCall
from policies import ResourcePolicy, ResourceRetention
from runtime import IdempotencyKeyReusedError, encode
from runtime.testing import FakeClock

RETENTION = ResourceRetention(
    audit=timedelta(hours=1), idempotency_keys=timedelta(hours=2),
    compact_every=timedelta(minutes=1), compact_batch=1000,
)  # fmt: skip
POLICY = ResourcePolicy(snapshot_every=10, retention=RETENTION)


def call(op: str, *args: Any, key: str) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), "w", 1, key, "a" * 32, None)


def open_core(root: Path, clock: FakeClock) -> ResourceCore:
    return ResourceCore(Inventory(), "inventory", root, policy=POLICY, clock=clock)


def write_old_history(core: ResourceCore) -> None:
    """25 writes in batches of 5 (snapshots at 10 and 20) and one rejection."""
    for batch in range(5):
        core.apply_batch([call("restock", "A", 1, key=f"k{batch * 5 + i}") for i in range(5)])
    refused = core.apply_batch([call("reserve", "A", 1000, key="too-many")])
    assert refused[0].error is not None


def test_compaction_drops_old_records_and_rejections_and_keeps_the_state(tmp_path: Path) -> None:
    clock = FakeClock()
    core = open_core(tmp_path, clock)
    write_old_history(core)
    clock.advance(timedelta(minutes=90).total_seconds())
    core.apply_batch([call("restock", "B", 7, key="young")])
    assert (tmp_path / "resources" / "inventory.sqlite-wal").stat().st_size == 0  # cut back
    core.apply_batch([call("reserve", "B", 100, key="young-refused")])

    versions = [r.version for r in core.log.records()]
    assert versions == list(range(21, 27))  # <= 20 was covered by the snapshot and old
    assert [r.idem_key for r in core.log.rejections()] == ["young-refused"]
    assert core.state == {"A": 25, "B": 7}
    assert core.log.replay() == {"A": 25, "B": 7}
    core.close()
    again = open_core(tmp_path, clock)  # recovery: snapshot at 20 + the tail
    assert (again.state, again.version) == ({"A": 25, "B": 7}, 26)


def test_a_compacted_key_is_remembered_for_its_window_then_forgotten(tmp_path: Path) -> None:
    clock = FakeClock()
    core = open_core(tmp_path, clock)
    write_old_history(core)
    clock.advance(timedelta(minutes=90).total_seconds())
    core.apply_batch([call("restock", "B", 7, key="young")])
    assert min(r.version for r in core.log.records()) == 21
    core.close()

    inside = open_core(tmp_path, clock)  # a new incarnation: no key in memory
    retried = inside.apply_batch([call("restock", "A", 1, key="k3")])[0]
    assert (retried.version, retried.value, retried.duplicate) == (4, 4, True)
    reused = inside.apply_batch([call("restock", "A", 2, key="k3")])[0]
    assert isinstance(reused.error, IdempotencyKeyReusedError)
    assert inside.state == {"A": 25, "B": 7}
    inside.close()

    clock.advance(timedelta(minutes=31).total_seconds())  # the keys' 2 hours are over
    later = open_core(tmp_path, clock)
    later.apply_batch([call("restock", "C", 1, key="trigger")])
    later.close()
    after = open_core(tmp_path, clock)
    new = after.apply_batch([call("restock", "A", 1, key="k3")])[0]
    assert (new.version, new.value, new.duplicate) == (28, 26, False)


def test_nothing_is_deleted_inside_the_audit_window(tmp_path: Path) -> None:
    clock = FakeClock()
    core = open_core(tmp_path, clock)
    write_old_history(core)
    clock.advance(timedelta(minutes=59).total_seconds())
    core.apply_batch([call("restock", "B", 7, key="young")])
    assert [r.version for r in core.log.records()] == list(range(1, 27))
    assert [r.idem_key for r in core.log.rejections()] == ["too-many"]


def test_records_not_covered_by_a_snapshot_are_kept_however_old(tmp_path: Path) -> None:
    clock = FakeClock()
    core = open_core(tmp_path, clock)
    core.apply_batch([call("restock", "A", 1, key=f"k{i}") for i in range(5)])
    clock.advance(timedelta(days=3).total_seconds())
    core.apply_batch([call("restock", "A", 1, key="late")])
    assert [r.version for r in core.log.records()] == list(range(1, 7))
    core.close()
    assert open_core(tmp_path, clock).state == {"A": 6}


def test_a_pass_deletes_at_most_compact_batch_and_the_next_batch_goes_on(tmp_path: Path) -> None:
    clock = FakeClock()
    small = ResourceRetention(
        audit=timedelta(hours=1), idempotency_keys=timedelta(minutes=30),
        compact_every=timedelta(minutes=1), compact_batch=8,
    )  # fmt: skip
    policy = ResourcePolicy(snapshot_every=10, retention=small)
    core = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    write_old_history(core)
    clock.advance(timedelta(hours=2).total_seconds())
    core.apply_batch([call("restock", "B", 1, key="b1")])
    assert min(r.version for r in core.log.records()) == 9
    core.apply_batch([call("restock", "B", 1, key="b2")])  # the pass left more: again
    assert min(r.version for r in core.log.records()) == 17


def test_the_heap_is_trimmed_once_a_compaction_pass_is_complete(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Not after a pass that left more to delete: once it is done (the arenas give back
    what the deleted rows and the replay freed), then once per ``compact_every``."""
    clock = FakeClock()
    trims: list[float] = []
    monkeypatch.setattr("actors._resource.upkeep.trim_malloc", lambda: trims.append(clock.now()))
    small = ResourceRetention(
        audit=timedelta(hours=1), idempotency_keys=timedelta(minutes=30),
        compact_every=timedelta(minutes=1), compact_batch=8,
    )  # fmt: skip
    policy = ResourcePolicy(snapshot_every=10, retention=small)
    core = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    write_old_history(core)
    trims.clear()  # a new incarnation's first pass found nothing old yet
    clock.advance(timedelta(hours=2).total_seconds())
    core.apply_batch([call("restock", "B", 1, key="b1")])  # 8 of 20 old records: more left
    assert trims == []
    core.apply_batch([call("restock", "B", 1, key="b2")])
    core.apply_batch([call("restock", "B", 1, key="b3")])  # the last old records go
    assert trims == [clock.now()]
    core.apply_batch([call("restock", "B", 1, key="b4")])  # not due before compact_every
    assert len(trims) == 1
