"""Resource logic as a plain class: every single-writer rule, without Ray."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resources_for_tests import Inventory, Item, Ledger, OutOfStockError

import actors._resource.core as core_module
from actors import WriteResult
from actors._resource.state_view import replay as replay_log
from actors.lowlevel import ResourceCore, WriteCall
from policies import ResourcePolicy, WriteAuthority
from runtime import (
    ConflictError,
    FencedError,
    InvalidArgumentError,
    Location,
    PayloadTooLargeError,
    StorageError,
    UnauthorizedWriterError,
    UnknownOperationError,
    WriteFailedError,
    decode,
    encode,
)


def call(
    op: str, *args: Any, key: str | None = None, writer: str = "w", epoch: int = 1,
    expected: int | None = None, **kwargs: Any,
) -> WriteCall:  # fmt: skip
    return WriteCall(
        op, encode([list(args), kwargs]), writer, epoch, key or uuid.uuid4().hex, "a" * 32, expected
    )


def open_core(root: Path, **kwargs: Any) -> ResourceCore:
    return ResourceCore(Inventory(), "inventory", root, **kwargs)


def replay(core: ResourceCore) -> dict[str, Any]:
    state: dict[str, Any] = dict(Inventory().initial_state())
    replay_log(state, core.log.records())
    return state


def test_versions_are_gap_free_and_results_in_order(store_root: Location) -> None:
    core = open_core(store_root)
    results = core.apply_batch([call("restock", "A", 5), call("reserve", "A", 2)])
    results += core.apply_batch([call("reserve", "A", 9), call("restock", "A", 1)])
    assert [r.value for r in results] == [5, 3, None, 4]
    assert isinstance(results[2].error, OutOfStockError)
    assert [r.version for r in core.log.records()] == [1, 2, 3]
    assert core.version == 3


def test_acknowledged_write_survives_a_new_incarnation(store_root: Location) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", "A", 5, key="k1"), call("restock", "B", 2)])
    again = open_core(store_root)
    assert again.state == {"A": 5, "B": 2}
    assert again.version == 2
    assert again.incarnation == core.incarnation + 1


def test_repeated_key_returns_the_stored_result_also_after_restart(store_root: Location) -> None:
    core = open_core(store_root)
    first = core.apply_batch([call("restock", "A", 5, key="same")])[0]
    in_batch = core.apply_batch(
        [call("restock", "A", 5, key="x"), call("restock", "A", 5, key="x")]
    )
    assert in_batch[1].duplicate and in_batch[1].value == in_batch[0].value
    restarted = open_core(store_root, policy=ResourcePolicy(idempotency_cache=1))
    again = restarted.apply_batch([call("restock", "A", 5, key="same")])[0]
    assert again.duplicate and again.value == first.value == 5 and again.version == 1
    assert restarted.state == {"A": 10}
    assert len(list(restarted.log.records())) == 2


def test_conflict_carries_the_current_version_and_changes_nothing(store_root: Location) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", "A", 5)])
    result = core.apply_batch([call("restock", "A", 1, expected=0)])[0]
    assert isinstance(result.error, ConflictError)
    assert (result.error.expected, result.error.current) == (0, 1)
    assert core.state == {"A": 5}
    ok = core.apply_batch([call("restock", "A", 1, expected=1)])[0]
    assert ok.error is None and ok.version == 2


def test_unauthorized_writer_is_refused_and_logged(store_root: Location) -> None:
    core = open_core(store_root, authority=WriteAuthority.of(["orders"]))
    result = core.apply_batch([call("restock", "A", 5, writer="intruder", key="evil")])[0]
    assert isinstance(result.error, UnauthorizedWriterError)
    assert result.error.writer == "intruder"
    assert core.state == {} and list(core.log.records()) == []
    (rejection,) = core.log.rejections()
    assert (rejection.writer, rejection.reason, rejection.idem_key) == (
        "intruder",
        "unauthorized",
        "evil",
    )


def test_a_zombie_incarnation_is_fenced(store_root: Location) -> None:
    zombie = open_core(store_root)
    zombie.apply_batch([call("restock", "A", 1)])
    current = open_core(store_root)
    refused = zombie.apply_batch([call("restock", "A", 100)])[0]
    assert isinstance(refused.error, FencedError)
    assert zombie.state == {"A": 1}  # its own memory was rolled back too
    assert current.apply_batch([call("restock", "A", 2)])[0].version == 2
    assert open_core(store_root).state == {"A": 3}
    assert isinstance(zombie.apply_batch([call("restock", "A", 1)])[0].error, FencedError)


def test_a_fenced_writer_epoch_is_refused(store_root: Location) -> None:
    core = open_core(store_root)
    core.fence_writer("orders", 3)
    stale = core.apply_batch([call("restock", "A", 1, writer="orders", epoch=2)])[0]
    fresh = core.apply_batch([call("restock", "A", 1, writer="orders", epoch=3)])[0]
    assert isinstance(stale.error, FencedError) and fresh.error is None
    reopened = open_core(store_root)  # the fence is durable
    again = reopened.apply_batch([call("restock", "A", 1, writer="orders", epoch=2)])[0]
    assert isinstance(again.error, FencedError)


def test_a_raising_write_leaves_state_unchanged(store_root: Location) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", "A", 5)])
    result = core.apply_batch([call("half_then_fail", "A")])[0]
    assert isinstance(result.error, ValueError)
    assert core.state == {"A": 5} and core.version == 1
    assert [r.reason for r in core.log.rejections()] == ["raised"]


def test_an_error_that_cannot_travel_becomes_write_failed(store_root: Location) -> None:
    result = open_core(store_root).apply_batch([call("unpicklable_failure")])[0]
    assert isinstance(result.error, WriteFailedError)
    assert result.error.error_type == "Unpicklable"


def test_non_plain_state_or_bad_arguments_are_refused(store_root: Location) -> None:
    core = open_core(store_root)
    stored = core.apply_batch([call("store_object", "k")])[0]
    assert isinstance(stored.error, InvalidArgumentError) and core.state == {}
    wrong_arity = core.apply_batch([call("restock", "A")])[0]
    assert isinstance(wrong_arity.error, InvalidArgumentError)
    bad_model = core.apply_batch([call("add_item", {"sku": "A"})])[0]
    assert isinstance(bad_model.error, InvalidArgumentError)
    unknown = core.apply_batch([call("nope")])[0]
    assert isinstance(unknown.error, UnknownOperationError)
    read_as_write = core.apply_batch([call("available", "A")])[0]
    assert isinstance(read_as_write.error, UnknownOperationError)
    assert core.version == 0


def test_pydantic_arguments_arrive_as_models(store_root: Location) -> None:
    core = open_core(store_root)
    result = core.apply_batch([call("add_item", Item(sku="A", qty=4))])[0]
    assert result.value == 4


def test_oversized_arguments_are_refused_at_the_resource(store_root: Location) -> None:
    core = open_core(store_root, policy=ResourcePolicy(max_payload_bytes=64))
    result = core.apply_batch([call("restock", "A" * 100, 1)])[0]
    assert isinstance(result.error, PayloadTooLargeError)
    assert core.state == {}


def test_encode_refuses_what_is_not_plain_data() -> None:
    with pytest.raises(InvalidArgumentError):
        encode([object()])
    with pytest.raises(InvalidArgumentError):
        encode({"s": {1, 2}})
    with pytest.raises(PayloadTooLargeError) as error:
        encode("x" * 100, limit=10)
    assert error.value.limit == 10


def test_audit_record_is_the_size_of_the_change(store_root: Location) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", f"sku{i}", 1) for i in range(2000)])
    core.apply_batch([call("restock", "sku7", 1)])
    last = list(core.log.records())[-1]
    assert decode(last.diff) == [["sku7", True, 1, True, 2]]
    assert len(last.diff) < 40


def test_recovery_from_snapshot_plus_tail(store_root: Location) -> None:
    policy = ResourcePolicy(snapshot_every=10)
    core = open_core(store_root, policy=policy)
    for i in range(37):
        core.apply_batch([call("restock", f"s{i % 5}", i)])
    recovered = open_core(store_root, policy=policy)
    assert recovered.state == core.state == replay(core)
    assert recovered.version == 37


def test_reads_see_committed_state_and_version(store_root: Location) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", "A", 3)])
    got = core.read("available", ["A"], {})
    assert (got.value, got.version) == (3, 1)
    with pytest.raises(UnknownOperationError):
        core.read("restock", ["A", 1], {})


def test_nested_state_is_undone_when_a_write_raises(store_root: Location) -> None:
    core = ResourceCore(Ledger(), "ledger", store_root)
    core.apply_batch([call("post", "a", 5)])
    failed = core.apply_batch([call("post", "a", -10)])[0]
    assert isinstance(failed.error, ValueError)
    assert core.state == {"accounts": {"a": [5]}}
    assert ResourceCore(Ledger(), "ledger", store_root).state == {"accounts": {"a": [5]}}


# -- the resource against a simple model, under random operation sequences -----------

operation = st.one_of(
    st.tuples(st.just("restock"), st.sampled_from("ABC"), st.integers(0, 5)),
    st.tuples(st.just("reserve"), st.sampled_from("ABC"), st.integers(0, 5)),
    st.tuples(st.just("repeat"), st.integers(0, 50), st.just(0)),
    st.tuples(st.just("restart"), st.just(""), st.just(0)),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(operation, max_size=40), batch=st.integers(1, 6))
def test_resource_matches_a_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any], batch: int
) -> None:
    root = tmp_path_factory.mktemp("model")
    core = open_core(root, policy=ResourcePolicy(snapshot_every=7))
    model: dict[str, int] = {}
    sent: list[tuple[WriteCall, Any]] = []  # call and the result the model expects
    pending: list[tuple[WriteCall, Any]] = []

    def flush() -> None:
        results = core.apply_batch([c for c, _ in pending])
        for (_, expected), result in zip(pending, results, strict=True):
            assert (result.value if result.error is None else "error") == expected
        pending.clear()

    for name, sku, qty in ops:
        if name == "restart":
            flush()
            core = open_core(root, policy=ResourcePolicy(snapshot_every=7))
            assert core.state == model
            continue
        if name == "repeat":
            if sent:
                pending.append(sent[sku % len(sent)])
        elif name == "restock":
            model[sku] = model.get(sku, 0) + qty
            sent.append((call("restock", sku, qty), model[sku]))
            pending.append(sent[-1])
        elif sku in model and model[sku] >= qty:
            model[sku] -= qty
            sent.append((call("reserve", sku, qty), model[sku]))
            pending.append(sent[-1])
        else:
            pending.append((call("reserve", sku, qty), "error"))
        if len(pending) >= batch:
            flush()
    flush()
    assert core.state == model == replay(core)
    versions = [r.version for r in core.log.records()]
    assert versions == list(range(1, len(sent) + 1))


def test_a_failed_commit_acknowledges_nothing_and_the_next_batch_commits(
    store_root: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = open_core(store_root)
    core.apply_batch([call("restock", "A", 1)])
    original = core.log.commit

    def broken(*args: Any, **kwargs: Any) -> None:
        raise StorageError("disk full")

    monkeypatch.setattr(core.log, "commit", broken)
    failed = core.apply_batch([call("restock", "A", 5, key="k"), call("restock", "B", 1)])
    assert all(isinstance(r.error, StorageError) for r in failed)
    assert core.state == {"A": 1} and core.version == 1
    monkeypatch.setattr(core.log, "commit", original)
    retried = core.apply_batch([call("restock", "A", 5, key="k")])[0]
    assert (retried.value, retried.version, retried.duplicate) == (6, 2, False)
    assert open_core(store_root).state == {"A": 6}


def test_an_unexpected_failure_mid_batch_rolls_back_applied_writes(
    store_root: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = open_core(store_root)
    calls = [call("restock", "A", 1), call("restock", "B", 1, key="boom")]
    real_record = core_module.log_record

    def record(call: WriteCall, *args: Any) -> Any:  # fails after the write was applied
        if call.idem_key == "boom":
            raise RuntimeError("clock broken")
        return real_record(call, *args)

    monkeypatch.setattr(core_module, "log_record", record)
    results = core.apply_batch(calls)
    assert all(isinstance(r.error, StorageError) for r in results)
    assert core.state == {} and core.version == 0


def test_calls_and_results_survive_the_wire_form() -> None:
    from actors._resource.calls import pack_calls, pack_results, unpack_calls, unpack_results

    calls = [call("restock", "A", 1, key="k1"), call("reserve", "B", 2, key="k2", expected=7)]
    assert unpack_calls(pack_calls(calls)) == calls
    results = [
        WriteResult(3, {"left": [1, 2]}),
        WriteResult(3, 5, duplicate=True),
        WriteResult(3, error=ConflictError("inv", 7, 3)),
    ]
    back = unpack_results(pack_results(results))
    assert [(r.version, r.value, r.duplicate) for r in back] == [
        (3, {"left": [1, 2]}, False), (3, 5, True), (3, None, False),
    ]  # fmt: skip
    assert isinstance(back[2].error, ConflictError) and back[2].error.current == 3
