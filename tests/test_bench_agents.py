"""``agentcast bench agents --quick``: the report's shape, every agent served, and figures
that can be judged (positive, and the pooled memory per agent below a dedicated one's)."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.agents import QUICK_DEDICATED, QUICK_POOLED, TARGETS

ROW_KEYS = {
    "placement", "agents", "processes", "start_s", "served", "pss_mb_total",
    "pss_mb_per_agent", "direct_calls_per_s", "supervised_per_s", "supervised_over_direct",
    "subtasks",
}  # fmt: skip


@pytest.mark.quick_bench("agents")  # slow, run in the background (tests/bench_runs.py)
def test_quick_agents_bench_reports_every_row_and_a_verdict(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    rows = report["rows"]
    assert [(r["placement"], r["agents"]) for r in rows] == [
        *(("dedicated", n) for n in QUICK_DEDICATED), *(("pooled", n) for n in QUICK_POOLED),
    ]  # fmt: skip
    for row in rows:
        expected = ROW_KEYS | (
            {"pss_mb_per_agent_beyond_base"} if row["placement"] == "pooled" else set()
        )
        assert set(row) == expected
        assert row["served"] == row["agents"]  # every agent answered its direct call
        assert min(row["start_s"], row["pss_mb_total"], row["supervised_per_s"]) > 0
    dedicated = [r for r in rows if r["placement"] == "dedicated"]
    pooled = [r for r in rows if r["placement"] == "pooled"]
    assert [r["processes"] for r in dedicated] == list(QUICK_DEDICATED)  # one process each
    assert all(r["processes"] < r["agents"] for r in pooled)
    assert max(r["pss_mb_per_agent"] for r in pooled) < min(
        r["pss_mb_per_agent"] for r in dedicated
    )
    verdict = report["verdict"]
    assert verdict["targets"] == TARGETS
    assert verdict["largest_pooled"] == max(QUICK_POOLED)
    assert verdict["largest_all_served"] is True
    assert {"memory_met", "start_met", "empty_host_pss_mb"} <= set(verdict)
