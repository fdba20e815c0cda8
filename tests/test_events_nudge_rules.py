"""The nudger's rules as a plain class, no Ray: at most one nudge in flight per
resource, a burst's newest number sent when the call in flight returns, a lost or
unanswered call does not silence later nudges, and nothing is sent for a while once the
dispatcher said no consumer group could be woken."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import ray
from ray._private import auto_init_hook

from actors._cli.bench.event_clients import Tick
from actors._events import nudge
from actors._events.emit import collecting, emit
from actors._events.nudge import Nudger


class FakeDispatcher:
    """Records each nudge; the test answers each call (or never does)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.answers: list[asyncio.Future[Any]] = []

    @property
    def nudge(self) -> FakeDispatcher:
        return self  # ``dispatcher.nudge.remote(...)``

    def remote(self, resource: str, seq: int) -> asyncio.Future[Any]:
        self.calls.append((resource, seq))
        self.answers.append(asyncio.get_running_loop().create_future())
        return self.answers[-1]


class Committing:
    """A resource's commits as its nudger sees them: each one emitted and moved the
    newest event number by one."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seq = 0
        self.reads = 0  # of the resource's newest event number
        self.dispatcher = FakeDispatcher()
        self.nudger = Nudger("stock", tmp_path, "no-ray")
        monkeypatch.setattr(nudge, "emitted_so_far", lambda resource: self.seq)
        monkeypatch.setattr(self.nudger, "_last_seq", self.read)
        monkeypatch.setattr(self.nudger, "_find", lambda: self.dispatcher)

    def read(self) -> int:
        self.reads += 1
        return self.seq

    def commit(self, count: int = 1) -> None:
        for _ in range(count):
            self.seq += 1
            self.nudger.committed()

    async def answer(self, value: Any) -> None:
        """Answer the newest call (``value`` an exception: the call failed)."""
        answer = self.dispatcher.answers[-1]
        if isinstance(value, BaseException):
            answer.set_exception(value)
        else:
            answer.set_result(value)
        await settle()


async def settle() -> None:
    """Let the nudger's tasks run to their next wait."""
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.timeout(10)
def test_a_burst_gives_one_call_then_one_with_its_newest_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[list[tuple[str, int]], int]:
        feed = Committing(tmp_path, monkeypatch)
        feed.commit()
        feed.commit(20)  # while the first call is in flight: coalesced
        await settle()
        assert (feed.dispatcher.calls, feed.reads) == ([("stock", 1)], 1)  # no read per commit
        await feed.answer(True)
        await feed.answer(True)
        feed.nudger.committed()  # no event since: nothing more
        await settle()
        return feed.dispatcher.calls, feed.reads

    assert asyncio.run(scenario()) == ([("stock", 1), ("stock", 21)], 2)


@pytest.mark.timeout(10)
def test_a_failed_call_does_not_silence_later_nudges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> list[tuple[str, int]]:
        feed = Committing(tmp_path, monkeypatch)
        feed.commit()
        await settle()
        feed.commit(2)
        await feed.answer(RuntimeError("the dispatcher died"))  # the burst still goes
        await feed.answer(True)
        feed.commit()
        await settle()
        return feed.dispatcher.calls

    assert asyncio.run(scenario()) == [("stock", 1), ("stock", 3), ("stock", 4)]


@pytest.mark.timeout(10)
def test_a_call_never_answered_counts_as_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nudge, "_ANSWER_S", 0.05)

    async def scenario() -> list[tuple[str, int]]:
        feed = Committing(tmp_path, monkeypatch)
        feed.commit()
        feed.commit()
        await settle()
        assert feed.dispatcher.calls == [("stock", 1)]
        while len(feed.dispatcher.calls) < 2:  # bounded by the test's timeout
            await asyncio.sleep(0.01)
        return feed.dispatcher.calls

    assert asyncio.run(scenario()) == [("stock", 1), ("stock", 2)]


@pytest.mark.timeout(10)
def test_no_group_to_wake_quiets_the_nudger_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nudge, "_QUIET_S", 0.2)

    async def scenario() -> list[tuple[str, int]]:
        feed = Committing(tmp_path, monkeypatch)
        feed.commit()
        await settle()
        await feed.answer(False)  # nobody to wake
        feed.commit(5)
        await settle()
        assert feed.dispatcher.calls == [("stock", 1)]
        await asyncio.sleep(0.25)  # past the quiet's known end
        feed.commit()
        await settle()
        return feed.dispatcher.calls

    assert asyncio.run(scenario()) == [("stock", 1), ("stock", 7)]


@pytest.mark.timeout(10)
def test_only_the_resource_s_own_events_nudge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two resources in one process (as plain objects in a test, or a process that holds
    more than one): a batch of one that emitted nothing sends no nudge, however many the
    other emitted."""
    looked_up: list[str] = []
    stock = Nudger("stock", tmp_path, "no-ray")
    monkeypatch.setattr(stock, "_find", lambda: looked_up.append("stock"))
    with collecting("prices", ()):
        emit(Tick(n=1, sent_at=0.0))
    stock.committed()
    assert looked_up == []
    with collecting("stock", ()):
        emit(Tick(n=1, sent_at=0.0))
    stock.committed()
    assert looked_up == ["stock"]


@pytest.mark.timeout(60)
def test_a_nudger_outside_ray_finds_no_dispatcher_and_starts_no_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resource run as a plain object (no Ray in the process, Ray's start on first use
    on, as in a user's process): looking for the dispatcher must not start a Ray."""
    assert not ray.is_initialized()  # the tests that take no Ray run before the session's
    monkeypatch.setattr(auto_init_hook, "enable_auto_connect", True)
    try:
        assert Nudger("stock", tmp_path, "")._find() is None
        assert not ray.is_initialized()
    finally:
        if ray.is_initialized():
            ray.shutdown()
