"""Within-transaction validators at the resource, as plain classes (a fake ``ask``
stands in for the agents; tests/test_visibility_ray.py asks real ones)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from visibility_for_tests import PriceChanged, Pricing, PromiseMade, Shop, Stuck
from waiting import until

from actors import Veto
from actors._cli.stores import read_only
from actors._events.validate import run_validator
from actors._resource.asking import RayValidators
from actors._resource.calls import pack_calls, unpack_calls
from actors._resource.validation import Gate, save_rules
from actors._resource.verdicts import verdicts_folder, verdicts_of
from actors.lowlevel import ResourceCore, WriteCall
from policies import Latency, OnTimeout, VisibilityPolicy, VisibilityRule, WriteAuthority
from runtime import (
    InvalidArgumentError,
    SerialApplier,
    ValidatorFailedError,
    VetoedError,
    decode,
    encode,
)

pytestmark = pytest.mark.timeout(60)


def call(op: str, *args: Any, writer: str = "fulfillment", key: str | None = None) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), writer, 1, key or uuid.uuid4().hex, "t" * 32)


def rules(root: Path, on_timeout: OnTimeout = OnTimeout.VETO) -> None:
    rule = VisibilityRule(
        notify=("pricing", "support"), latency=Latency.WITHIN_TRANSACTION,
        deadline=timedelta(milliseconds=50), on_timeout=on_timeout,
    )  # fmt: skip
    immediate = VisibilityRule(notify=("fulfillment",), latency=Latency.IMMEDIATE)
    policy = VisibilityPolicy(rules={"PromiseMade": rule, "PriceChanged": immediate})
    save_rules(root, policy, {"pricing": 1, "support": 1})


class Asked:
    """A fake ``ask``: records each question; answers by the agent's scripted reply."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.asked: list[tuple[str, str, bytes]] = []
        self.traces: list[tuple[str, str]] = []

    async def __call__(
        self, agent: str, replicas: int, event_type: str, payload: bytes, deadline_s: float,
        trace: tuple[str, str],
    ) -> Veto | None:  # fmt: skip
        self.asked.append((agent, event_type, payload))
        self.traces.append(trace)
        reply = self.replies.get(agent)
        if isinstance(reply, Exception):
            raise reply
        if reply == "hang":
            await asyncio.sleep(deadline_s * 100)
        return reply  # type: ignore[no-any-return]


def run(root: Path, ask: Asked, batches: list[list[WriteCall]], **core_kwargs: Any) -> Any:
    """Submit each batch through a gate and an applier, concurrently; the results and
    the core."""
    core = ResourceCore(Shop(), "shop", root, **core_kwargs)
    applier: SerialApplier[list[WriteCall]] = SerialApplier(
        lambda batch: [(True, core.apply_batch(calls)) for calls in batch]
    )
    gate = Gate("shop", root, Shop.emits, ask=ask)

    async def submit_all() -> list[Any]:
        return list(
            await asyncio.gather(
                *(gate.submit(b, applier, lambda: core, lambda calls: calls) for b in batches)
            )
        )

    return asyncio.run(submit_all()), core


def test_an_allowed_write_commits_after_every_validator_was_asked(tmp_path: Path) -> None:
    rules(tmp_path)
    ask = Asked({"pricing": None, "support": None})
    [[result]], core = run(tmp_path, ask, [[call("promise", "A", 10)]])
    assert result.error is None and result.value == 1 and core.version == 1
    payload = PromiseMade(sku="A", price=10).model_dump_json().encode()
    assert sorted(ask.asked) == [
        ("pricing", "PromiseMade", payload),
        ("support", "PromiseMade", payload),
    ]


def test_a_veto_refuses_the_write_and_logs_it_with_the_trace(tmp_path: Path) -> None:
    rules(tmp_path)
    ask = Asked({"pricing": Veto(reason="price is 12"), "support": None})
    [[result]], core = run(tmp_path, ask, [[call("promise", "A", 10)]])
    assert isinstance(result.error, VetoedError)
    assert (result.error.validator, result.error.reason) == ("pricing", "price is 12")
    assert (result.error.resource, result.error.event_type) == ("shop", "PromiseMade")
    assert core.version == 0 and core.state == {}
    [rejection] = core.log.rejections()
    assert (rejection.reason, rejection.trace_id, rejection.op) == ("vetoed", "t" * 32, "promise")


@pytest.mark.parametrize(
    ("reply", "failure"),
    [("hang", "timeout"), (ValidatorFailedError("", "PromiseMade", "pricing", "died", "gone"),
                           "died")],
)  # fmt: skip
def test_a_validator_without_a_verdict_follows_the_declared_rule(
    tmp_path: Path, reply: Any, failure: str
) -> None:
    (tmp_path / "veto").mkdir()
    rules(tmp_path / "veto")
    ask = Asked({"pricing": reply, "support": None})
    [[refused]], closed = run(tmp_path / "veto", ask, [[call("promise", "A", 10)]])
    assert isinstance(refused.error, ValidatorFailedError)
    assert (refused.error.failure, refused.error.validator) == (failure, "pricing")
    assert closed.version == 0
    assert [r.reason for r in closed.log.rejections()] == ["validator_failed"]
    (tmp_path / "allow").mkdir()
    rules(tmp_path / "allow", OnTimeout.ALLOW)
    [[allowed]], open_ = run(tmp_path / "allow", ask, [[call("promise", "A", 10)]])
    assert allowed.error is None and open_.version == 1


def test_each_verdict_is_stored_with_the_write_and_asked_under_its_span(tmp_path: Path) -> None:
    rules(tmp_path)
    ask = Asked({"pricing": Veto(reason="price is 12"), "support": None})
    sent = dataclasses.replace(call("promise", "A", 10, key="k1"), parent_span="ab" * 8)
    [[result]], _ = run(tmp_path, ask, [[sent]])
    assert isinstance(result.error, VetoedError)
    assert ask.traces == [("t" * 32, "ab" * 8)] * 2  # the validators' runs: children of it
    with read_only(verdicts_folder(tmp_path) / "shop.sqlite") as conn:
        stored = verdicts_of(conn, "t" * 32)
    assert sorted((v["agent"], v["outcome"], v["detail"]) for v in stored) == [
        ("pricing", "vetoed", "price is 12"),
        ("support", "allowed", ""),
    ]
    assert {(v["resource"], v["op"], v["idem_key"], v["event_type"]) for v in stored} == {
        ("shop", "promise", "k1", "PromiseMade")
    }
    assert all(v["duration_ms"] >= 0 for v in stored)


def test_a_veto_outranks_a_failure(tmp_path: Path) -> None:
    rules(tmp_path)
    failed = ValidatorFailedError("", "PromiseMade", "pricing", "raised", "bug")
    ask = Asked({"pricing": failed, "support": Veto(reason="no")})
    [[result]], _ = run(tmp_path, ask, [[call("promise", "A", 10)]])
    assert isinstance(result.error, VetoedError) and result.error.validator == "support"


def test_forged_duplicate_failing_and_ungated_writes_never_reach_a_validator(
    tmp_path: Path,
) -> None:
    rules(tmp_path)
    ask = Asked({"pricing": None, "support": None})
    first = call("promise", "A", 10, key="k")
    batches = [
        [first, call("promise", "A", 10, key="k")],  # the second: a duplicate
        [call("promise", "A", 10, writer="mallory")],  # not a declared writer
        [call("promise", "A")],  # a missing argument: the write raises
        [call("set_price", "A", 12)],  # PriceChanged is immediate: not gated
        [call("note", "hello")],  # emits nothing
    ]
    results, core = run(tmp_path, ask, batches, authority=WriteAuthority.of(["fulfillment"]))
    assert len(ask.asked) == 2  # the first promise only, once per validator
    assert results[0][1].duplicate and results[1][0].error is not None
    assert results[2][0].error is not None and core.version == 3


def test_writes_arriving_during_validation_wait_and_apply_after_in_order(tmp_path: Path) -> None:
    rules(tmp_path)
    seen: list[int] = []

    class Watching(Asked):
        async def __call__(self, agent: str, *rest: Any) -> Veto | None:
            seen.append(core_ref[0].version)  # the committed version the verdict is about
            await asyncio.sleep(0.02)
            return None

    core_ref: list[ResourceCore] = []
    ask = Watching({})
    core = ResourceCore(Shop(), "shop", tmp_path)
    core_ref.append(core)
    applier: SerialApplier[list[WriteCall]] = SerialApplier(
        lambda batch: [(True, core.apply_batch(calls)) for calls in batch]
    )
    gate = Gate("shop", tmp_path, Shop.emits, ask=ask)

    async def go() -> list[Any]:
        promise = asyncio.create_task(
            gate.submit([call("promise", "A", 10)], applier, lambda: core, lambda c: c)
        )
        await until(lambda: seen, "the promise is being validated")
        price = applier.submit([call("set_price", "A", 12)])
        return [await promise, await price]

    [[promised], [priced]] = asyncio.run(go())
    assert (promised.version, priced.version) == (1, 2)
    assert seen == [0, 0] and [r.op for r in core.log.records()] == ["promise", "set_price"]


def test_the_rules_apply_only_to_types_the_resource_may_emit(tmp_path: Path) -> None:
    rules(tmp_path)
    assert list(Gate("shop", tmp_path, Shop.emits).rules()) == ["PromiseMade"]
    assert Gate("other", tmp_path, (PriceChanged,)).rules() == {}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(
        st.tuples(
            st.sampled_from(["promise", "set_price", "note"]),
            st.sampled_from([None, "veto", "fail"]),
        ),
        min_size=1, max_size=12,
    ),
    allow_on_failure=st.booleans(),
)  # fmt: skip
def test_exactly_the_writes_every_validator_allowed_commit_gap_free(
    tmp_path_factory: pytest.TempPathFactory,
    writes: list[tuple[str, str | None]],
    allow_on_failure: bool,
) -> None:
    root = tmp_path_factory.mktemp("gate")
    rules(root, OnTimeout.ALLOW if allow_on_failure else OnTimeout.VETO)
    script = iter(answer for op, answer in writes if op == "promise")

    class Scripted(Asked):
        async def __call__(self, agent: str, *rest: Any) -> Veto | None:
            if agent == "support":
                return None
            answer = next(script)
            if answer == "fail":
                raise ValidatorFailedError("", "PromiseMade", agent, "raised", "bug")
            return Veto(reason="no") if answer == "veto" else None

    args = {"promise": ("A", 10), "set_price": ("A", 12), "note": ("n",)}
    batches = [[call(op, *args[op])] for op, _ in writes]
    core = ResourceCore(Shop(), "shop", root)
    applier: SerialApplier[list[WriteCall]] = SerialApplier(
        lambda batch: [(True, core.apply_batch(calls)) for calls in batch]
    )
    gate = Gate("shop", root, Shop.emits, ask=Scripted({}))

    async def in_order() -> list[Any]:  # one after another: each verdict script in order
        return [await gate.submit(b, applier, lambda: core, lambda c: c) for b in batches]

    results = [r for [r] in asyncio.run(in_order())]

    def commits(op: str, answer: str | None) -> bool:
        return op != "promise" or answer is None or (answer == "fail" and allow_on_failure)

    committed = [(op, answer) for op, answer in writes if commits(op, answer)]
    assert [r.error is None for r in results] == [commits(*w) for w in writes]
    records = list(core.log.records())
    assert [r.version for r in records] == list(range(1, len(committed) + 1))
    assert [r.op for r in records] == [op for op, _ in committed]
    assert core.state.get("promises", 0) == sum(op == "promise" for op, _ in committed)
    assert len(core.log.rejections()) == len(writes) - len(committed)


def test_the_write_span_crosses_the_wire_and_a_forged_one_is_malformed() -> None:
    made = call("promise", "A", 10)
    (back,) = unpack_calls(pack_calls([made], "ab" * 8))
    assert (back.parent_span, back.malformed) == ("ab" * 8, None)
    wire = list(decode(pack_calls([made]))[0])
    (untraced,) = unpack_calls(encode([wire[:12]]))  # from a writer before spans crossed
    assert (untraced.parent_span, untraced.malformed) == ("", None)
    for forged in ("zz" * 8, "ab" * 9, 7):
        (bad,) = unpack_calls(encode([[*wire[:12], forged]]))
        assert bad.malformed is not None, forged


def test_a_validator_given_a_forged_trace_refuses_it_typed() -> None:
    agent = Pricing()
    payload = PromiseMade(sku="A", price=10).model_dump_json().encode()
    for forged in ("t" * 32, ("t" * 32, "x"), ("T" * 32, ""), ["a" * 32, "b" * 16, "c"]):
        with pytest.raises(InvalidArgumentError):
            asyncio.run(run_validator(agent, "agent p", "PromiseMade", payload, forged))


def test_a_validator_run_past_its_deadline_is_cancelled_and_a_typed_timeout() -> None:
    stuck = PromiseMade(sku="stuck", price=1).model_dump_json().encode()
    with pytest.raises(ValidatorFailedError) as failed:  # not left running: it is cancelled
        asyncio.run(run_validator(Stuck(), "agent judge", "PromiseMade", stuck, None, 0.05))
    assert (failed.value.failure, failed.value.detail) == ("timeout", "no verdict within 0.05s")
    other = PromiseMade(sku="A", price=1).model_dump_json().encode()
    assert asyncio.run(run_validator(Stuck(), "agent judge", "PromiseMade", other, None, 5)) is None
    for forged in (0, -1.0, float("nan"), float("inf"), True, "1s", [1]):
        with pytest.raises(InvalidArgumentError):
            asyncio.run(run_validator(Stuck(), "agent judge", "PromiseMade", other, None, forged))


class _Replica:
    """Stands in for a replica's actor handle: ``validate_event`` answers ``verdict``."""

    def __init__(self, verdict: Any) -> None:
        self.validate_event = self
        self.verdict = verdict

    async def remote(self, *args: Any) -> Any:
        return self.verdict


def test_a_veto_that_is_not_a_veto_inside_is_a_bad_verdict() -> None:
    forged = [
        Veto.model_construct(reason=None),
        Veto.model_construct(),
        Veto.model_construct(reason=7),
    ]
    for verdict in forged:  # built without validation, in the validator or on the way
        ask = RayValidators("ns")
        ask._actors[("judge", 0)] = _Replica(verdict)
        with pytest.raises(ValidatorFailedError) as failed:
            asyncio.run(ask("judge", 1, "PromiseMade", b"{}", 1.0, ("t" * 32, "")))
        assert (failed.value.failure, failed.value.validator) == ("bad_verdict", "judge")
    ask = RayValidators("ns")
    ask._actors[("judge", 0)] = _Replica(Veto(reason="no"))
    assert asyncio.run(ask("judge", 1, "PromiseMade", b"{}", 1.0, ("t" * 32, ""))) == Veto(
        reason="no"
    )
