"""A gated write runs its write method once, and what its validators judged is what
commits (plain classes; a fake ``ask`` stands in for the validator agents)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from actors import Resource, Veto, read, write
from actors._resource.validation import Gate, save_rules
from actors.lowlevel import EventLog, ResourceCore, WriteCall
from policies import Latency, Provenance, VisibilityPolicy, VisibilityRule
from runtime import SerialApplier, StaleLeaseError, StorageError, VetoedError, encode

pytestmark = pytest.mark.timeout(60)


class Quoted(BaseModel):
    quote_id: str
    price: int


class Quotes(Resource):
    """Each quote draws a fresh id and counts its runs: a method that is not a pure
    function of (state, args), as one that reads the clock or draws a random id."""

    emits = (Quoted,)

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self._ids = itertools.count(1)

    @write
    def quote(self, state: dict[str, Any], price: int) -> str:
        self.runs["quote"] = self.runs.get("quote", 0) + 1
        if price < 0:
            raise ValueError(f"a price of {price}")
        quote_id = f"q{next(self._ids)}"
        state["last"] = quote_id
        state["quotes"] = state.get("quotes", 0) + 1
        state.setdefault("history", []).append(quote_id)  # nested data changed in place
        self.emit(Quoted(quote_id=quote_id, price=price))
        return quote_id

    @write
    def note(self, state: dict[str, Any], text: str) -> str:
        self.runs["note"] = self.runs.get("note", 0) + 1
        state.setdefault("notes", []).append(text)
        return text

    @read
    def last(self, state: dict[str, Any]) -> str:
        return str(state.get("last", ""))


def gate_quotes(root: Path) -> None:
    rule = VisibilityRule(
        notify=("pricing",), latency=Latency.WITHIN_TRANSACTION,
        deadline=timedelta(seconds=5),
    )  # fmt: skip
    save_rules(root, VisibilityPolicy(rules={"Quoted": rule}), {"pricing": 1})


def call(op: str, *args: Any, key: str | None = None, **fields: Any) -> WriteCall:
    return WriteCall(
        op, encode([list(args), {}]), "sales", 1, key or uuid.uuid4().hex, "t" * 32, **fields
    )


class Validator:
    """A fake ``ask``: records the payload it was shown (and what a read of the
    resource returned meanwhile); vetoes the prices in ``vetoed``."""

    def __init__(self, core: ResourceCore, vetoed: tuple[int, ...] = ()) -> None:
        self.core = core
        self.vetoed = vetoed
        self.shown: list[Quoted] = []
        self.read_meanwhile: list[tuple[str, int]] = []

    async def __call__(self, agent: str, replicas: int, event_type: str, payload: bytes,
                       *rest: Any) -> Veto | None:  # fmt: skip
        event = Quoted.model_validate_json(payload)
        self.shown.append(event)
        await asyncio.sleep(0.01)  # deliberating: the resource serves reads meanwhile
        read_now = self.core.read("last", [], {})
        self.read_meanwhile.append((read_now.value, read_now.version))
        return Veto(reason="no") if event.price in self.vetoed else None


def submit(core: ResourceCore, ask: Validator, root: Path, batches: list[list[WriteCall]]) -> Any:
    """Each batch through one gate and applier, one after another; their results."""
    applier: SerialApplier[list[WriteCall]] = SerialApplier(
        lambda batch: [(True, core.apply_batch(calls)) for calls in batch]
    )
    gate = Gate("quotes", root, Quotes.emits, ask=ask)

    async def in_order() -> list[Any]:
        return [await gate.submit(b, applier, lambda: core, lambda c: c) for b in batches]

    return asyncio.run(in_order())


def committed_events(root: Path) -> list[Quoted]:
    log = EventLog(root, "quotes")
    try:
        return [e.model(Quoted) for e in log.read()]
    finally:
        log.close()


def test_an_allowed_write_runs_once_and_commits_what_its_validator_saw(tmp_path: Path) -> None:
    gate_quotes(tmp_path)
    quotes = Quotes()
    core = ResourceCore(quotes, "quotes", tmp_path)
    ask = Validator(core)
    [[first], [second]] = submit(core, ask, tmp_path, [[call("quote", 10)], [call("quote", 11)]])
    assert [e.quote_id for e in ask.shown] == ["q1", "q2"]
    assert committed_events(tmp_path) == ask.shown  # the payloads judged, as judged
    assert quotes.runs == {"quote": 2}  # once per call
    assert (first.value, first.version, second.value, second.version) == ("q1", 1, "q2", 2)
    assert core.state == {"last": "q2", "quotes": 2, "history": ["q1", "q2"]}
    assert ResourceCore(Quotes(), "quotes", tmp_path).state == core.state  # as logged
    # read while the validator deliberated: the committed state, never the judged write
    assert ask.read_meanwhile == [("", 0), ("q1", 1)]
    [record_1, record_2] = core.log.records()
    assert (record_1.op, record_2.op) == ("quote", "quote")


def test_a_vetoed_write_runs_once_leaves_no_trace_and_its_key_may_be_sent_again(
    tmp_path: Path,
) -> None:
    gate_quotes(tmp_path)
    quotes = Quotes()
    core = ResourceCore(quotes, "quotes", tmp_path)
    [[kept]] = submit(core, Validator(core), tmp_path, [[call("quote", 10, key="k0")]])
    before = (core.version, copy.deepcopy(core.state), core.marks.saved())
    vetoed = call("quote", 99, key="k1", leases=(("quotes:A", 5),),
                  provenance=Provenance.SYSTEM)  # fmt: skip
    [[refused]] = submit(core, Validator(core, vetoed=(99,)), tmp_path, [[vetoed]])
    assert isinstance(refused.error, VetoedError) and kept.error is None
    assert quotes.runs == {"quote": 2}
    assert (core.version, core.state, core.marks.saved()) == before
    assert [e.quote_id for e in committed_events(tmp_path)] == ["q1"]
    assert [r.reason for r in core.log.rejections()] == ["vetoed"]
    # no lease fence was kept: an older token of that key is still admitted
    older = call("note", "under token 4", leases=(("quotes:A", 4),))
    again = call("quote", 12, key="k1")  # the vetoed key, sent again, now allowed
    [[noted], [retried]] = submit(core, Validator(core), tmp_path, [[older], [again]])
    assert not isinstance(noted.error, StaleLeaseError) and noted.error is None
    assert (retried.error, retried.value, retried.duplicate) == (None, "q3", False)
    assert quotes.runs == {"quote": 3, "note": 1}
    assert ResourceCore(Quotes(), "quotes", tmp_path).state == core.state  # as logged


def test_a_batch_mixing_gated_and_ungated_calls_keeps_its_order_each_run_once(
    tmp_path: Path,
) -> None:
    gate_quotes(tmp_path)
    quotes = Quotes()
    core = ResourceCore(quotes, "quotes", tmp_path)
    batch = [call("note", "a"), call("quote", 1), call("note", "b"), call("quote", 99),
             call("quote", 2), call("note", "c")]  # fmt: skip
    [results] = submit(core, Validator(core, vetoed=(99,)), tmp_path, [batch])
    assert [r.version for r in results] == [1, 2, 3, 3, 4, 5]
    assert [type(r.error) for r in results].count(VetoedError) == 1
    assert [r.op for r in core.log.records()] == ["note", "quote", "note", "quote", "note"]
    assert core.state == {"notes": ["a", "b", "c"], "last": "q3", "quotes": 2,
                          "history": ["q1", "q3"]}  # fmt: skip
    assert quotes.runs == {"note": 3, "quote": 3}


def test_a_write_refused_by_its_method_runs_once_and_reaches_no_validator(
    tmp_path: Path,
) -> None:
    gate_quotes(tmp_path)
    quotes = Quotes()
    core = ResourceCore(quotes, "quotes", tmp_path)
    ask = Validator(core)
    [[refused]] = submit(core, ask, tmp_path, [[call("quote", -1)]])
    assert isinstance(refused.error, ValueError) and core.version == 0
    assert [r.reason for r in core.log.rejections()] == ["raised"]
    assert quotes.runs == {"quote": 1} and ask.shown == []


def test_a_gated_write_after_a_failed_batch_is_still_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_quotes(tmp_path)
    core = ResourceCore(Quotes(), "quotes", tmp_path)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("disk gone")

    with monkeypatch.context() as broken:  # the commit fails, and so does recovery
        broken.setattr(core.log, "commit", down)
        broken.setattr(core.log, "open_incarnation", down)
        [failed] = core.apply_batch([call("note", "lost")])
    assert isinstance(failed.error, StorageError) and core.needs_recovery
    ask = Validator(core, vetoed=(99,))
    [[vetoed]] = submit(core, ask, tmp_path, [[call("quote", 99)]])
    assert isinstance(vetoed.error, VetoedError) and [e.price for e in ask.shown] == [99]
    assert core.version == 0 and committed_events(tmp_path) == []


def test_a_gated_write_whose_check_fails_once_is_refused_not_let_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_quotes(tmp_path)
    core = ResourceCore(Quotes(), "quotes", tmp_path)
    core.needs_recovery = True  # as after a failed batch
    recover, failures = core.log.open_incarnation, [StorageError("store busy")]

    def once_down(*args: Any, **kwargs: Any) -> Any:  # a blip: down once, then back
        if failures:
            raise failures.pop()
        return recover(*args, **kwargs)

    monkeypatch.setattr(core.log, "open_incarnation", once_down)
    ask = Validator(core, vetoed=(99,))
    [[refused]] = submit(core, ask, tmp_path, [[call("quote", 99, key="k")]])
    assert isinstance(refused.error, StorageError) and failures == []
    assert core.version == 0 and committed_events(tmp_path) == [] and ask.shown == []
    [[vetoed]] = submit(core, ask, tmp_path, [[call("quote", 99, key="k")]])  # sent again
    assert isinstance(vetoed.error, VetoedError) and [e.price for e in ask.shown] == [99]
    assert core.version == 0 and committed_events(tmp_path) == []
