"""``agentcast bench supervisor``: subtasks of a no-op agent called directly with plain
Ray, against the same subtasks through the supervisor.

For N in (1,000, 10,000) and 1 or 8 agent replicas: throughput of each way, with every
call sent at once and awaited together; then the latency of one call at a time (p50, p99)
and what the supervisor adds; then the supervisor's memory per tracked (in-flight)
subtask and what a finished one leaves behind (its history is in storage, not memory).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel

from runtime import Envelope

from ..._agent.agent import Agent, handler
from ..._agent.group import AgentGroup
from ..._system import System
from ..output import emit, note, progress_bar

SIZES = (1_000, 10_000)
QUICK_SIZES = (500, 2_000)
REPLICAS = (1, 8)
LATENCY_SAMPLES = 300
TARGETS = {"throughput_ratio_min": 0.5, "added_p50_over_direct_p50_max": 2.5}


class Ping(BaseModel):
    i: int


class Pong(BaseModel):
    i: int


class NoopAgent(Agent):
    """Answers at once."""

    @handler
    async def pong(self, ping: Ping) -> Pong:
        return Pong(i=ping.i)


def _direct(group: AgentGroup, n: int, trace: str) -> float:
    began = time.perf_counter()
    refs = [
        group.actors[i % len(group.actors)].handle.remote(Ping(i=i), Envelope(trace_id=trace))
        for i in range(n)
    ]
    ray.get(refs)
    return n / (time.perf_counter() - began)


def _supervised(system: System, to: str, n: int) -> tuple[float, dict[str, Any]]:
    supervisor = system.supervisor
    before = ray.get(supervisor.actor.stats.remote())
    began = time.perf_counter()
    handles = [supervisor.submit(Ping(i=i), to=to, expect=Pong) for i in range(n)]
    during = ray.get(supervisor.actor.stats.remote())
    outcomes = ray.get([h.ref for h in handles])
    rate = n / (time.perf_counter() - began)
    after = ray.get(supervisor.actor.stats.remote())
    if any(o.error is not None for o in outcomes):
        raise RuntimeError("a no-op subtask failed")
    tracked = max(1, during["live"])
    memory = {
        "tracked_at_sample": during["live"],
        "bytes_per_tracked_subtask": round((during["rss_bytes"] - before["rss_bytes"]) / tracked),
        "live_after": after["live"],
        "bytes_left_per_finished_subtask": round((after["rss_bytes"] - before["rss_bytes"]) / n),
    }
    return rate, memory


def _latencies(system: System, group: AgentGroup, to: str, trace: str) -> dict[str, float]:
    direct, supervised = [], []
    actor = group.actors[0]
    for i in range(LATENCY_SAMPLES):
        began = time.perf_counter()
        ray.get(actor.handle.remote(Ping(i=i), Envelope(trace_id=trace)))
        direct.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        system.supervisor.submit(Ping(i=i), to=to, expect=Pong).result()
        supervised.append((time.perf_counter() - began) * 1000)
    p50_d, p99_d = _pct(direct, 50), _pct(direct, 99)
    p50_s, p99_s = _pct(supervised, 50), _pct(supervised, 99)
    return {
        "direct_p50_ms": p50_d, "direct_p99_ms": p99_d,
        "supervised_p50_ms": p50_s, "supervised_p99_ms": p99_s,
        "added_p50_ms": round(p50_s - p50_d, 3), "added_p99_ms": round(p99_s - p99_d, 3),
        "added_p50_over_direct_p50": round((p50_s - p50_d) / p50_d, 2),
    }  # fmt: skip


def _pct(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1] if q < 100 else max(values), 3)


def _measure(system: System, sizes: tuple[int, ...]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    memory = {}
    latency: dict[str, float] = {}
    for replicas in REPLICAS:
        name = f"noop{replicas}"
        group = system.agent(NoopAgent, name=name, replicas=replicas)
        system.supervisor.submit(Ping(i=0), to=name, expect=Pong).result()  # warm up
        _direct(group, 200, system.trace_id)
        if replicas == 1:
            latency = _latencies(system, group, name, system.trace_id)
        for n in sizes:
            step = len(rows)
            progress_bar(
                step, len(REPLICAS) * len(sizes), f"bench supervisor: {replicas} agents, n={n}"
            )
            direct = _direct(group, n, system.trace_id)
            supervised, mem = _supervised(system, name, n)
            rows.append({
                "n": n, "agents": replicas, "direct_per_s": round(direct),
                "supervised_per_s": round(supervised), "ratio": round(supervised / direct, 2),
            })  # fmt: skip
            memory[f"n={n},agents={replicas}"] = mem
            _log(f"n={n} agents={replicas}: direct {direct:.0f}/s, supervised {supervised:.0f}/s")
    return {"throughput": rows, "latency": latency, "memory": memory}


def _verdict(document: dict[str, Any]) -> dict[str, Any]:
    worst = min(row["ratio"] for row in document["throughput"])
    added = document["latency"]["added_p50_over_direct_p50"]
    left = max(m["live_after"] for m in document["memory"].values())
    return {
        "targets": TARGETS,
        "throughput_ratio_worst": worst,
        "throughput_met": worst >= TARGETS["throughput_ratio_min"],
        "added_p50_met": added <= TARGETS["added_p50_over_direct_p50_max"],
        "finished_subtasks_left_in_memory": left,
        "memory_bounded": left == 0,
    }


def run_bench(as_json: bool, quick: bool, out: str | None) -> int:
    """Run the benchmark on a fresh local Ray and report it.

    Returns:
        0, whether or not targets are met (the report says which).
    """
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="agentcast-bench-", ignore_cleanup_errors=True) as tmp,
        System.start(tmp, namespace=f"bench-{uuid.uuid4().hex[:8]}", dashboard=False) as system,
    ):
        document = _measure(system, QUICK_SIZES if quick else SIZES)
    document["verdict"] = _verdict(document)
    document["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = json.dumps(document, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    emit(text if as_json else _table(document))
    return 0


def _table(document: dict[str, Any]) -> str:
    lines = [f"{'n':>6} {'agents':>6} {'direct/s':>9} {'supervised/s':>12} {'ratio':>6}"]
    for row in document["throughput"]:
        lines.append(
            f"{row['n']:>6} {row['agents']:>6} {row['direct_per_s']:>9} "
            f"{row['supervised_per_s']:>12} {row['ratio']:>6}"
        )
    lines.append(json.dumps(document["latency"]))
    lines.append(json.dumps(document["verdict"]))
    return "\n".join(lines)


def _log(text: str) -> None:
    note(text)
