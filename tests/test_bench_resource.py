"""``agentcast bench resource``: the report's shape and its correctness checks, never speed."""

from __future__ import annotations

from typing import Any

import pytest

from actors._cli.bench.clients import CLIENT_COUNTS, QUICK, RESOURCES, RowSpec, Run
from actors._cli.bench.paired import PAIRED, measure_paired, median_rows, side_by_side
from actors._cli.bench.resource import ratios, table, targets

ROWS = (
    "noop_ceiling",
    "noop_payload",
    "durable_unbatched",
    "durable_constrained",
    "durable_provenance",
    "durable_unbatched_process",
    "batched",
    "ttl_lock",
    "naive_rmw",
    "agentcast_rmw",
)


def _synthetic_rows() -> list[dict[str, Any]]:
    rows = []
    for name in ROWS:
        for n in CLIENT_COUNTS:
            row: dict[str, Any] = {
                "row": name, "n": n, "throughput": 100.0 * n, "p50_ms": 1.0,
                "p99_ms": 2.0 * n, "durability": "full", "throughput_unit": "writes/s",
            }  # fmt: skip
            if name in ("naive_rmw", "agentcast_rmw"):
                lost = 5 if name == "naive_rmw" and n > 1 else 0
                row.update(expected=10, lost_updates=lost)
            rows.append(row)
    return rows


def test_targets_follow_the_ratios() -> None:
    rows = _synthetic_rows()
    found = ratios(rows)
    assert found["batched/noop_ceiling"] == {"1": 1.0, "8": 1.0, "32": 1.0}
    assert found["p99_growth_1_to_32"]["batched"] == 32.0
    verdicts = targets(found, rows)
    assert verdicts["unbatched_vs_payload_call"]["pass"] is True
    assert found["durable_unbatched_process/noop_payload"] == {"1": 1.0, "8": 1.0, "32": 1.0}
    assert verdicts["unbatched_process_vs_payload_call"]["pass"] is True
    assert found["noop_payload/noop_ceiling"] == {"1": 1.0, "8": 1.0, "32": 1.0}
    assert found["durable_constrained/durable_unbatched"] == {"1": 1.0, "8": 1.0, "32": 1.0}
    assert verdicts["constraints_cost"]["pass"] is True
    assert verdicts["batched_vs_ceiling"]["pass"] is False
    assert verdicts["p99_growth_at_most_linear"]["pass"] is True
    assert verdicts["no_lost_updates"]["pass"] is True


def _no_message(key: str, ops: int, start_at: float) -> Run:
    raise AssertionError("not called")


def test_side_by_side_rounds_alternate_and_the_ratio_is_the_median_of_rounds() -> None:
    calls: list[tuple[str, int, str]] = []
    speed = {"noop_payload": [100.0, 200.0, 400.0], "durable_unbatched": [90.0, 100.0, 100.0],
             "durable_unbatched_process": [50.0, 300.0, 200.0]}  # fmt: skip

    def run(spec: RowSpec, n: int, tag: str) -> dict[str, Any]:
        calls.append((spec.name, n, tag))
        index = int(tag[2:])
        return {"row": spec.name, "n": n, "throughput": speed[spec.name][index], "key": tag}

    specs = {name: RowSpec(name, "x", "x", "x", 1, "x", "1", None, _no_message) for name in PAIRED}
    rows, found = measure_paired(run, specs, 8, 3)
    a, b, c = PAIRED
    assert calls == [(a, 8, ".r0"), (b, 8, ".r0"), (c, 8, ".r0"),
                     (c, 8, ".r1"), (b, 8, ".r1"), (a, 8, ".r1"),
                     (a, 8, ".r2"), (b, 8, ".r2"), (c, 8, ".r2")]  # fmt: skip
    assert [r["round"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert found == {
        "durable_unbatched/noop_payload": [0.9, 0.5, 0.25],
        "durable_unbatched_process/noop_payload": [0.5, 1.5, 0.5],
    }
    paired = side_by_side({8: found})
    assert paired["durable_unbatched/noop_payload"] == {
        "8": {"median": 0.5, "rounds": [0.9, 0.5, 0.25]}
    }
    shown = {(r["row"], r["key"]) for r in median_rows(rows)}
    assert shown == {(a, ".r1"), (b, ".r1"), (c, ".r2")}
    # The ratio targets read the rounds' medians, not the shown rows' quotient (1.0 here).
    synthetic = [row for row in _synthetic_rows() if row["n"] == 8]
    assert ratios(synthetic, paired)["durable_unbatched/noop_payload"] == {"8": 0.5}
    assert ratios(synthetic)["durable_unbatched/noop_payload"] == {"8": 1.0}


def test_quick_mode_runs_one_and_eight_clients_in_three_rounds() -> None:
    assert (QUICK.clients, QUICK.rounds) == ((1, 8), 3)


def test_a_lost_agentcast_update_fails_the_target() -> None:
    rows = _synthetic_rows()
    for row in rows:
        if row["row"] == "agentcast_rmw" and row["n"] == 8:
            row["lost_updates"] = 1
    assert targets(ratios(rows), rows)["no_lost_updates"]["pass"] is False


def test_table_names_every_row_and_target() -> None:
    rows = _synthetic_rows()
    found = ratios(rows)
    document = {
        "ray_version": "x", "cpu_count": 2, "config": {"ops": 30}, "rows": rows,
        "clients": list(CLIENT_COUNTS),
        "ratios": found, "targets": targets(found, rows), "correctness": {"ok": True},
    }  # fmt: skip
    text = table(document)
    for name in (*ROWS, *document["targets"]):
        assert name in text


@pytest.mark.quick_bench("resource")  # slow, run in the background (tests/bench_runs.py)
def test_quick_run_reports_every_row_and_loses_nothing(quick_bench_report: dict[str, Any]) -> None:
    report = quick_bench_report
    by = {(r["row"], r["n"]): r for r in report["rows"]}
    assert set(by) == {(name, n) for name in ROWS for n in (1, 8)}
    assert report["clients"] == [1, 8]
    assert set(report["side_by_side"]) == {
        "durable_unbatched/noop_payload", "durable_unbatched_process/noop_payload",
    }  # fmt: skip
    for per_n in report["side_by_side"].values():
        assert set(per_n) == {"1", "8"}
        for found in per_n.values():
            assert len(found["rounds"]) == 3
            assert found["median"] == sorted(found["rounds"])[1]
    assert {(r["row"], r["n"], r["round"]) for r in report["rounds"]} == {
        (name, n, i) for name in PAIRED for n in (1, 8) for i in range(3)
    }
    for row in report["rows"]:
        assert row["throughput"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["durability"]
    # One naive client has nobody to race; N (8) of them meet after their first read, so all N
    # first writes rest on one reading and at least N - 1 updates are lost, on every run.
    assert by["naive_rmw", 1]["lost_updates"] == 0
    assert by["naive_rmw", 8]["lost_updates"] >= 8 - 1, by["naive_rmw", 8]
    for name in (
        "durable_unbatched", "durable_provenance", "durable_unbatched_process", "batched",
        "agentcast_rmw",
    ):  # fmt: skip
        for n in (1, 8):
            row = by[name, n]
            assert row["lost_updates"] == 0
            assert row["duplicated_updates"] == 0
            assert row["final"] == row["logged"] == row["expected"]
    assert report["correctness"] == {
        "ok": True, "problems": [], "logs_gap_free": dict.fromkeys(RESOURCES, True),
    }  # fmt: skip
    assert set(report["targets"]) == {
        "unbatched_vs_payload_call", "unbatched_process_vs_payload_call",
        "constraints_cost", "provenance_vs_durable", "batched_vs_ceiling",
        "batched_vs_ttl_lock",
        "p99_growth_at_most_linear", "no_lost_updates",
    }  # fmt: skip
    assert report["targets"]["no_lost_updates"]["pass"] is True
    assert report["ray_version"] and report["cpu_count"]
