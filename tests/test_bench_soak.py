"""``agentcast bench soak --quick``: the report's shape, positive figures, and storage that
stays flat once retention (a 2-second window) keeps up with the load."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.soak import QUICK, SLACK_MB, TOLERANCE

ACTORS = {"resource", "supervisor", "budget"}


@pytest.mark.quick_bench("soak")  # slow, run in the background (tests/bench_runs.py)
def test_quick_soak_reports_positive_figures_and_flat_storage(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    samples = report["samples"]
    assert [s["round"] for s in samples] == list(range(1, QUICK.rounds + 1))
    last = samples[-1]
    assert (last["writes"], last["subtasks"]) == (QUICK.writes, QUICK.subtasks)
    assert last["calls"] == QUICK.calls
    restarted = [s for s in samples if "restart_s" in s]
    assert [s["round"] for s in restarted] == [2, 4]
    for sample in samples:
        assert set(sample["rss_mb"]) == set(sample["uss_mb"]) == set(sample["storage_mb"]) == ACTORS
        assert min(sample["rss_mb"].values()) > 0
        assert min(sample["uss_mb"].values()) > 0
        for which in ACTORS:  # a process's own memory is part of its resident memory
            assert sample["uss_mb"][which] <= sample["rss_mb"][which], which
        assert min(sample["storage_mb"].values()) > 0
    for sample in restarted:
        assert set(sample["restart_s"]) == ACTORS
        assert min(sample["restart_s"].values()) > 0
    verdict = report["verdict"]
    assert (verdict["tolerance"], verdict["slack_mb"]) == (TOLERANCE, SLACK_MB)
    mid = samples[verdict["mid_round"] - 1]["storage_mb"]
    for which in ACTORS:
        assert last["storage_mb"][which] <= mid[which] * (1 + TOLERANCE) + SLACK_MB, which
    assert verdict["all_flat"] is True
    assert verdict["incarnation_from_round"] == 3  # the supervisor restarted after round 2
    growth = verdict["uss_growth_in_incarnation"]
    assert set(verdict["rss_growth_in_incarnation"]) == set(growth) == ACTORS
    assert growth["supervisor"] == round(
        last["uss_mb"]["supervisor"] / samples[2]["uss_mb"]["supervisor"], 3
    )
