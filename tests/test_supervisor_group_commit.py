"""The supervisor store's group commits: a commit returns only once its statements are in
the file, groups are applied in the order staged, many commits waiting together share one
transaction, a failed group fails all its waiters and leaves the store usable; and on a real
Ray, what
the supervisor acknowledged (a submit stored, an outcome streamed back) survives a
SIGKILL of its process."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import ray
from supervised_agents import Done, Job, Worker
from test_storage import fail_commits_on
from waiting import wait_until

from actors import System
from actors._supervisor.handle import make_spec
from actors._supervisor.store import SubtaskStore
from runtime import Envelope, StorageError


def _row(i: int) -> dict[str, object]:
    return {
        "id": f"s{i}", "trace_id": "t" * 32, "parent": None, "target": "workers",
        "state": "queued", "spec": b"spec", "created": float(i),
    }  # fmt: skip


def _probe(store: SubtaskStore) -> sqlite3.Connection:
    """A connection of another process's kind: sees only what is committed."""
    return sqlite3.connect(store.path)


@pytest.mark.timeout(60)
def test_a_commit_returns_once_its_rows_are_in_the_file_and_commits_waiting_together_share_one(
    tmp_path: Path,
) -> None:
    store = SubtaskStore(tmp_path)
    begins: list[str] = []
    store._conn.set_trace_callback(
        lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None
    )
    probe = _probe(store)

    async def submit(i: int) -> bool:
        store.stage_new(_row(i))
        await store.commit()
        return (
            probe.execute("SELECT 1 FROM subtasks WHERE id = ?", (f"s{i}",)).fetchone() is not None
        )

    async def body() -> list[bool]:
        return await asyncio.gather(*(submit(i) for i in range(100)))

    assert asyncio.run(body()) == [True] * 100
    assert len(begins) == 1  # 100 commits in one loop turn: one transaction
    store.close()


@pytest.mark.timeout(60)
def test_groups_are_applied_in_the_order_staged_while_one_is_being_written(
    tmp_path: Path,
) -> None:
    store = SubtaskStore(tmp_path)

    async def body() -> None:
        waits = []
        for i in range(50):  # each id inserted, then moved on, by commits that overlap
            store.stage_new(_row(i))
            waits.append(asyncio.ensure_future(store.commit()))
            await asyncio.sleep(0)
            store.stage_progress(f"s{i}", "running", f"workers:{i}", [])
            waits.append(asyncio.ensure_future(store.commit()))
        await asyncio.gather(*waits)

    asyncio.run(body())
    rows = _probe(store).execute("SELECT id, state, target FROM subtasks ORDER BY created")
    assert rows.fetchall() == [(f"s{i}", "running", f"workers:{i}") for i in range(50)]
    store.close()


@pytest.mark.timeout(60)
def test_a_failed_group_fails_every_waiter_and_the_next_group_commits(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    fail_commits_on(store._conn, "INSERT ON events")

    async def event(kind: str) -> None:
        store.stage_event(1.0, kind, "agent", {})
        await store.commit()

    async def body() -> list[BaseException | None]:
        return await asyncio.gather(*(event(f"k{i}") for i in range(5)), return_exceptions=True)

    failed = asyncio.run(body())
    assert [type(e) for e in failed] == [StorageError] * 5
    assert store.events() == [] and not store._conn.in_transaction
    store._conn.execute("DROP TRIGGER fail_at_commit")
    asyncio.run(event("after"))
    assert [e["kind"] for e in store.events()] == ["after"]
    store.close()


def _spec(system: System, job: Job, task_id: str) -> object:
    return make_spec(
        job, to="held", expect=Done, deadline=None, retry=None, on_failure=None,
        envelope=Envelope(trace_id=system.trace_id, task_id=task_id),
    )  # fmt: skip


def _sigkill_supervisor(system: System) -> None:
    pid = ray.get(system.supervisor.actor.stats.remote(), timeout=60)["pid"]
    os.kill(pid, signal.SIGKILL)


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_what_the_supervisor_acknowledged_survives_a_sigkill(
    system: System, tmp_path: Path
) -> None:
    system.agent(Worker, name="workers", replicas=2)
    system.agent(Worker, name="held", replicas=1)  # one runs, the others queue behind it
    actor = system.supervisor.actor
    gate = tmp_path / "gate"
    held = [
        _spec(system, Job(key=f"g{i}", mode="gate", gate=str(gate)), f"g-{i}") for i in range(8)
    ]
    ray.get([actor.submit.remote(spec) for spec in held], timeout=120)  # each acknowledged
    handles = system.supervisor.submit_many(
        [Job(key=f"k{i}") for i in range(400)], to="workers", expect=Done
    )
    told = {h.id: h.result(timeout=120) for h in handles[:60]}  # outcomes the caller saw
    _sigkill_supervisor(system)
    gate.touch()
    outputs = [h.result(timeout=240) for h in handles]  # the stream broke: joined by id
    assert sorted(o.key for o in outputs) == sorted(f"k{i}" for i in range(400))  # type: ignore[attr-defined]
    for subtask_id, output in told.items():  # stored before it was told: the same outcome
        assert ray.get(actor.wait.remote(subtask_id), timeout=60).output == output
    redriven = {e["subject"] for e in system.supervisor.events("redriven")}
    assert not redriven & set(told)  # a told outcome is never driven again
    for spec in held:  # every acknowledged submit was stored, and is driven to its end
        outcome = ray.get(actor.wait.remote(spec.subtask_id), timeout=180)  # type: ignore[attr-defined]
        assert outcome.output.key == spec.message.key  # type: ignore[attr-defined]
    wait_until(
        lambda: len(system.supervisor.handoffs(system.trace_id)) == 408, "all handed off", 120
    )
    ids = [h["subtask_id"] for h in system.supervisor.handoffs(system.trace_id)]
    assert len(ids) == len(set(ids)) == 408  # each ended once
