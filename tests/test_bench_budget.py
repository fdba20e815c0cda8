"""``agentcast bench budget --quick``: every row, the strict row, the CPU rows (every leased
call counted) and the ratios computed from the rows; never speed."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.budget import (
    MODES,
    QUICK_AGENT_COUNTS,
    QUICK_CPU_CALLS,
    QUICK_CPU_ROUNDS,
    TARGETS,
)
from actors._cli.bench.budget_cpu import CPU_AGENT_COUNTS


@pytest.mark.quick_bench("budget")  # slow, run in the background (tests/bench_runs.py)
def test_quick_budget_bench_has_every_row_and_spends_nothing_past_the_cap(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    calls = report["calls_per_agent"]
    rows = {(r["mode"], r["agents"]): r for r in report["rows"]}
    assert list(rows) == [(m, n) for n in QUICK_AGENT_COUNTS for m in MODES]
    for (mode, n), row in rows.items():
        assert row["model_calls"] == calls * n, (mode, n)
        assert row["throughput_calls_per_s"] > 0 and row["wall_s"] > 0
        if mode == "unmetered":
            assert row["budget_calls"] == 0
    strict = report["strict"]
    assert strict["agents"] == max(QUICK_AGENT_COUNTS)
    assert strict["model_calls_made"] == strict["committed"] == strict["cap_calls"]
    assert strict["overspend"] == 0 and strict["outstanding"] == 0
    results = report["results"]
    assert results["lease_vs_unmetered_throughput"] == {
        str(n): round(
            rows[("lease", n)]["throughput_calls_per_s"]
            / rows[("unmetered", n)]["throughput_calls_per_s"],
            3,
        )
        for n in QUICK_AGENT_COUNTS
    }
    assert report["targets"] == TARGETS and results["met"]["strict_overspend"] is True
    cpu = report["cpu"]
    assert [r["agents"] for r in cpu] == list(CPU_AGENT_COUNTS)
    for r in cpu:
        assert (r["rounds"], r["calls_per_round"]) == (QUICK_CPU_ROUNDS, QUICK_CPU_CALLS)
        assert r["unmetered_us_best"] > 0 and r["lease_us_best"] > 0
        assert r["ratio_best"] == round(r["unmetered_us_best"] / r["lease_us_best"], 3)
        # every leased call of every round (and the warm-up's) is in the budget's books
        assert r["counted_calls"] == r["leased_calls"] == QUICK_CPU_CALLS * (QUICK_CPU_ROUNDS + 1)
    assert results["lease_vs_unmetered_cpu"] == {str(r["agents"]): r["ratio_best"] for r in cpu}
    assert results["cpu_uncounted_calls"] == 0 and results["met"]["every_call_counted"] is True
    assert results["met"]["lease_cpu"] == (
        min(r["ratio_best"] for r in cpu) >= TARGETS["lease_vs_unmetered_cpu_min"]
    )
