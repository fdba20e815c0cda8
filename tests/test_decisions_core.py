"""The decision log and fresh-context writes as plain classes: versioning per topic,
supersedes chains, staleness, the briefing on the wire and on the envelope."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from context_for_tests import Catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import DecisionEntry
from actors._decisions.log import KEEP_PER_TOPIC, Decision
from actors._resource.briefing import Heads, briefed_now, briefing, learned
from actors._resource.calls import pack_calls, unpack_calls
from actors._resource.declare import operations
from actors._resource.freshness import DecisionCatchUp, stale_refusal
from actors.lowlevel import DecisionLog, ResourceCore, WriteCall
from policies import Provenance
from runtime import (
    MAX_BRIEFED_TOPICS,
    Envelope,
    InvalidArgumentError,
    ResourceUnavailableError,
    StaleContextError,
    UnauthorizedWriterError,
    encode,
)

pytestmark = pytest.mark.timeout(120)
TRACE = "d" * 32


def decision(topic: str, text: str, supersedes: int | None = None) -> Decision:
    return Decision(
        topic=topic, decision=text, supersedes=supersedes, author="system",
        provenance=Provenance.SYSTEM, trace_id=TRACE,
    )  # fmt: skip


def append(entry: Decision, key: str | None = None) -> WriteCall:
    """The driver's append: it claims the system's mark, as its handle does."""
    return WriteCall(
        "append", encode([[entry], {}]), "system", 0, key or uuid.uuid4().hex, TRACE,
        provenance=Provenance.SYSTEM,
    )  # fmt: skip


def log_core(root: Path) -> ResourceCore:
    return ResourceCore(DecisionLog(), "decisions", root)


def test_versions_per_topic_and_supersedes_chain(tmp_path: Path) -> None:
    core = log_core(tmp_path)
    first = core.apply_batch([append(decision("pricing", "raise 5%"))])[0].unwrap()
    other = core.apply_batch([append(decision("shipping", "next-day"))])[0].unwrap()
    second = core.apply_batch([append(decision("pricing", "raise 8%", supersedes=1))])[0]
    assert (first["version"], other["version"], second.unwrap()["version"]) == (1, 1, 2)
    entry = DecisionEntry.model_validate(core.read("latest", ["pricing"], {}).value)
    assert entry == DecisionEntry(
        topic="pricing", decision="raise 8%", supersedes=1, author="system",
        provenance=Provenance.SYSTEM, trace_id=TRACE, version=2,
    )  # fmt: skip
    history = core.read("history", ["pricing"], {}).value
    assert [(e["version"], e["supersedes"]) for e in history] == [(1, None), (2, 1)]
    assert core.read("versions", [["pricing", "shipping", "none"]], {}).value == {
        "pricing": 2, "shipping": 1, "none": 0,
    }  # fmt: skip


def test_an_append_on_a_stale_reading_is_refused_and_logged(tmp_path: Path) -> None:
    core = log_core(tmp_path)
    core.apply_batch([append(decision("pricing", "a")), append(decision("pricing", "b", 1))])
    stale, unnamed, future = core.apply_batch(
        [
            append(decision("pricing", "c", supersedes=1)),
            append(decision("pricing", "d")),
            append(decision("pricing", "e", supersedes=7)),
        ]
    )
    assert isinstance(stale.error, StaleContextError)
    assert (stale.error.topic, stale.error.briefed, stale.error.latest) == ("pricing", 1, 2)
    assert isinstance(unnamed.error, StaleContextError) and unnamed.error.briefed == 0
    assert isinstance(future.error, InvalidArgumentError)
    assert core.version == 2
    reasons = [r.reason for r in core.log.rejections()]
    assert reasons.count("stale_context") == 2


def test_a_retried_append_is_applied_once_also_after_a_restart(tmp_path: Path) -> None:
    core = log_core(tmp_path)
    once = core.apply_batch([append(decision("pricing", "a"), key="k")])[0]
    core.close()
    again = log_core(tmp_path).apply_batch([append(decision("pricing", "a"), key="k")])[0]
    assert again.duplicate and again.value == once.value and again.version == once.version


def test_there_is_no_way_to_change_or_delete_an_entry(tmp_path: Path) -> None:
    kinds = log_core(tmp_path).kinds()
    assert {n for n, k in kinds.items() if k == "write"} == {"append"}


def test_an_entry_speaks_for_its_authenticated_writer_and_no_further(tmp_path: Path) -> None:
    """Author and provenance are claims on the wire: a writer cannot record a decision
    under another name, nor as more trusted than the log believes it."""
    core = log_core(tmp_path)

    def claimed(author: str, key: str) -> WriteCall:
        entry = Decision(
            topic="pricing", decision="cut 50%", author=author,
            provenance=Provenance.HUMAN, trace_id=TRACE,
        )  # fmt: skip
        return WriteCall("append", encode([[entry], {}]), "mallory", 0, key, TRACE)

    forged, own = core.apply_batch([claimed("ceo", "k1"), claimed("mallory", "k2")])
    assert isinstance(forged.error, UnauthorizedWriterError)
    assert forged.error.writer == "mallory"
    stored = DecisionEntry.model_validate(own.unwrap())
    assert (stored.version, stored.author, stored.provenance) == (
        1, "mallory", Provenance.UNVERIFIED_AGENT,
    )  # fmt: skip
    assert [(r.writer, r.reason) for r in core.log.rejections()] == [("mallory", "unauthorized")]
    assert core.read("latest", ["pricing"], {}).value == own.value


@pytest.mark.parametrize(
    "forged",
    [
        {"topic": "", "decision": "x", "author": "a", "provenance": "system"},
        {"topic": "t", "decision": "", "author": "a", "provenance": "system"},
        {"topic": "t", "decision": "x", "author": "a", "provenance": "godlike"},
        {"topic": "t", "decision": "x", "author": "a", "provenance": "system", "version": 9},
        {"topic": "t", "decision": "x", "author": "a", "provenance": "system", "supersedes": 0},
        {"topic": "t" * 201, "decision": "x", "author": "a", "provenance": "system"},
    ],
)
def test_malformed_entries_are_refused_typed(tmp_path: Path, forged: dict[str, Any]) -> None:
    core = log_core(tmp_path)
    call = WriteCall("append", encode([[forged], {}]), "system", 0, uuid.uuid4().hex, TRACE)
    (result,) = core.apply_batch([call])
    assert isinstance(result.error, InvalidArgumentError)
    assert core.version == 0


def test_old_entries_leave_the_state_but_versions_keep_counting(tmp_path: Path) -> None:
    core = log_core(tmp_path)
    calls = [append(decision("t", f"d{v}", v - 1 or None)) for v in range(1, KEEP_PER_TOPIC + 3)]
    for start in range(0, len(calls), 200):
        assert all(r.error is None for r in core.apply_batch(calls[start : start + 200]))
    history = core.read("history", ["t", 5000], {}).value
    assert len(history) == KEEP_PER_TOPIC
    assert (history[0]["version"], history[-1]["version"]) == (3, KEEP_PER_TOPIC + 2)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 4)), max_size=25))
def test_appends_accepted_iff_they_name_the_latest(
    tmp_path_factory: pytest.TempPathFactory, attempts: list[tuple[str, int]]
) -> None:
    core = log_core(tmp_path_factory.mktemp("log"))
    latest: dict[str, int] = {}
    for topic, named in attempts:
        (result,) = core.apply_batch([append(decision(topic, "x", named or None))])
        if named == latest.get(topic, 0):
            latest[topic] = named + 1
            assert result.unwrap()["version"] == named + 1
        else:
            assert isinstance(result.error, StaleContextError | InvalidArgumentError)
    for topic, version in latest.items():
        history = core.read("history", [topic], {}).value
        assert [e["version"] for e in history] == list(range(1, version + 1))
        assert [e["supersedes"] for e in history] == [None, *range(1, version)]


# -- fresh context at a resource ---------------------------------------------------


def fresh(
    briefed: int | None, latest: int | None, *, key: str | None = None, writer: str = "pricer"
) -> WriteCall:
    return WriteCall(
        "set_price", encode([["A", 5], {}]), writer, 1, key or uuid.uuid4().hex, TRACE,
        briefed=() if briefed is None else (("pricing", briefed),),
        latest=None if latest is None else Heads(0, (("pricing", latest),)),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50))
def test_a_fresh_write_is_accepted_iff_briefed_at_least_the_latest(
    briefed: int, latest: int
) -> None:
    op = operations(Catalog)["set_price"]
    refused = stale_refusal("catalog", fresh(briefed, latest), op, DecisionCatchUp(None))
    if briefed == latest:
        assert refused is None
    elif briefed < latest:
        assert refused is not None and refused.reason == "stale_context"
        assert isinstance(refused.error, StaleContextError)
        assert (refused.error.briefed, refused.error.latest) == (briefed, latest)
    else:  # a briefing on a version that does not exist yet: forged
        assert refused is not None and isinstance(refused.error, InvalidArgumentError)


def test_stale_writes_are_refused_and_logged_with_writer_and_trace(tmp_path: Path) -> None:
    core = ResourceCore(Catalog(), "catalog", tmp_path)
    ok, stale, never, unknown, plain = core.apply_batch(
        [
            fresh(2, 2),
            fresh(1, 2, writer="laggard"),
            fresh(None, 1),
            fresh(2, None),
            WriteCall("note", encode([["B", 1], {}]), "x", 1, "k-note", TRACE),
        ]
    )
    assert ok.error is None and plain.error is None
    assert isinstance(stale.error, StaleContextError) and stale.error.topic == "pricing"
    assert isinstance(never.error, StaleContextError) and never.error.briefed == 0
    assert isinstance(unknown.error, ResourceUnavailableError)
    rejections = core.log.rejections()
    assert [(r.writer, r.reason, r.trace_id) for r in rejections] == [
        ("laggard", "stale_context", TRACE),
        ("pricer", "stale_context", TRACE),
        ("pricer", "context_unknown", TRACE),
    ]
    assert core.version == 2


def test_a_decision_committed_after_the_versions_were_read_is_still_seen(tmp_path: Path) -> None:
    """The window between the host's read of the versions and the write's apply: the
    applier catches up from the decision log's store."""
    log = log_core(tmp_path)
    log.apply_batch([append(decision("pricing", "a"))])
    stamped = Heads(log.version, (("pricing", 1),))  # what the host read, at version 1
    log.apply_batch([append(decision("other", "x")), append(decision("pricing", "b", 1))])
    catalog = ResourceCore(Catalog(), "catalog", tmp_path)
    call = WriteCall(
        "set_price", encode([["A", 5], {}]), "w", 1, "k", TRACE, briefed=(("pricing", 1),),
        latest=stamped,
    )  # fmt: skip
    (result,) = catalog.apply_batch([call])
    assert isinstance(result.error, StaleContextError)
    assert (result.error.briefed, result.error.latest) == (1, 2)
    current = Heads(log.version, (("pricing", 2),))
    now = replace(call, idem_key="k2", briefed=(("pricing", 2),), latest=current)
    (fresh_now,) = catalog.apply_batch([now])
    assert fresh_now.error is None and catalog.version == 1


def test_the_briefing_travels_on_the_wire_and_a_forged_one_is_malformed() -> None:
    with briefing({"pricing": 3, "shipping": 1}):
        made = WriteCall("set_price", b"", "w", 1, "k", TRACE)
    assert made.briefed == (("pricing", 3), ("shipping", 1))
    (back,) = unpack_calls(pack_calls([made]))
    assert back.briefed == made.briefed and back.latest is None and back.malformed is None
    legacy = unpack_calls(encode([list(_wire(made))[:11]]))[0]
    assert legacy.malformed is None and legacy.briefed == ()
    for forged in ([["pricing", -1]], [["pricing", True]], [[1, 2]], [["a", 1], ["a", 2]],
                   [[f"t{i}", 1] for i in range(MAX_BRIEFED_TOPICS + 1)], "pricing"):  # fmt: skip
        blob = _wire(made)
        blob[11] = forged
        (call,) = unpack_calls(encode([blob]))
        assert call.malformed is not None, forged


def _wire(call: WriteCall) -> list[Any]:
    from runtime import decode

    return list(decode(pack_calls([call]))[0])


def test_reading_a_decision_briefs_the_task_and_never_lowers_it() -> None:
    assert briefed_now() == ()
    with briefing((("pricing", 2),)):
        learned("pricing", 5)
        learned("pricing", 3)
        learned("shipping", 1)
        assert briefed_now() == (("pricing", 5), ("shipping", 1))
    learned("pricing", 9)  # outside a task: nothing
    assert briefed_now() == ()


def test_the_envelope_carries_a_validated_bounded_briefing() -> None:
    envelope = Envelope(briefed={"shipping": 1, "pricing": 4})  # type: ignore[arg-type]
    assert envelope.briefed == (("pricing", 4), ("shipping", 1))
    child = envelope.child(sender="pricer")
    assert child.briefed == envelope.briefed
    assert pickle.loads(pickle.dumps(child)).briefed == envelope.briefed
    for bad in ({"": 1}, {"t": -1}, {"t": 1.5}, {"t": True}, (("a", 1), ("a", 2)),
                {f"t{i}": 1 for i in range(MAX_BRIEFED_TOPICS + 1)}):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            Envelope(briefed=bad)  # type: ignore[arg-type]


def test_an_event_s_task_is_briefed_by_what_it_reads_and_starts_on_nothing() -> None:
    """An event carries no briefing: each event's task starts briefed on nothing, and
    reading a decision in its handler briefs it, as in a ``@handler``'s task."""
    from contract_events_for_tests import PlacedV2Recorder

    from actors._events.subscribe import Subscription, deliver, subscriptions
    from actors._events.wire import EventBatch
    from actors.lowlevel import EventRecord

    seen: list[tuple[tuple[str, int], ...]] = []

    async def run(spec: Subscription, event: Any) -> None:
        seen.append(briefed_now())
        learned("pricing", len(seen))  # what ``self.decisions.latest`` does
        seen.append(briefed_now())

    def record(seq: int) -> EventRecord:
        return EventRecord(
            "orders", seq, f"orders:{seq}:0", seq, "Placed", b'{"sku":"a"}', TRACE, "system",
            "w", "t", "order_placed", 2,
        )  # fmt: skip

    records = [record(1), record(2)]
    wire = EventBatch.of("orders", records).wire()
    specs = subscriptions(PlacedV2Recorder)
    report = asyncio.run(deliver(specs, "agent rec", "rec", wire, run))
    assert (report.done_upto, report.handled, report.error) == (2, 2, None)
    assert seen == [(), (("pricing", 1),), (), (("pricing", 3),)]
    assert briefed_now() == ()


def test_a_subtask_is_briefed_on_what_its_parent_task_read_or_decided() -> None:
    """A task that read (or recorded) version 2 delegates on version 2: its child's write
    is judged on it, not on the older briefing the parent's envelope arrived with."""
    from actors._supervisor.delegate import AsyncSupervisor

    parent = Envelope(briefed={"pricing": 1, "shipping": 4})  # type: ignore[arg-type]
    supervisor = AsyncSupervisor(None, "coordinator", parent)
    with briefing(parent.briefed):
        learned("pricing", 2)  # ``self.decisions.record(...)`` made version 2
        learned("returns", 1)
        child = supervisor._child(None)
    assert child.briefed == (("pricing", 2), ("returns", 1), ("shipping", 4))
    assert supervisor._child(None).briefed == parent.briefed  # outside the task: as sent
    assert AsyncSupervisor(None, "driver", None)._child(None).briefed == ()
