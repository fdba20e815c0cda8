"""``agentcast bench budget --quick``: every row, the strict row and the ratios computed from
the rows; never speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_runs import run_quick_bench

from actors._cli.bench.budget import MODES, QUICK_AGENT_COUNTS, TARGETS


@pytest.mark.slow
@pytest.mark.timeout(600)  # its own Ray with 8 client agents
def test_quick_budget_bench_has_every_row_and_spends_nothing_past_the_cap(tmp_path: Path) -> None:
    report = run_quick_bench("budget", tmp_path / "budget.json", timeout=540)
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
