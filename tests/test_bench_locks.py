"""``agentcast bench locks --quick``: every row, the detection and stale-write checks, and
the ratios computed from the rows; never speed."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.locks import CLIENT_COUNTS, PATTERNS, TARGETS, ratios


def test_ratios_divide_each_lease_row_by_the_plain_pattern() -> None:
    rows = [
        {"row": p, "clients": n, "throughput_updates_per_s": 10.0 * (i + 1)}
        for i, p in enumerate(PATTERNS)
        for n in CLIENT_COUNTS
    ]
    found = ratios(rows)
    assert found["lease_single_batched/plain_ttl_lock"] == {"1": 4.0, "8": 4.0, "32": 4.0}
    assert set(found) == {f"{p}/plain_ttl_lock" for p in PATTERNS[1:]}


@pytest.mark.quick_bench("locks")  # slow, run in the background (tests/bench_runs.py)
def test_quick_locks_bench_has_every_row_and_no_stale_write(
    quick_bench_report: dict[str, Any],
) -> None:
    report = quick_bench_report
    rows = {(r["row"], r["clients"]): r for r in report["rows"]}
    assert set(rows) == {(p, n) for p in PATTERNS for n in CLIENT_COUNTS}
    for (pattern, n), row in rows.items():
        assert row["updates"] == 20 * n, (pattern, n)
        assert row["throughput_updates_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
        assert row["failed"] == 0
    detection = report["detection"]
    assert detection["samples"] == 3 and detection["max_ms"] < float("inf")
    assert report["stale"] == {"trials": 2, "stale_applied": 0, "stale_refused": 2}
    assert report["targets"] == TARGETS
    assert report["results"]["met"]["zero_stale_writes"] is True
    assert set(report["results"]["best_lease_vs_plain"]) == {str(n) for n in CLIENT_COUNTS}
