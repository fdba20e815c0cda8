"""The filter of committed idempotency keys: a new key skips storage, a logged key is
never taken for new (across restarts, compaction and a filter grown past its size)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from resources_for_tests import Inventory

import actors._resource.keys as keys_module
from actors._resource.keys import KeyFilter, KnownKeys
from actors.lowlevel import ResourceCore, WriteCall
from policies import ResourcePolicy, ResourceRetention
from runtime import Location, encode
from runtime.testing import FakeClock


def call(op: str, *args: Any, key: str) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), "w", 1, key, "a" * 32, None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=300), st.integers(1, 64))
def test_the_filter_never_says_new_for_an_added_key(added: list[str], capacity: int) -> None:
    found = KeyFilter(capacity)  # small capacities: well past full, still no false negative
    for key in added:
        found.add(key)
    assert [key for key in added if not found.may_contain(key)] == []
    assert found.full == (len(added) > capacity)


def test_the_filter_rules_out_most_new_keys_at_capacity() -> None:
    found = KeyFilter(10_000)
    for i in range(10_000):
        found.add(f"logged-{i}")
    false_positives = sum(found.may_contain(f"new-{i}") for i in range(10_000))
    assert false_positives < 300  # about 1% by design; 3% bounds the chance variation


def test_a_new_key_costs_no_storage_look_up_and_a_retry_is_answered_exactly(
    store_root: Location,
) -> None:
    core = ResourceCore(Inventory(), "inventory", store_root)
    first = core.apply_batch([call("restock", "A", 5, key=f"k{i}") for i in range(50)])
    assert [r.version for r in first] == list(range(1, 51))
    assert core._keys.lookups == 0
    core.close()
    again = ResourceCore(Inventory(), "inventory", store_root)  # memory gone, filter rebuilt
    retried = again.apply_batch(
        [call("restock", "A", 5, key="k7"), call("restock", "A", 1, key="x")]
    )
    assert [(r.version, r.value, r.duplicate) for r in retried] == [(8, 40, True), (51, 251, False)]
    assert again._keys.lookups >= 1  # the retried key was read from the log
    again.close()


def test_a_compacted_key_is_still_found_after_a_restart(tmp_path: Path) -> None:
    retention = ResourceRetention(
        audit=timedelta(hours=1), idempotency_keys=timedelta(hours=2),
        compact_every=timedelta(minutes=1), compact_batch=1000,
    )  # fmt: skip
    policy = ResourcePolicy(snapshot_every=10, retention=retention)
    clock = FakeClock()
    core = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    for batch in range(3):
        core.apply_batch([call("restock", "A", 1, key=f"k{batch * 5 + i}") for i in range(5)])
    clock.advance(timedelta(minutes=90).total_seconds())
    core.apply_batch([call("restock", "B", 1, key="young")])  # compacts k0..k9
    assert min(r.version for r in core.log.records()) == 11
    core.close()
    again = ResourceCore(Inventory(), "inventory", tmp_path, policy=policy, clock=clock)
    retried = again.apply_batch([call("restock", "A", 1, key="k2")])[0]
    assert (retried.version, retried.value, retried.duplicate) == (3, 3, True)


def test_a_filter_grown_past_its_size_is_rebuilt_and_still_knows_every_key(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(keys_module, "_MIN_CAPACITY", 8)
    core = ResourceCore(
        Inventory(), "inventory", tmp_path, policy=ResourcePolicy(idempotency_cache=1)
    )
    for batch in range(10):
        core.apply_batch([call("restock", "A", 1, key=f"k{batch}-{i}") for i in range(5)])
    assert core._keys.filter.capacity >= 50  # rebuilt from storage as it filled
    keys = [f"k{batch}-{i}" for batch in range(10) for i in range(5)]
    assert [k for k in keys if not core._keys.filter.may_contain(k)] == []
    retried = core.apply_batch([call("restock", "A", 1, key="k0-0")])[0]
    assert (retried.version, retried.duplicate) == (1, True)


def test_a_rebuild_that_cannot_read_storage_keeps_the_full_filter() -> None:
    def broken() -> list[str]:
        raise OSError("disk gone")

    known = KnownKeys(10, broken, lambda keys: {})
    known.filter = KeyFilter(2)
    known.remember(dict.fromkeys(("a", "b", "c"), None))  # type: ignore[arg-type]
    assert all(known.filter.may_contain(k) for k in "abc")
