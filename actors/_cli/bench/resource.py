"""``agentcast bench resource``: agentcast writes against plain Ray, side by side.

One local Ray, one group of 32 client agents reused by every row; for N clients,
replicas 0..N-1 run at once, each making a fixed number of sequential, awaited
operations after a short warm-up. Throughput is total operations over the wall time
from the first client's start to the last client's finish; latencies are timed in the
clients. Counting rows check their final count against the number of updates made (and,
for agentcast, against the resource's durable log).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray

from policies import ResourcePolicy
from runtime import decode, is_shared

from ..._agent.group import AgentGroup
from ..._resource.handle import ResourceHandle
from ..._system import System
from ..output import emit, note, progress_bar
from .baselines import DictStore, LeaseLock, NoopTarget, StartLine
from .clients import (
    LOCK,
    LOCK_STORE,
    NAIVE_STORE,
    NAMESPACE,
    NOOP,
    QUICK,
    RESOURCE_CLASSES,
    RESOURCES,
    START_LINE,
    BenchClient,
    BenchConfig,
    RowSpec,
    Run,
    RunOut,
    workloads,
)
from .counters import BenchCounter
from .paired import PAIRED, measure_paired, median_rows, side_by_side


class _Bench:
    """The running benchmark: the system, the shared clients and what they call."""

    def __init__(self, system: System, config: BenchConfig) -> None:
        self.system = system
        self.config = config
        self.handles: dict[str, ResourceHandle] = {}
        self.stores: dict[str, Any] = {}
        self.group: AgentGroup | None = None

    def start(self) -> None:
        ns = self.system.namespace
        for name, durability in RESOURCES.items():
            policy = ResourcePolicy(durability=durability)
            counter = RESOURCE_CLASSES.get(name, BenchCounter)
            self.handles[name] = self.system.resource(counter, name=name, policy=policy)
        for name, cls in ((NOOP, NoopTarget), (LOCK, LeaseLock), (LOCK_STORE, DictStore),
                          (NAIVE_STORE, DictStore), (START_LINE, StartLine)):  # fmt: skip
            actor = ray.remote(cls).options(name=name, namespace=ns, num_cpus=0).remote()
            self.stores[name] = actor
        ray.get([self.stores[NOOP].noop.remote(), self.stores[LOCK_STORE].get.remote("x"),
                 self.stores[NAIVE_STORE].get.remote("x")])  # fmt: skip
        replicas = max(self.config.clients)
        self.group = self.system.agent(BenchClient, name="clients", replicas=replicas)

    def call_all(self, message: Run, n: int) -> list[RunOut]:
        """Clients 0..n-1 run ``message`` at once; their measurements."""
        assert self.group is not None
        message = message.model_copy(update={"clients": n})
        outs: list[RunOut] = ray.get([self.group.call(message, replica=i) for i in range(n)])
        return outs

    def final_count(self, counter: str, key: str) -> int:
        if counter in self.handles:
            return int(self.handles[counter].get(key))
        return int(ray.get(self.stores[counter].get.remote(key)))


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run_row(bench: _Bench, spec: RowSpec, n: int, tag: str = "") -> dict[str, Any]:
    """Warm up, then measure ``spec`` with clients 0..n-1 at once; one row of the report,
    counting into the key ``<row>.n<N><tag>``."""
    cfg, key = bench.config, f"{spec.name}.n{n}{tag}"
    bench.call_all(spec.message(f"warmup.{key}", cfg.warmup, 0.0), n)
    ops_each = spec.ops_per_client or cfg.ops
    outs = bench.call_all(spec.message(key, ops_each, time.time() + cfg.start_slack_s), n)
    latencies = sorted(ms for out in outs for ms in out.latencies_ms)
    wall = max(o.finished for o in outs) - min(o.started for o in outs)
    ops = len(latencies)
    row: dict[str, Any] = {
        "row": spec.name, "n": n, "system": spec.system, "durability": spec.durability,
        "ops": ops, "writes_per_op": spec.writes_per_op, "wall_s": round(wall, 4),
        "throughput": ops * spec.writes_per_op / wall, "throughput_unit": f"{spec.unit}/s",
        "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99),
        "op": spec.op, "ops_per_client": ops_each, "round_trips_per_op": spec.round_trips_per_op,
        "failed": sum(o.failed for o in outs), "duplicates": sum(o.duplicates for o in outs),
    }  # fmt: skip
    if spec.name == "ttl_lock":
        row["refused_acquires_per_update"] = sum(o.retries for o in outs) / ops
    if spec.counter is not None:
        expected, final = ops * spec.writes_per_op, bench.final_count(spec.counter, key)
        row.update(expected=expected, final=final, counter=spec.counter, key=key)
        row["lost_updates"] = max(0, expected - final)
        row["lost_fraction"] = row["lost_updates"] / expected
    return row


def _log_counts(system: System, resource: str) -> tuple[dict[str, int], bool]:
    """Committed ``add`` records per key in the resource's log, and whether versions are
    1..V without a gap."""
    counts: dict[str, int] = {}
    log = system.log(resource)
    try:
        expected_version, gap_free = 1, True
        for record in log.records():
            gap_free = gap_free and record.version == expected_version
            expected_version = record.version + 1
            (key, n), _ = decode(record.args)
            counts[key] = counts.get(key, 0) + int(n)
    finally:
        log.close()
    return counts, gap_free


def _check_agentcast(system: System, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare every agentcast counting row with the final state and the log."""
    logs = {name: _log_counts(system, name) for name in RESOURCES}
    problems: list[str] = []
    for row in rows:
        if row["system"] != "agentcast":
            continue
        counts, gap_free = logs[row["counter"]]
        row["logged"] = counts.get(row["key"], 0)
        row["duplicated_updates"] = max(0, max(row["final"], row["logged"]) - row["expected"])
        row["lost_updates"] = max(0, row["expected"] - min(row["final"], row["logged"]))
        row["lost_fraction"] = row["lost_updates"] / row["expected"]
        if row["lost_updates"] or row["duplicated_updates"] or not gap_free:
            problems.append(
                f"{row['row']} n={row['n']}: expected {row['expected']}, state {row['final']}, "
                f"log {row['logged']}, gap-free {gap_free}"
            )
    gaps = {name: found[1] for name, found in logs.items()}
    return {"ok": not problems, "problems": problems, "logs_gap_free": gaps}


def _measure(system: System, config: BenchConfig) -> dict[str, Any]:
    bench = _Bench(system, config)
    load_before = os.getloadavg()
    began = time.perf_counter()
    bench.start()
    _log(f"started {max(config.clients)} clients in {time.perf_counter() - began:.1f} s")
    rounds, paired = _measure_paired(bench, config)
    rows = median_rows(rounds)
    specs = [s for s in workloads(config, system.namespace) if s.name not in PAIRED]
    for spec in specs:
        for n in config.clients:
            progress_bar(len(rows), len(specs) * len(config.clients), f"bench: {spec.name}, {n}")
            rows.append(run_row(bench, spec, n))
            _log(_row_line(rows[-1]))
    correctness = _check_agentcast(system, [*rounds, *(r for r in rows if "round" not in r)])
    found = ratios(rows, paired)
    verdicts = targets(found, rows)
    return {
        "benchmark": "resource", "quick": config == QUICK, "ray_version": ray.__version__,
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "config": asdict(config),
        "clients": list(config.clients), "rows": rows, "ratios": found,
        "side_by_side": paired, "rounds": rounds,
        "targets": verdicts, "correctness": correctness,
        "summary": {"targets_met": [name for name, t in verdicts.items() if t["pass"]],
                    "targets_missed": [name for name, t in verdicts.items() if not t["pass"]]},
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
    }  # fmt: skip


def _measure_paired(bench: _Bench, config: BenchConfig) -> tuple[list[Any], dict[str, Any]]:
    """The ``PAIRED`` rows in interleaved rounds at each N: every round's rows, and the
    side-by-side ratios (``paired.side_by_side``)."""
    specs = {s.name: s for s in workloads(config, bench.system.namespace)}
    rounds: list[dict[str, Any]] = []
    per_n: dict[int, dict[str, list[float]]] = {}

    def run(spec: RowSpec, n: int, tag: str) -> dict[str, Any]:
        progress_bar(len(rounds), len(config.clients) * config.rounds, f"bench: {spec.name}, {n}")
        row = run_row(bench, spec, n, tag)
        _log(_row_line(row))
        return row

    for n in config.clients:
        measured, per_n[n] = measure_paired(run, specs, n, config.rounds)
        rounds += measured
    return rounds, side_by_side(per_n)


def _row_line(row: dict[str, Any]) -> str:
    lost = f" lost {row['lost_updates']}/{row['expected']}" if "expected" in row else ""
    return (f"{row['row']:<26} N={row['n']:<3} {row['throughput']:>10.0f} "
            f"{row['throughput_unit']:<9} p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
            f"{lost}")  # fmt: skip


def _log(line: str) -> None:
    note(line)


def _root(folder: str) -> str:
    """A fresh folder, or with ``$AGENTCAST_STORAGE=postgresql://...`` fresh schemas there."""
    url = os.environ.get("AGENTCAST_STORAGE", "")
    return f"{url.partition('#')[0]}#bench{os.getpid()}" if is_shared(url) else folder


def run_bench(as_json: bool, quick: bool, out: str | None) -> int:
    """Run the benchmark on a fresh local Ray and report it.

    Returns:
        0, whether or not targets are met (the report says which); 1 if agentcast lost
        or duplicated an update.
    """
    config = QUICK if quick else BenchConfig()
    began = time.perf_counter()
    storage = tempfile.TemporaryDirectory(prefix="agentcast-bench-", ignore_cleanup_errors=True)
    with storage as tmp, System.start(_root(tmp), namespace=NAMESPACE, dashboard=False) as system:
        document = _measure(system, config)
    document["storage"] = "postgresql" if is_shared(_root("")) else "sqlite"
    document["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = json.dumps(document, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    emit(text if as_json else table(document))
    for problem in document["correctness"]["problems"]:
        _log(f"agentcast lost or duplicated updates: {problem}")
    return 0 if document["correctness"]["ok"] else 1


# -- the report ---------------------------------------------------------------------------

AGENTCAST_ROWS = (
    "durable_unbatched", "durable_constrained", "durable_provenance",
    "durable_unbatched_process", "batched",
    "agentcast_rmw",
)  # fmt: skip


def ratios(rows: list[dict[str, Any]], paired: dict[str, Any] | None = None) -> dict[str, Any]:
    """Throughput ratios per N, and p99 growth from the fewest to the most clients. A
    ratio measured side by side (``paired``) is the median of its rounds' ratios."""
    by = {(r["row"], r["n"]): r for r in rows}
    counts = sorted({r["n"] for r in rows})

    def per_n(a: str, b: str) -> dict[str, float]:
        if paired is not None and f"{a}/{b}" in paired:
            return {n: found["median"] for n, found in paired[f"{a}/{b}"].items()}
        return {str(n): by[a, n]["throughput"] / by[b, n]["throughput"] for n in counts}

    low, high = counts[0], counts[-1]
    names = list(dict.fromkeys(r["row"] for r in rows))
    return {
        "durable_unbatched/noop_payload": per_n("durable_unbatched", "noop_payload"),
        "durable_unbatched_process/noop_payload": per_n(
            "durable_unbatched_process", "noop_payload"
        ),
        "durable_unbatched/noop_ceiling": per_n("durable_unbatched", "noop_ceiling"),
        "noop_payload/noop_ceiling": per_n("noop_payload", "noop_ceiling"),
        "durable_unbatched_process/noop_ceiling": per_n(
            "durable_unbatched_process", "noop_ceiling"
        ),
        "durable_constrained/durable_unbatched": per_n("durable_constrained", "durable_unbatched"),
        "batched/noop_ceiling": per_n("batched", "noop_ceiling"),
        "durable_provenance/durable_unbatched": per_n("durable_provenance", "durable_unbatched"),
        "batched/ttl_lock": per_n("batched", "ttl_lock"),
        "durable_unbatched/ttl_lock": per_n("durable_unbatched", "ttl_lock"),
        "p99_growth_1_to_32": {
            name: by[name, high]["p99_ms"] / by[name, low]["p99_ms"] for name in names
        },
        "p99_growth_linear_bound": high / low,
    }


def _at_least(values: dict[str, float], threshold: float, description: str) -> dict[str, Any]:
    return {
        "description": description, "threshold": threshold, "values": values,
        "pass_by_n": {n: v >= threshold for n, v in values.items()},
        "pass": all(v >= threshold for v in values.values()),
    }  # fmt: skip


RATIO_TARGETS = (
    ("unbatched_vs_payload_call", "durable_unbatched/noop_payload", 0.8,
     "durable unbatched writes/s >= 0.8x plain Ray no-op calls carrying the same payload"),
    ("unbatched_process_vs_payload_call", "durable_unbatched_process/noop_payload", 0.8,
     "the same with Durability.PROCESS (no fsync per commit)"),
    ("constraints_cost", "durable_constrained/durable_unbatched", 0.9,
     "writes carrying 10 constraints/s >= 0.9x plain durable writes/s"),
    ("provenance_vs_durable", "durable_provenance/durable_unbatched", 0.9,
     "durable writes requiring VERIFIED provenance >= 0.9x plain durable writes/s"),
    ("batched_vs_ceiling", "batched/noop_ceiling", 10.0, "batched writes/s >= 10x no-op calls/s"),
    ("batched_vs_ttl_lock", "batched/ttl_lock", 10.0,
     "batched writes/s >= 10x TTL-lock updates/s"),
)  # fmt: skip
"""(target, ratio, threshold, description): each passes when the ratio reaches the
threshold at every N."""


def targets(found: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pass or fail of each target; a target passes only if it holds at every N."""
    growth = {n: g for n, g in found["p99_growth_1_to_32"].items() if n in AGENTCAST_ROWS}
    bound = found["p99_growth_linear_bound"]
    lost = {
        name: {str(r["n"]): r["lost_updates"] for r in rows if r["row"] == name}
        for name in ("naive_rmw", "agentcast_rmw")
    }
    ratios_met = {
        name: _at_least(found[ratio], threshold, description)
        for name, ratio, threshold, description in RATIO_TARGETS
    }
    return {
        **ratios_met,
        "p99_growth_at_most_linear": {
            "description": f"agentcast p99 growth from fewest to most clients <= {bound:g}",
            "threshold": bound, "values": growth, "pass": all(g <= bound for g in growth.values()),
        },
        "no_lost_updates": {
            "description": "agentcast loses 0 updates where naive read-modify-write loses some",
            "values": lost,
            "pass": sum(lost["agentcast_rmw"].values()) == 0
            and sum(lost["naive_rmw"].values()) > 0,
        },
    }  # fmt: skip


def table(document: dict[str, Any]) -> str:
    """The report as a readable table."""
    lines = [
        f"agentcast bench resource  ray {document['ray_version']}  "
        f"{document['cpu_count']} cpus  {document['config']['ops']} ops/client/row",
        "",
        f"{'row':<26} {'N':>3} {'durability':<10} {'throughput':>12} {'unit':<10} "
        f"{'p50 ms':>8} {'p99 ms':>8}  lost",
    ]
    for r in document["rows"]:
        lost = f"{r['lost_updates']}/{r['expected']}" if "expected" in r else "-"
        lines.append(
            f"{r['row']:<26} {r['n']:>3} {r['durability'].split()[0]:<10} "
            f"{r['throughput']:>12.0f} {r['throughput_unit']:<10} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}  {lost}"
        )
    lines += ["", f"ratios (N={' / '.join(map(str, document['clients']))}):"]
    for name, values in document["ratios"].items():
        if isinstance(values, dict) and name != "p99_growth_1_to_32":
            lines.append(f"  {name:<42} " + " / ".join(f"{v:.2f}" for v in values.values()))
    for name, per_n in document.get("side_by_side", {}).items():
        medians = " / ".join(f"{found['median']:.2f}" for found in per_n.values())
        lines.append(f"  {name:<42} {medians}  (median of interleaved rounds)")
    growth = document["ratios"]["p99_growth_1_to_32"]
    bound = document["ratios"]["p99_growth_linear_bound"]
    lines.append(f"p99 growth, fewest to most clients (linear bound {bound:g}):")
    lines += [f"  {name:<42} {g:.2f}" for name, g in growth.items()]
    lines += ["", "targets:"]
    for name, target in document["targets"].items():
        verdict = "PASS" if target["pass"] else "FAIL"
        lines.append(f"  {verdict}  {name:<28} {target['description']}")
    lines.append(f"agentcast correctness: {'ok' if document['correctness']['ok'] else 'FAILED'}")
    return "\n".join(lines)
