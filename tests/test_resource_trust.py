"""The resource's promises under bad input and forged calls, as plain classes (no Ray).

One test (at least) per finding of the trust review: forged identity, keys answering
for other writes, one malformed write failing its neighbours, type changes lost at a
restart, unchecked fences, a commit that errored after reaching the log, zombie reads,
untyped runtime errors, unchecked annotations.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resources_for_tests import Inventory, Item, Store

from actors._agent.registry import AgentRegistry
from actors._resource.calls import WriteCall, pack_calls, unpack_results
from actors.lowlevel import ResourceCore, ResourceHost
from policies import ResourcePolicy, WriteAuthority
from runtime import (
    AgentcastError,
    FencedError,
    IdempotencyKeyReusedError,
    InvalidArgumentError,
    StorageError,
    UnauthorizedWriterError,
    UnknownOperationError,
    decode,
    encode,
)

pytestmark = pytest.mark.timeout(60)


def call(
    op: Any, *args: Any, key: Any = None, writer: str = "orders", epoch: int = 1,
    token: str = "", **kwargs: Any,
) -> WriteCall:  # fmt: skip
    return WriteCall(
        op, encode([list(args), kwargs]), writer, epoch, key or uuid.uuid4().hex, "a" * 32,
        None, token,
    )  # fmt: skip


def guarded(root: Path, cls: type = Inventory, writers: list[str] | None = None) -> ResourceCore:
    """A core that takes identity from tokens, as the resource actor does."""
    return ResourceCore(
        cls(), "inventory", root, authority=WriteAuthority.of(writers),
        tokens=AgentRegistry(root),
    )  # fmt: skip


# -- 1. identity is a capability ------------------------------------------------------------


def test_forged_calls_naming_a_declared_writer_are_refused_and_logged(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path)
    real = registry.issue_token("orders", 1)
    core = guarded(tmp_path, writers=["orders"])
    forged = [
        call("restock", "A", 5, writer="orders", epoch=epoch, token=token)
        for epoch in range(1, 6)
        for token in ("", "forged-" + "x" * 40, real[:-1])
    ]
    results = core.apply_batch(forged)
    assert [type(r.error) for r in results] == [UnauthorizedWriterError] * len(forged)
    assert core.state == {} and core.version == 0 and list(core.log.records()) == []
    rejections = core.log.rejections()
    assert [(r.writer, r.reason) for r in rejections] == [("orders", "unauthenticated")] * 15
    ok = core.apply_batch([call("restock", "A", 5, writer="someone-else", epoch=9, token=real)])
    assert ok[0].value == 5
    (record,) = core.log.records()
    assert (record.writer, record.writer_epoch) == ("orders", 1)  # the token's, not the claim


def test_after_a_kill_the_old_token_is_refused_even_when_cached(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path)
    old = registry.issue_token("orders", 1)
    core = guarded(tmp_path)
    assert core.apply_batch([call("restock", "A", 1, token=old)])[0].error is None
    new_epoch = registry.bump_epoch("orders")  # the kill switch: revoke, then fence
    core.fence_writer("orders", new_epoch)
    refused = core.apply_batch([call("restock", "A", 1, token=old, epoch=new_epoch)])[0]
    assert isinstance(refused.error, FencedError)
    fresh = guarded(tmp_path)  # a new incarnation that never saw the token
    again = fresh.apply_batch([call("restock", "A", 1, token=old, epoch=new_epoch)])[0]
    assert isinstance(again.error, FencedError)
    assert [r.reason for r in fresh.log.rejections()] == ["fenced_writer", "revoked"]
    assert fresh.state == {"A": 1}


def test_unauthorized_writer_error_lists_the_declared_writers(tmp_path: Path) -> None:
    token = AgentRegistry(tmp_path).issue_token("intruder", 1)
    core = guarded(tmp_path, writers=["orders", "system"])
    error = core.apply_batch([call("restock", "A", 1, token=token)])[0].error
    assert isinstance(error, UnauthorizedWriterError)
    assert (error.writer, error.declared) == ("intruder", ("orders", "system"))
    assert "'orders', 'system'" in str(error)


# -- 2. a key is bound to its writer, op and arguments ---------------------------------------


def test_a_key_never_answers_for_an_unauthorized_writer_or_another_write(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path)
    orders, intruder = registry.issue_token("orders", 1), registry.issue_token("intruder", 1)
    spare = registry.issue_token("spare", 1)
    core = guarded(tmp_path, writers=["orders", "spare"])
    assert core.apply_batch([call("restock", "A", 10, key="k", token=orders)])[0].value == 10
    stolen = core.apply_batch([call("reserve", "B", 99, key="k", token=intruder)])[0]
    assert isinstance(stolen.error, UnauthorizedWriterError) and not stolen.duplicate
    other_op = core.apply_batch([call("reserve", "A", 1, key="k", token=orders)])[0]
    other_args = core.apply_batch([call("restock", "A", 11, key="k", token=orders)])[0]
    assert isinstance(other_op.error, IdempotencyKeyReusedError)
    assert isinstance(other_args.error, IdempotencyKeyReusedError)
    same = core.apply_batch([call("restock", "A", 10, key="k", token=orders)])[0]
    assert (same.value, same.duplicate, same.version) == (10, True, 1)
    rerouted = core.apply_batch([call("restock", "A", 10, key="k", token=spare)])[0]
    assert (rerouted.value, rerouted.duplicate) == (10, True)  # the same write of one task
    assert [r.reason for r in core.log.rejections()] == [
        "unauthorized", "key_reused", "key_reused",
    ]  # fmt: skip
    restarted = guarded(tmp_path, writers=["orders", "spare"])  # the binding is durable
    again = restarted.apply_batch([call("restock", "A", 12, key="k", token=orders)])[0]
    assert isinstance(again.error, IdempotencyKeyReusedError)
    assert restarted.state == {"A": 10}


# -- 3. a malformed write fails alone -------------------------------------------------------


def _host(root: Path, cls: type = Inventory) -> ResourceHost:
    return ResourceHost(cls, "inventory", str(root), ResourcePolicy(), WriteAuthority())


def test_a_malformed_write_fails_alone_and_is_logged(tmp_path: Path) -> None:
    token = AgentRegistry(tmp_path).issue_token("orders", 1)
    calls = [
        call("restock", "B", 1, token=token),
        call(None, "B", 1, token=token),
        call(["restock"], "B", 1, token=token),
        call("restock", "B", 1, key=["k"], token=token),
        call("restock", "B", 1, token=token),
    ]
    results = unpack_results(asyncio.run(_host(tmp_path).submit(pack_calls(calls))))
    assert [type(r.error).__name__ for r in results] == [
        "NoneType", "InvalidArgumentError", "InvalidArgumentError", "InvalidArgumentError",
        "NoneType",
    ]  # fmt: skip
    assert [r.value for r in results] == [1, None, None, None, 2]
    log = ResourceCore(Inventory(), "inventory", tmp_path).log
    assert [r.reason for r in log.rejections()] == ["malformed"] * 3


def test_a_batch_that_is_not_a_list_of_writes_is_one_typed_error(tmp_path: Path) -> None:
    host = _host(tmp_path)
    for blob in (b"\xc1", encode({"a": 1}), encode([[1, 2]]), "text"):
        try:
            results = unpack_results(asyncio.run(host.submit(blob)))  # type: ignore[arg-type]
        except AgentcastError:
            continue
        assert all(isinstance(r.error, InvalidArgumentError) for r in results)
    assert asyncio.run(host.status())["version"] == 0


# -- 4. live state is what recovery rebuilds -------------------------------------------------


def test_a_change_of_type_or_sign_alone_is_logged_and_survives_a_restart(tmp_path: Path) -> None:
    core = ResourceCore(Store(), "store", tmp_path)
    writes = [
        ("put", "x", 1), ("put", "x", 1.0), ("put", "b", 1), ("put", "b", True),
        ("put", "z", 0.0), ("put", "z", -0.0), ("put_pair", "t", 1, 2),
        ("put_item", "m", Item(sku="A", qty=1).model_dump()),
    ]  # fmt: skip
    results = core.apply_batch([call(op, *args) for op, *args in writes])
    assert [r.error for r in results] == [None] * len(writes)
    recovered = ResourceCore(Store(), "store", tmp_path)
    assert encode(core.state) == encode(recovered.state)
    assert core.state == {"x": 1.0, "b": True, "z": -0.0, "t": [1, 2], "m": {"sku": "A", "qty": 1}}
    assert type(core.state["x"]) is float and type(recovered.state["b"]) is bool
    assert math.copysign(1, recovered.state["z"]) == -1
    assert [r.version for r in recovered.log.records()] == list(range(1, 9))


# -- 5. a fence is checked before it is stored ------------------------------------------------


@pytest.mark.parametrize("writer, epoch", [("system", "x"), ("system", -1), ("system", True),
                                           ("", 1), (None, 1), ("system", 2**70)])  # fmt: skip
def test_a_bad_fence_is_refused_and_never_stored(tmp_path: Path, writer: Any, epoch: Any) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    with pytest.raises(InvalidArgumentError):
        core.fence_writer(writer, epoch)
    with pytest.raises(InvalidArgumentError):
        asyncio.run(_host(tmp_path).fence_writer(writer, epoch))
    reopened = ResourceCore(Inventory(), "inventory", tmp_path)
    assert reopened.apply_batch([call("restock", "A", 1, writer="system")])[0].value == 1


# -- 6. a commit that errors after reaching the log ------------------------------------------


def test_a_commit_that_errors_after_reaching_the_log_is_recovered_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    real_commit = core.log.commit

    def commits_then_fails(*args: Any, **kwargs: Any) -> None:
        real_commit(*args, **kwargs)
        monkeypatch.setattr(core.log, "commit", real_commit)
        raise StorageError("disk said no after writing")

    monkeypatch.setattr(core.log, "commit", commits_then_fails)
    failed = core.apply_batch([call("restock", "A", 5, key="k")])[0]
    assert isinstance(failed.error, StorageError)
    assert core.read("available", ["A"], {}).value == 5  # what the log holds
    retried = core.apply_batch([call("restock", "A", 5, key="k")])[0]
    assert (retried.value, retried.version, retried.duplicate) == (5, 1, True)
    after = core.apply_batch([call("restock", "A", 1)])[0]
    assert (after.error, after.version, after.value) == (None, 2, 6)


# -- 8. a fenced incarnation refuses reads ----------------------------------------------------


def test_a_superseded_incarnation_refuses_reads(tmp_path: Path) -> None:
    zombie = ResourceCore(Inventory(), "inventory", tmp_path)
    zombie.apply_batch([call("restock", "A", 1)])
    current = ResourceCore(Inventory(), "inventory", tmp_path)
    current.apply_batch([call("restock", "A", 1)])
    with pytest.raises(FencedError):
        zombie.read("available", ["A"], {})
    assert zombie.fenced
    assert current.read("available", ["A"], {}).value == 2


# -- 9. every runtime-side failure is typed ---------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{(1, 2): 3}, {1.5: 1}, {None: 1}, [{"a": {("x",): 1}}]],
    ids=["tuple key", "float key", "None key", "nested tuple key"],
)
def test_the_encoder_refuses_what_the_decoder_cannot_read(value: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        encode(value)


def test_deep_nesting_is_refused_by_the_encoder_and_the_decoder_is_typed() -> None:
    deep: Any = 1
    for _ in range(1022):
        deep = [deep]
    with pytest.raises(InvalidArgumentError):
        encode(deep)
    for garbage in (b"\xc1", b"\x92\x91", b"\xdd\xff\xff\xff\xff", "text", None, b"\xa2\xff\xfe"):
        with pytest.raises(InvalidArgumentError):
            decode(garbage)  # type: ignore[arg-type]


def test_malformed_direct_reads_get_typed_errors(tmp_path: Path) -> None:
    host = _host(tmp_path)
    asyncio.run(host.status())
    bad = [
        (["available"], encode([["A"], {}]), UnknownOperationError),
        ("available", b"\xc1", InvalidArgumentError),
        ("available", encode({"a": 1}), InvalidArgumentError),
        ("available", "text", InvalidArgumentError),
        ("available", encode([["A"], {"self": 1}]), InvalidArgumentError),
        ("available", encode([["A"], {1: 1}]), InvalidArgumentError),
        ("nope", encode([[], {}]), UnknownOperationError),
    ]
    for op, args, expected in bad:
        with pytest.raises(expected):
            asyncio.run(host.read(op, args))


# -- 10. annotations are checked before the op runs -------------------------------------------


@pytest.mark.parametrize(
    "args, parameter",
    [((0, 1), "sku"), (("A", math.nan), "qty"), (("A", math.inf), "qty"), (("A", "x"), "qty"),
     (("A", 1.5), "qty"), ((["A"], 1), "sku")],
)  # fmt: skip
def test_arguments_are_checked_against_the_annotations(
    tmp_path: Path, args: tuple[Any, ...], parameter: str
) -> None:
    core = ResourceCore(Inventory(), "inventory", tmp_path)
    error = core.apply_batch([call("restock", *args)])[0].error
    assert isinstance(error, InvalidArgumentError)
    assert f"restock: argument {parameter!r}" in str(error)
    assert core.state == {} and core.version == 0


def test_nan_is_refused_inside_models_and_where_a_float_is_annotated(tmp_path: Path) -> None:
    core = ResourceCore(Store(), "store", tmp_path)
    results = core.apply_batch(
        [call("scale", "k", math.nan), call("put_item", "k", {"sku": 1, "qty": 1}),
         call("scale", "k", 2)]
    )  # fmt: skip
    assert [type(r.error) for r in results[:2]] == [InvalidArgumentError] * 2
    assert results[2].value == 2.0 and core.version == 1


# -- 4 (generated). live state == replay, type-strict ----------------------------------------


def _types(value: Any) -> Any:
    """The value's shape with every leaf's type: equal shapes mean type-equal values."""
    if isinstance(value, dict):
        return ("dict", {key: _types(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_types(item) for item in value])
    return type(value).__name__


_LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1, 1.0, True])
)  # fmt: skip
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(["a", "b", "c"])
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _KEYS, _VALUES),
        st.tuples(st.just("put_pair"), _KEYS, _VALUES, _VALUES),
        st.tuples(st.just("put_in"), _KEYS, st.sampled_from(["x", "y"]), _VALUES),
        st.tuples(st.just("drop"), _KEYS),
        st.just(("restart",)),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_STEPS)
def test_live_state_always_equals_the_replay_type_strictly(
    tmp_path: Path, steps: list[Any]
) -> None:
    root = tmp_path / uuid.uuid4().hex
    core = ResourceCore(Store(), "store", root)
    for step in steps:
        if step[0] == "restart":
            core.close()
            core = ResourceCore(Store(), "store", root)
        else:
            core.apply_batch([call(step[0], *step[1:])])
        recovered = ResourceCore(Store(), "store", root)
        assert encode(core.state) == encode(recovered.state)
        assert _types(core.state) == _types(recovered.state)
        recovered.close()


def test_the_audit_comes_back_as_values_and_the_log_replays(tmp_path: Path) -> None:
    core = ResourceCore(Store(), "store", tmp_path)
    core.apply_batch([call("put", "x", [1, 2.5], key="k1"), call("scale", "y", 2.0)])
    first, second = core.log.audit()
    assert (first.op, first.args, first.kwargs, first.result) == ("put", ["x", [1, 2.5]], {}, None)
    assert (second.result, second.changes) == (2.0, [["y", False, None, True, 2.0]])
    assert core.log.replay() == core.state == {"x": [1, 2.5], "y": 2.0}
