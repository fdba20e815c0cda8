"""The supervisor's store: what is done with is pruned after its window, what is young and
what is open stays, and every query the command line makes is served by an index."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from test_supervisor_core import GOOD, FakeAgents, make_core, spec, started
from waiting import settle

from actors._supervisor.store import SubtaskStore
from policies import Escalate, SupervisorRetention
from runtime.testing import FakeClock

RETENTION = SupervisorRetention(
    subtasks=timedelta(hours=1), handoffs=timedelta(hours=1), events=timedelta(hours=2),
    escalations=timedelta(hours=1), prune_every=timedelta(minutes=1), prune_batch=100,
)  # fmt: skip
BIG_TABLES = ("subtasks", "handoffs", "events", "escalations")
# A partial index of the unfinished subtasks only: scanning it reads live work, not history.
LIVE_ONLY = "USING INDEX subtasks_open"


def minutes(clock: FakeClock, n: float) -> None:
    clock.advance(timedelta(minutes=n).total_seconds())


def test_finished_subtasks_handoffs_events_and_answered_escalations_go_after_their_windows(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        agents, clock = FakeAgents({"r": 1}), FakeClock()
        core = make_core(tmp_path, agents, clock, retention=RETENTION)
        old = spec()
        await started(core, old)
        agents.calls[0].future.set_result(GOOD)
        asked = spec(retry=None, on_failure=Escalate())
        await started(core, asked)
        agents.calls[1].future.set_exception(ValueError("no"))
        waiting = spec(retry=None, on_failure=Escalate())
        await started(core, waiting)
        agents.calls[2].future.set_exception(ValueError("no"))
        await settle()
        assert await core.answer(asked.subtask_id, None, "not worth it") == "failed"
        core.store.stage_event(clock.now().timestamp(), "kill", "r", {})
        await core.store.commit()
        minutes(clock, 30)
        young = spec()
        await started(core, young)
        agents.calls[3].future.set_result(GOOD)
        await settle()
        core.tick()
        assert core.store.counts() == {"done": 2, "failed": 1, "escalated": 1}

        minutes(clock, 45)  # the first subtasks are 75 minutes old, the young one 45
        core.tick()
        assert core.store.subtask(old.subtask_id) is None
        assert core.store.subtask(asked.subtask_id) is None
        assert core.store.subtask(young.subtask_id) is not None
        assert core.store.counts() == {"done": 1, "escalated": 1}
        assert [h["subtask_id"] for h in core.store.handoffs()] == [young.subtask_id]
        assert [e["subtask_id"] for e in core.store.escalations(None)] == [waiting.subtask_id]
        assert [e["kind"] for e in core.store.events()] == ["kill"]  # its window is 2 hours
        assert (await core.wait(young.subtask_id)).output == GOOD

        minutes(clock, 50)
        core.tick()
        assert core.store.events() == []
        assert core.store.escalations() != []  # still open: never pruned
        again = asyncio.ensure_future(core.run(old))  # an id past its window is new
        await settle()
        agents.calls[-1].future.set_result(GOOD)
        assert (await again).output == GOOD

    asyncio.run(body())


def test_a_pass_deletes_at_most_prune_batch_and_the_next_tick_goes_on(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SubtaskStore(tmp_path)
    for i in range(7):
        store.stage_event(clock.now().timestamp(), "stall", f"s{i}", {})
    store.commit_now()
    minutes(clock, 200)
    small = SupervisorRetention(events=timedelta(hours=1), prune_batch=3)
    now = clock.now().timestamp()
    assert store.prune(now, small) is True
    assert len(store.events()) == 4
    assert store.prune(now, small) is True
    assert store.prune(now, small) is False
    assert store.events() == []


def test_counts_follow_every_change_of_state(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    for i in range(4):
        store.stage_new({
            "id": f"s{i}", "trace_id": "t", "parent": None, "target": "r", "state": "queued",
            "spec": b"", "created": 1.0,
        })  # fmt: skip
    store.stage_new(
        {
            "id": "s0",
            "trace_id": "t",
            "parent": None,
            "target": "r",
            "state": "queued",
            "spec": b"",
            "created": 1.0,
        }
    )  # fmt: skip  (a re-submitted id: ignored, not counted)
    store.stage_progress("s1", "running", "r", [])
    store.stage_finish(_finished("s2", "done"), _handoff("s2"))
    store.commit_now()
    assert store.counts() == {"queued": 2, "running": 1, "done": 1}
    grouped = store._rows("SELECT state, COUNT(*) FROM subtasks GROUP BY state")
    assert store.counts() == {row[0]: row[1] for row in grouped}


def _finished(sid: str, state: str) -> dict[str, Any]:
    return {
        "id": sid, "state": state, "reason": None, "detail": "", "output": None,
        "attempts": (), "at": 2.0,
    }  # fmt: skip


def _handoff(sid: str) -> dict[str, Any]:
    return {
        "subtask_id": sid, "status": "done", "output_ref": None, "stage": None,
        "next_stage": None, "trace_id": "t", "at": 2.0,
    }  # fmt: skip


def test_every_query_of_the_command_line_uses_an_index(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    store.handoffs("0" * 32)
    store.events("kill")
    store.escalations("open")
    store.open_escalations()
    store.counts()
    store.subtask("s1")
    store.unfinished()
    store.prune(1e9, SupervisorRetention())
    store._conn.set_trace_callback(None)
    probe = sqlite3.connect(store.path)
    queries = [q for q in seen if q.lstrip().upper().startswith(("SELECT", "DELETE"))]
    assert len(queries) == 11
    for query in queries:
        plan = [row[3] for row in probe.execute(f"EXPLAIN QUERY PLAN {query}")]
        scans = [
            p for p in plan
            if p.startswith("SCAN") and p.split()[1] in BIG_TABLES and LIVE_ONLY not in p
        ]  # fmt: skip
        assert scans == [], (query, plan)


def test_a_store_from_before_retention_counts_its_rows_and_dates_its_answers(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "supervisor.sqlite")
    conn.executescript(
        "CREATE TABLE subtasks(id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent TEXT,"
        " target TEXT NOT NULL, state TEXT NOT NULL, reason TEXT, detail TEXT,"
        " spec BLOB NOT NULL, output BLOB, attempts TEXT NOT NULL, created REAL NOT NULL,"
        " finished REAL);"
        "CREATE TABLE escalations(subtask_id TEXT PRIMARY KEY, handler TEXT NOT NULL,"
        " reason TEXT NOT NULL, detail TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO subtasks VALUES('a', 't', NULL, 'r', 'done', NULL, '', x'', NULL, '[]', 1, 2);"
        "INSERT INTO subtasks VALUES('b', 't', NULL, 'r', 'queued', NULL, '', x'', NULL, '[]', 1,"
        " NULL);"
        "INSERT INTO escalations VALUES('c', 'h', 'x', '', 'answered', 1);"
        "INSERT INTO escalations VALUES('d', 'h', 'x', '', 'open', 1);"
    )
    conn.close()
    store = SubtaskStore(tmp_path)
    assert store.counts() == {"done": 1, "queued": 1}
    closed = store._rows("SELECT subtask_id, closed IS NOT NULL FROM escalations ORDER BY 1")
    assert [tuple(row) for row in closed] == [("c", 1), ("d", 0)]


def test_the_arenas_are_trimmed_once_a_pruning_pass_is_complete(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Not at each tick of a pass that left more to delete: once, when it is done, and
    then once per ``prune_every``."""
    trims: list[float] = []
    clock = FakeClock()
    monkeypatch.setattr("actors._supervisor.core.trim_malloc", lambda: trims.append(clock.now()))
    core = make_core(tmp_path, FakeAgents({"r": 1}), clock, retention=RETENTION)
    for i in range(250):  # three passes of prune_batch=100
        core.store.stage_event(clock.now().timestamp(), "stall", f"s{i}", {})
    core.store.commit_now()
    minutes(clock, 200)
    core.tick()  # a first pass at once (a new incarnation), 100 deleted: more to do
    assert trims == []
    core.tick()
    core.tick()  # the third pass deletes the last 50
    assert (trims, core.store.events()) == ([clock.now()], [])
    core.tick()  # no pass before prune_every
    minutes(clock, 1)
    core.tick()
    assert len(trims) == 2
