"""What the supervisor store writes per subtask, and a deadline due while a subtask is
being stored.

A subtask's row is written at most once per state change: the attempt number staged at
submit rides in the row's ``INSERT``, the replica staged at dispatch replaces it when both
share a group, and a subtask that ends in the group of its dispatch writes no ``running``.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_supervisor_core import GOOD, FakeAgents, make_core, spec
from waiting import settle

from actors._supervisor.store import Staged, SubtaskStore
from actors.lowlevel import SupervisorCore
from policies import Deadlines, RetryPolicy
from runtime import AttemptRecord, storage_root
from runtime.testing import FakeClock


def _row(i: int) -> dict[str, object]:
    return {
        "id": f"s{i}", "trace_id": "t" * 32, "parent": None, "target": "workers",
        "state": "queued", "spec": b"spec", "created": float(i),
    }  # fmt: skip


def _written(store: SubtaskStore) -> list[str]:
    """The statements of every group the store writes from now on, in order."""
    seen: list[str] = []
    real = store._write_group

    def counting(staged: Staged) -> None:
        seen.extend(_label(sql) for sql, _ in staged)
        real(staged)

    store._write_group = counting  # type: ignore[method-assign]
    return seen


def _label(sql: str) -> str:
    """``insert <table>`` or ``update <table>.<first column set>``."""
    if (found := re.match(r"INSERT .*?INTO (\w+)", sql)) is not None:
        return f"insert {found[1]}"
    found = re.match(r"UPDATE (\w+) SET (\w+)", sql)
    return sql if found is None else f"update {found[1]}.{found[2]}"


def _running(store: SubtaskStore, subtask_id: str) -> Any:
    row = store.subtask(subtask_id)
    return None if row["running"] is None else json.loads(row["running"])


@pytest.mark.timeout(60)
def test_the_attempt_staged_with_a_new_row_rides_in_its_insert(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    seen = _written(store)

    async def body() -> None:
        store.stage_new(_row(1))
        store.stage_running("s1", {"number": 1, "replica": None, "span_id": "a"})
        await store.commit()

    asyncio.run(body())
    assert seen == ["insert subtasks"]
    assert _running(store, "s1") == {"number": 1, "replica": None, "span_id": "a"}
    store.close()


@pytest.mark.timeout(60)
def test_only_the_newest_attempt_of_a_group_is_written_and_none_once_finished(
    tmp_path: Path,
) -> None:
    store = SubtaskStore(tmp_path)
    for i in (1, 2):
        store.stage_new(_row(i))
    store.commit_now()
    seen = _written(store)

    async def body() -> None:
        store.stage_running("s1", {"number": 1, "replica": None, "span_id": "a"})
        store.stage_running("s1", {"number": 1, "replica": "w:0", "span_id": "a"})
        store.stage_running("s2", {"number": 1, "replica": "w:1", "span_id": "b"})
        record = AttemptRecord(
            attempt_id="s2:1", number=1, replica="w:1", outcome="succeeded", detail="",
            error_type=None, at=1.0,
        )  # fmt: skip
        finish = {"id": "s2", "state": "done", "reason": None, "detail": "", "output": b"o",
                  "attempts": (record,), "at": 2.0}  # fmt: skip
        store.stage_finish(finish, {
            "subtask_id": "s2", "status": "done", "output_ref": None, "stage": None,
            "next_stage": None, "trace_id": "t" * 32, "at": 2.0,
        })  # fmt: skip
        await store.commit()

    asyncio.run(body())
    assert seen == [
        "update subtasks.state",  # s2 ends: no running of its own
        "insert handoffs",
        "update subtasks.running",  # s1: the newest of the two staged
    ]
    assert _running(store, "s1") == {"number": 1, "replica": "w:0", "span_id": "a"}
    assert store.subtask("s2")["state"] == "done"
    store.close()


@pytest.mark.timeout(60)
def test_a_subtask_costs_four_row_writes_and_one_key_lookup(tmp_path: Path) -> None:
    """Submitted, started, ended: its row inserted (with its attempt), its replica, its
    end and its handoff; the look-up of a known id reads the key only."""

    async def body() -> None:
        agents = FakeAgents({"r": 1})
        core = make_core(storage_root(tmp_path), agents, FakeClock())
        seen = _written(core.store)
        reads: list[str] = []
        core.store._conn.set_trace_callback(
            lambda sql: reads.append(sql) if sql.startswith("SELECT") else None
        )
        task = asyncio.ensure_future(core.run(spec()))
        await settle()
        agents.calls[0].future.set_result(GOOD)
        await settle()
        assert task.result().output == GOOD
        assert seen == [
            "insert subtasks",  # with its first attempt's number
            "update subtasks.running",  # its replica, committed as it is sent
            "update subtasks.state",  # its end
            "insert handoffs",
        ]
        assert [r.split(" WHERE ")[0] for r in reads] == ["SELECT 1 FROM subtasks"]

    asyncio.run(body())


@pytest.mark.timeout(60)
def test_a_queue_deadline_due_while_the_subtask_is_stored_fails_it_at_that_tick(
    tmp_path: Path,
) -> None:
    """The fake-clock hang: the test saw ``queued`` and moved the clock while the submit's
    commit was still to come; the deadline was armed only after, and no later tick came."""
    store = SubtaskStore(tmp_path)
    real_commit = store.commit

    async def body() -> None:
        clock = FakeClock()
        agents = FakeAgents({"r": 1})
        core = SupervisorCore(store, agents, clock=clock)
        busy = asyncio.ensure_future(core.run(spec(retry=RetryPolicy(max_attempts=1))))
        await settle()
        assert len(agents.calls) == 1  # the only replica is taken
        gate = asyncio.Event()

        async def held_commit() -> None:  # a slow disk: the commit comes once let through
            await gate.wait()
            await real_commit()

        store.commit = held_commit  # type: ignore[method-assign]
        queued = Deadlines(queued=timedelta(seconds=1))
        late = asyncio.ensure_future(
            core.run(spec(deadline=queued, retry=RetryPolicy(max_attempts=1)))
        )
        await settle()  # being stored
        assert [s.state for s in map(core.status_of, core.live)].count("queued") == 1
        clock.advance(1.0)
        core.tick()
        gate.set()
        outcome = await asyncio.wait_for(late, 30)
        assert outcome.error is not None and outcome.error.reason == "queue_timeout"
        agents.calls[0].future.set_result(GOOD)
        assert (await asyncio.wait_for(busy, 30)).output == GOOD
        assert len(agents.calls) == 1  # the late one never started

    asyncio.run(body())
    store.close()
