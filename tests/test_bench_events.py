"""``agentcast bench events --quick``: every row, the emit cost and the lag curve, and the
ratios computed from the rows; never speed."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.events import (
    COUNTS,
    QUICK_COUNTS,
    TARGETS,
    backlog_size,
    emit_figures,
    ratios,
)


def test_ratios_divide_agentcast_by_plain_fanout_per_subscriber_count() -> None:
    rows = [
        {"row": row, "subscribers": n, "events_per_s": 10.0 * n * (2 if row == "agentcast" else 1)}
        for row in ("plain_ray_fanout", "agentcast")
        for n in QUICK_COUNTS
    ]
    assert ratios(rows, QUICK_COUNTS) == {str(n): 2.0 for n in QUICK_COUNTS}


def test_emit_figures_take_the_totals_for_the_overhead_and_the_pairs_for_quartiles() -> None:
    # Four pairs of 10-write batches: one stall (the 3.0 s batch) weighs on the totals,
    # only on its pair's figure among the quartiles.
    marked, silent = [1.1, 1.2, 3.0, 0.9], [1.0, 1.0, 1.0, 1.0]
    assert emit_figures(marked, silent, 10) == {
        "writes": 40, "without_emit_per_s": 10.0, "with_emit_per_s": 6.5,
        "overhead": 0.55, "pair_quartiles": [0.1, 0.2, 2.0],
    }  # fmt: skip


def test_backlog_rows_deliver_three_times_the_events_below_32_subscribers() -> None:
    assert [backlog_size(2_000, n, quick=False) for n in COUNTS] == [6_000, 6_000, 2_000]
    assert [backlog_size(500, n, quick=True) for n in QUICK_COUNTS] == [500, 500, 500]


@pytest.mark.quick_bench("events")  # slow, run in the background (tests/bench_runs.py)
def test_quick_events_bench_has_every_row_the_emit_cost_and_the_lag_curve(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    rows = {(r["row"], r["subscribers"]): r for r in report["rows"]}
    assert set(rows) == {
        (row, n) for row in ("plain_ray_fanout", "agentcast") for n in QUICK_COUNTS
    }
    for (_, n), row in rows.items():
        assert row["deliveries"] == 500 * n
        assert row["events_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
    backlog = {(r["row"], r["subscribers"]): r for r in report["backlog"]}
    assert set(backlog) == set(rows)
    pooled = {(r["row"], r["subscribers"]): r for r in report["pooled_backlog"]}
    assert set(pooled) == {
        (row, n) for row in ("plain_ray_fanout", "agentcast_pooled") for n in QUICK_COUNTS
    }
    for row in [*backlog.values(), *pooled.values()]:
        assert row["deliveries"] == 500 * row["subscribers"] and row["events_per_s"] > 0
    # Dedicated replicas and plain subscribers run one process each; pooled ones share
    # one host while 16 or fewer.
    assert [backlog[("agentcast", n)]["processes"] for n in QUICK_COUNTS] == list(QUICK_COUNTS)
    assert [pooled[("agentcast_pooled", n)]["processes"] for n in QUICK_COUNTS] == [1, 1, 1]
    cost = report["emit_cost"]
    assert cost["writes"] == 500 and cost["with_emit_per_s"] > 0 < cost["without_emit_per_s"]
    slower = cost["without_emit_per_s"] / cost["with_emit_per_s"] - 1  # time per write, over
    assert cost["overhead"] == pytest.approx(slower, abs=1e-3)
    low, median, high = cost["pair_quartiles"]
    assert low <= median <= high
    lag = report["lag"]
    assert lag["subscribers"] == QUICK_COUNTS[1] and len(lag["curve"]) >= 1
    assert report["targets"] == TARGETS
    assert set(report["results"]["delivery_vs_plain"]) == {str(n) for n in QUICK_COUNTS}
    assert set(report["results"]["backlog_vs_plain"]) == {str(n) for n in QUICK_COUNTS}
    assert report["results"]["pooled_backlog_vs_plain"] == ratios(
        report["pooled_backlog"], QUICK_COUNTS, "agentcast_pooled"
    )
    assert set(report["results"]["met"]) == {
        "emit_overhead", "delivery_vs_plain", "backlog_vs_plain", "pooled_backlog_vs_plain",
        "lag_bounded",
    }  # fmt: skip
