"""The checklist's items over facts made by hand: each part's presence, absence and
silence gives the line it should; a check that raises is a FAIL, not a crash."""

from __future__ import annotations

from typing import Any

from actors._cli.checklist import (
    CHECKS,
    Facts,
    Finding,
    deadlines_and_schemas,
    deadlocks,
    event_sync,
    idempotent_writes,
    kill_switch,
    leases,
    resources_mapped,
    run_checks,
    summary,
)


def _resource(writers: list[str] | None, **keys: int) -> dict[str, Any]:
    return {"writers": writers, "keys": keys, "written_by": {}, "version": sum(keys.values())}


def test_a_locks_actor_that_describes_itself_passes_its_items() -> None:
    said = {"leases": "ttl 30 s, renewed at half", "deadlocks": "wait-for graph, alert at 2x"}
    facts = Facts("ns", actors=frozenset({"locks"}), described={"locks": said})
    assert leases(facts) == Finding("leases with TTL", "high", "PASS", "ttl 30 s, renewed at half")
    assert deadlocks(facts).status == "PASS"


def test_a_locks_actor_that_says_nothing_is_a_warning() -> None:
    facts = Facts("ns", actors=frozenset({"locks"}), described={"locks": {}})
    assert leases(facts) == Finding(
        "leases with TTL", "high", "WARN", "the locks actor runs but does not describe its leases"
    )


def test_missing_parts_are_named() -> None:
    facts = Facts("shop")
    assert deadlocks(facts) == Finding(
        "deadlock detection and wait alerting", "critical", "FAIL",
        "no locks actor in namespace 'shop': no deadlock detection alerting configured",
    )  # fmt: skip
    assert kill_switch(facts).status == "WARN"


def test_events_subscribers_are_the_evidence() -> None:
    facts = Facts(
        "ns", actors=frozenset({"events"}),
        described={"events": {"subscribers": {"StockChanged": ["pricing", "audit"]}}},
    )  # fmt: skip
    assert event_sync(facts) == Finding(
        "event-driven sync", "medium", "PASS",
        "subscribers per event type: StockChanged -> audit, pricing",
    )  # fmt: skip


def test_a_system_that_declares_no_event_type_says_so_and_passes() -> None:
    no_events = Finding(
        "event-driven sync", "medium", "PASS",
        "no events declared: no event type to subscribe to; agents share state only "
        "through the resources they read and write",
    )  # fmt: skip
    assert event_sync(Facts("shop", resources={"a": _resource(["x"], task=1)})) == no_events
    # An events actor that runs with no type declared is the same system.
    idle = Facts("shop", actors=frozenset({"events"}), described={"events": {"subscribers": {}}})
    assert event_sync(idle) == no_events


def test_declared_event_types_without_a_subscriber_fail() -> None:
    said = {"subscribers": {"StockChanged": ["pricing"], "PriceChanged": []}}
    facts = Facts("ns", actors=frozenset({"events"}), described={"events": said})
    assert event_sync(facts) == Finding(
        "event-driven sync", "medium", "FAIL",
        "event types with no subscriber: PriceChanged (subscribers per event type: "
        "PriceChanged -> nobody; StockChanged -> pricing)",
    )  # fmt: skip
    # A type a resource emits counts as declared, even if the events actor never heard of it.
    emitting = {**_resource(["x"], task=1), "emits": ["Restocked"]}
    heard = {"subscribers": {"StockChanged": ["pricing"]}}
    facts = Facts(
        "ns", actors=frozenset({"events"}), resources={"inventory": emitting},
        described={"events": heard},
    )  # fmt: skip
    assert event_sync(facts).status == "FAIL"
    assert event_sync(facts).evidence.startswith("event types with no subscriber: Restocked")


def test_declared_event_types_with_no_events_actor_fail() -> None:
    emitting = {**_resource(["x"], task=1), "emits": ["Restocked"]}
    facts = Facts("shop", resources={"inventory": emitting})
    assert event_sync(facts) == Finding(
        "event-driven sync", "medium", "FAIL",
        "event types declared (Restocked) but no events actor in namespace 'shop': "
        "nobody hears of them",
    )  # fmt: skip


def test_an_events_actor_that_lists_no_subscribers_is_a_warning() -> None:
    facts = Facts("ns", actors=frozenset({"events"}), described={"events": {}})
    assert event_sync(facts).status == "WARN"


def test_resources_open_to_anyone_or_silent_fail() -> None:
    open_to_all = Facts("ns", resources={"a": _resource(None, task=1), "b": _resource(["x"])})
    finding = resources_mapped(open_to_all)
    assert finding.status == "FAIL"
    assert "a <- ANYONE; b <- x" in finding.evidence
    silent = Facts("ns", resources={"a": {"error": "GetTimeoutError: no answer"}})
    assert resources_mapped(silent).evidence.endswith("a: GetTimeoutError: no answer")


def test_one_off_keys_are_a_warning_with_their_count() -> None:
    facts = Facts("ns", resources={"a": _resource(["x"], task=8, random=2), "b": _resource(["x"])})
    finding = idempotent_writes(facts)
    assert finding.status == "WARN"
    assert "2 of the last 10 were made outside a task" in finding.evidence
    assert idempotent_writes(Facts("ns")).evidence == "no write yet to check"


def test_a_check_that_raises_is_a_failure_and_the_summary_counts_it() -> None:
    def broken(facts: Facts) -> Finding:
        raise KeyError("writers")

    findings = run_checks(Facts("ns"), [broken, leases])
    assert findings[0] == Finding("broken", "high", "FAIL", "the check failed: KeyError('writers')")
    assert summary(findings) == {
        "PASS": 0, "FAIL": 2, "WARN": 0, "failed_by_severity": {"high": 2},
    }  # fmt: skip


def test_every_item_of_the_checklist_has_a_line() -> None:
    names = [f.name for f in run_checks(Facts("ns"))]
    assert len(names) == len(CHECKS) == len(set(names))


def test_subtasks_to_replicas_count_by_agent() -> None:
    def row(subtasks: int, running_s: int) -> dict[str, int]:
        return {"subtasks": subtasks, "no_schema": 0, "running_s": running_s}

    submissions = {
        "shop:0": row(1, 65),
        "shop:1": row(2, 90),
        "shop": row(1, 30),
        "intern:0": row(1, 5),
    }
    facts = Facts("ns", supervisor={"submissions": submissions, "samplers": {}})
    assert deadlines_and_schemas(facts) == Finding(
        "deadlines and schemas on every subtask", "critical", "PASS",
        "5 subtasks to 2 agents, each with a schema and a running deadline "
        "(longest: intern 5 s, shop 90 s)",
    )  # fmt: skip
