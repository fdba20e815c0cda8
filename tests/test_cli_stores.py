"""The command line without Ray: what ``agentcast trace`` and ``log`` assemble from the
durable stores and that every query they make is served by an index; where output goes."""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors._agent.host import AgentHost
from actors._budget.host import BudgetHost
from actors._budget.store import BudgetStore
from actors._cli import stores
from actors._cli.output import Progress, document_only, emit
from actors._cli.trace import collect, tree
from actors._resource.host import ResourceHost
from actors._resource.store import LogRecord, Rejection, ResourceLog
from actors._supervisor.host import SupervisorHost
from actors._supervisor.store import SubtaskStore
from runtime import AttemptRecord, encode

TRACE = "a" * 32
BIG_TABLES = {"log", "rejected", "subtasks", "handoffs", "events"}


def _supervisor(root: Path) -> None:
    store = SubtaskStore(root)
    store.stage_new({
        "id": "t-1", "trace_id": TRACE, "parent": None, "target": "workers", "state": "queued",
        "spec": b"", "created": 100.0, "message": json.dumps({"type": "Job", "data": {"k": 1}}),
    })  # fmt: skip
    attempt = AttemptRecord(
        attempt_id="t-1:1", number=1, replica="workers:0", outcome="succeeded", at=103.0
    )
    store.stage_finish(
        {"id": "t-1", "state": "done", "reason": None, "detail": "", "output": b"",
         "attempts": (attempt,), "at": 104.0,
         "output_json": json.dumps({"type": "Done", "data": {"k": 1}})},
        {"subtask_id": "t-1", "status": "done", "output_ref": None, "stage": None,
         "next_stage": None, "trace_id": TRACE, "at": 104.0},
    )  # fmt: skip
    store.stage_event(103.5, "late_result", "t-1", {"n": 1})
    store.commit_now()
    store.close()


def _resource(root: Path) -> None:
    log = ResourceLog(root, "inventory")
    incarnation = log.open_incarnation().incarnation
    at = "1970-01-01T00:01:41+00:00"  # 101 s
    record = LogRecord(
        1, "restock", encode([["A", 2], {}]), encode(2), "workers", 1, incarnation, "t-1:0",
        TRACE, at, encode([["A", False, None, True, 2]]),
    )  # fmt: skip
    refused = Rejection(
        "1970-01-01T00:01:42+00:00", "restock", "intern", 1, "t-1:1", TRACE, "unauthorized", ""
    )
    log.commit(incarnation, [record], [refused])
    log.close()


def _budget(root: Path) -> None:
    store = BudgetStore(root)
    ctx = {"run": TRACE, "agent": "askers", "model": "scripted", "tool": None}
    store.append([
        (100.5, "grant", {"id": "g1", "ctx": ctx, "amounts": {"calls": 8.0}}),
        (100.6, "grant", {"id": "g2", "ctx": {**ctx, "run": "b" * 32}, "amounts": {"calls": 8.0}}),
        (105.0, "settle", {"id": "g1", "used": {"calls": 1.0, "completion_tokens": 3.0}}),
    ])  # fmt: skip
    store.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _supervisor(tmp_path)
    _resource(tmp_path)
    _budget(tmp_path)
    return tmp_path


def test_trace_assembles_every_store_in_time_order(root: Path) -> None:
    found = collect(root, TRACE)
    assert found["subtasks"] == {
        "t-1": {"id": "t-1", "parent": None, "to": "workers", "state": "done"}
    }
    assert [(i["kind"], i["subtask"]) for i in found["timeline"]] == [
        ("submitted", "t-1"), ("budget grant", None), ("write", "t-1"), ("refused", "t-1"),
        ("attempt", "t-1"), ("event late_result", "t-1"), ("finished", "t-1"),
        ("handoff", "t-1"), ("budget settle", None),
    ]  # fmt: skip
    assert tree(found) == [
        f"trace {TRACE}",
        "├─ subtask t-1 to workers (done)",
        '│  ├─ 00:01:40.000 submitted to workers: Job {"k": 1}',
        '│  ├─ 00:01:41.000 write inventory v1 workers#1 restock("A", 2) -> 2  [A: (none) -> 2]',
        "│  ├─ 00:01:42.000 refused inventory restock by intern: unauthorized",
        "│  ├─ 00:01:43.000 attempt 1 on workers:0: succeeded",
        '│  ├─ 00:01:43.500 event late_result {"detail": {"n": 1}}',
        '│  ├─ 00:01:44.000 done: {"k": 1}',
        "│  └─ 00:01:44.000 handoff done, stage - -> -",
        "├─ 00:01:40.500 allowance granted: askers on scripted: calls 8",
        "└─ 00:01:45.000 model use settled: askers on scripted: calls 1, completion_tokens 3",
    ]


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every statement the command line's read-only connections run, with their file."""
    seen: list[tuple[str, str]] = []
    real: Callable[..., sqlite3.Connection] = sqlite3.connect

    def connect(target: str, **kwargs: Any) -> sqlite3.Connection:
        conn = real(target, **kwargs)
        path = target.removeprefix("file:").split("?")[0]
        conn.set_trace_callback(lambda sql: seen.append((path, sql)))
        return conn

    monkeypatch.setattr(stores.sqlite3, "connect", connect)
    return seen


def test_every_query_of_trace_and_log_uses_an_index(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _recorded(monkeypatch)
    collect(root, TRACE)
    with stores.read_only(root / "resources" / "inventory.sqlite") as conn:
        stores.log_records(conn, after=0, upto=10, writer="workers", op="restock")
        stores.log_records(conn, trace=TRACE)
    monkeypatch.undo()
    queries = [(p, q) for p, q in seen if q.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 11  # 3 supervisor, 2 resource, 2 events, 2 budget, 2 log
    for path, query in queries:
        with sqlite3.connect(path) as probe:
            plan = [row[3] for row in probe.execute(f"EXPLAIN QUERY PLAN {query}")]
        scans = [p for p in plan if p.startswith("SCAN") and p.split()[1] in BIG_TABLES]
        assert scans == [], (query, plan)


@pytest.mark.parametrize("host", [ResourceHost, AgentHost, SupervisorHost, BudgetHost])
def test_a_host_whose_init_failed_still_has_a_repr(host: type) -> None:
    # Ray calls __repr__ on an actor whose __init__ raised, to report the error: a repr
    # that raised there turned the real error into "an unexpected internal error".
    shown = repr(host.__new__(host))
    assert shown.split("(")[0] in ("Resource", "Agent", "Supervisor", "Budget")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_says_nothing_when_piped() -> None:
    terminal, piped = _Terminal(), io.StringIO()
    for stream in (terminal, piped):
        line = Progress(stream)
        line.show("starting Ray")
        line.show("row 1")
        line.done()
    assert piped.getvalue() == ""
    shown = terminal.getvalue().split("\r")
    assert [s.split("] ", 1)[-1].rstrip() for s in shown[1:3]] == ["starting Ray", "row 1"]
    assert shown[-1] == ""  # cleared: the result prints on a clean line


def test_the_progress_bar_fills_on_a_terminal_and_says_nothing_when_piped() -> None:
    terminal, piped = _Terminal(), io.StringIO()
    for stream in (terminal, piped):
        line = Progress(stream)
        for done in (0, 1, 4, 9):  # 9 of 4: a bar never overflows
            line.bar(done, 4, "bench resource: durable, 8 clients")
        line.bar(3, 0, "nothing to count")  # no total: full, not a division by zero
        line.done()
    assert piped.getvalue() == ""
    bars = [s.split("] ", 1)[-1].rstrip() for s in terminal.getvalue().split("\r")[1:6]]
    assert bars == [
        "[........................]   0% bench resource: durable, 8 clients",
        "[######..................]  25% bench resource: durable, 8 clients",
        "[########################] 100% bench resource: durable, 8 clients",
        "[########################] 100% bench resource: durable, 8 clients",
        "[########################] 100% nothing to count",
    ]


def test_document_only_keeps_stdout_for_the_document(capfd: pytest.CaptureFixture[str]) -> None:
    with document_only():
        print("a raylet warning", flush=True)
        os.write(1, b"from C++\n")
        emit('{"one": 1}')
    out, err = capfd.readouterr()
    assert (out, err) == ('{"one": 1}\n', "a raylet warning\nfrom C++\n")
