"""``agentcast bench supervisor --quick``: the report's shape, never its speed."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.supervisor import QUICK_SIZES, REPLICAS
from actors._cli.bench.supervisor_memory import QUICK_HELD


@pytest.mark.quick_bench("supervisor")  # slow, run in the background (tests/bench_runs.py)
def test_quick_run_reports_both_ways_and_memory_at_a_controlled_count(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    rows = report["throughput"]
    assert [(r["n"], r["agents"]) for r in rows] == [(n, a) for a in REPLICAS for n in QUICK_SIZES]
    for row in rows:
        assert row["direct_per_s"] > 0 and row["supervised_per_s"] > 0 and row["batched_per_s"] > 0
        calls = row["calls_per_subtask"]
        assert calls["supervised"] == {"caller": 1.0, "agent": 1.0}
        assert calls["batched"]["caller"] == round(1 / row["n"], 6)
        assert 0 < calls["batched"]["streamed_items"] <= 1  # at most one item per subtask
    memory = report["memory"]
    assert set(memory) == {"batched", "alone"}
    for way in memory.values():
        assert way["tracked_at_sample"] == QUICK_HELD  # sampled with exactly that many held
        assert way["live_after"] == 0
    cpu = report["cpu_us_per_subtask"]  # Linux: every way, every process on its path
    assert set(cpu) == {"direct", "supervised", "batched"}
    assert set(cpu["direct"]) == {"caller", "supervisor", "agent", "total"}
    for row in cpu.values():
        assert row["total"] == row["caller"] + row["supervisor"] + row["agent"] > 0
    verdict = report["verdict"]
    assert verdict["memory_bounded"] is True
    assert verdict["batched_ratio_worst"] == min(r["batched_ratio"] for r in rows)
