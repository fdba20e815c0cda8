"""Nothing the budget actor holds grows without bound (issue 10, finding 5, budget part):
snapshots make a restart replay a bounded number of events; closed grants, quiet runs
and empty retry windows are forgotten; metric labels carry no run id."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from actors._budget import metrics
from actors.lowlevel import BudgetCore, SpendContext
from policies import (
    BudgetLimit,
    BudgetPolicy,
    BudgetRetention,
    Dimension,
    Durability,
    Scope,
    ScopeKind,
)
from runtime.testing import FakeClock


def _policy(**retention: Any) -> BudgetPolicy:
    limits = (
        BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.CALLS, cap=1e9),
        BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.TOKENS, cap=1e12),
    )
    return BudgetPolicy(
        limits=limits, retention=BudgetRetention(**retention), durability=Durability.PROCESS,
        lease_ttl=timedelta(seconds=1), reservation_ttl=timedelta(seconds=1),
    )  # fmt: skip


def _spend(core: BudgetCore, run: str, n: int, used: float = 3.0) -> None:
    ctx = SpendContext(run=run, agent="a", model="m")
    core.reserve(grant_id=f"{run}:{n}", context=ctx, need={"calls": 1, "tokens": 10})
    core.settle(grant_id=f"{run}:{n}", context=ctx, used={"calls": 1, "tokens": used})
    core.commit()


def test_a_restart_replays_only_the_events_after_the_last_snapshot(tmp_path: Path) -> None:
    clock, policy = FakeClock(), _policy(snapshot_every=100)
    core = BudgetCore(tmp_path, policy, clock=clock)
    for i in range(1000):
        _spend(core, f"run{i % 7}", i)
    ctx = SpendContext(run="run0", agent="a", model="m")
    core.reserve(grant_id="open", context=ctx, need={"calls": 1, "tokens": 10})
    core.commit()
    core.close()
    again = BudgetCore(tmp_path, policy, clock=clock)
    assert again.replayed < 100
    assert again.book.ledgers == core.book.ledgers
    assert again.book.spent == core.book.spent
    assert list(again.book.grants) == ["open"]
    assert again.incarnation == core.incarnation + 1


def test_restart_time_does_not_grow_with_history(tmp_path: Path) -> None:
    def restart_seconds(root: Path, events: int) -> float:
        clock = FakeClock()
        policy = _policy(
            snapshot_every=500, log=timedelta(seconds=1), closed_grants=timedelta(seconds=2)
        )
        core = BudgetCore(root, policy, clock=clock)
        for i in range(events // 2):
            _spend(core, f"run{i % 20}", i)
            clock.advance(timedelta(seconds=0.1))
        core.close()
        started = time.perf_counter()
        BudgetCore(root, policy, clock=clock).close()
        return time.perf_counter() - started

    small = min(restart_seconds(tmp_path / f"s{i}", 1_000) for i in range(3))
    large = min(restart_seconds(tmp_path / f"l{i}", 10_000) for i in range(2))
    assert large < small * 3 + 0.02  # ten times the history, about the same restart


def test_the_log_keeps_events_for_its_retention_after_a_snapshot(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = _policy(snapshot_every=10, log=timedelta(minutes=5))
    core = BudgetCore(tmp_path, policy, clock=clock)
    for i in range(20):
        _spend(core, "r", i)
    first = core.read_events()[0].seq
    assert first == 1  # within the retention: kept for readers
    clock.advance(timedelta(minutes=6))
    for i in range(20, 40):
        _spend(core, "r", i)
    kept = core.read_events(limit=10_000)
    assert kept[0].seq > 1 and all(e.at >= clock.now().timestamp() - 300 for e in kept[:-1])
    assert [e.seq for e in kept] == list(range(kept[0].seq, kept[-1].seq + 1))


def test_closed_grants_and_quiet_runs_are_forgotten(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = _policy(closed_grants=timedelta(hours=1), runs=timedelta(days=1))
    core = BudgetCore(tmp_path, policy, clock=clock)
    clock.advance(timedelta(minutes=1))  # the first prune is behind it
    for i in range(50):
        _spend(core, f"old{i}", i)
    core.record_attempts("old0", 5)
    assert len(core.book.closed) == 50
    clock.advance(timedelta(hours=2))
    _spend(core, "new", 0)
    core.prune()
    assert list(core.book.closed) == ["new:0"]
    assert len(core.book.spent) == 51  # runs are kept for a day
    assert core.retries.runs == {"new": core.retries.runs["new"]}  # windows of 10 s
    clock.advance(timedelta(days=1, minutes=1))
    core.prune()
    assert core.book.spent == {} and core.book.closed == {}
    assert [k for k in core.book.ledgers if k[0] == "run"] == []
    cluster = core.book.ledger(("cluster", "*", "*", "tokens"))
    assert cluster.committed == 51 * 3.0  # what counts across runs stays


def test_a_quiet_run_with_an_open_grant_is_kept(tmp_path: Path) -> None:
    clock = FakeClock()
    retention = BudgetRetention(runs=timedelta(hours=1), closed_grants=timedelta(hours=3))
    policy = BudgetPolicy(retention=retention, reservation_ttl=timedelta(hours=2))
    core = BudgetCore(tmp_path, policy, clock=clock)
    ctx = SpendContext(run="long", agent="a", model="m")
    core.reserve(grant_id="g", context=ctx, need={"calls": 1})
    clock.advance(timedelta(hours=1, minutes=30))
    core.prune()
    assert "long" in core.book.runs_seen
    core.settle(grant_id="g", context=ctx, used={"calls": 1})
    clock.advance(timedelta(hours=1, minutes=1))
    core.prune()
    assert core.book.runs_seen == {} and core.book.spent == {}


def test_metric_labels_carry_no_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, tuple[str, ...], dict[str, str]]] = []

    class Recorder:
        def __init__(self, name: str, _description: str, labels: tuple[str, ...]) -> None:
            self.name, self.labels = name, labels

        def inc(self, _value: float = 1.0, tags: dict[str, str] | None = None) -> None:
            seen.append((self.name, self.labels, tags or {}))

        set = inc

    monkeypatch.setattr(metrics, "counter", Recorder)
    monkeypatch.setattr(metrics, "gauge", Recorder)
    run = "4bf92f3577b34da6a3ce929d0e0e4736"
    ctx = SpendContext(run=run, agent="a", model="m")
    metrics.record_spend(ctx, {"prompt_tokens": 3, "completion_tokens": 2, "calls": 1, "cost": 1})
    metrics.record_retry("ok")
    core = BudgetCore.__new__(BudgetCore)
    from actors._budget.book import LedgerBook
    from policies import Ledger

    core.book = LedgerBook(
        limits={("run", "*", "calls"): 5.0, ("run", run, "calls"): 5.0},
        ledgers={
            ("run", "*", run, "calls"): Ledger(cap=5, committed=1),
            ("run", "*", "other", "calls"): Ledger(cap=5, committed=3),
            ("run", run, run, "calls"): Ledger(cap=5, outstanding=2),
        },
    )
    metrics.record_books(core)
    assert seen
    for name, labels, tags in seen:
        assert not {"run", "trace", "trace_id"} & set(labels), name
        assert run not in tags.values(), name
    remaining = [t for n, _, t in seen if n == "budget_remaining"]
    assert remaining == [{"scope": "run", "key": "*", "dimension": "calls"}]
