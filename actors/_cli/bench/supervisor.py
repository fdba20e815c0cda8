"""``agentcast bench supervisor``: subtasks of a no-op agent called directly with plain
Ray, against the same subtasks through the supervisor.

For N in (1,000, 10,000) and 1 or 8 agent replicas: throughput of each way, with every
call sent at once and awaited together, the supervised way twice: each subtask submitted
alone (one call to the supervisor each) and all N in one ``submit_many`` call whose outcomes
stream back; with the actor calls each way makes per subtask. Then the latency of one call
at a time (p50, p99) and what the supervisor adds; then the supervisor's memory per subtask
in flight, at a controlled number in flight (``supervisor_memory``), and what a finished one
leaves behind (its history is in storage, not memory); and the CPU per subtask of each
process on the path, each way, with one replica (``supervisor_cpu``).
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
from .supervisor_cpu import actor_pid, cpu_per_subtask, supervisor_pid
from .supervisor_memory import HELD, QUICK_HELD, measure_memory

SIZES = (1_000, 10_000)
# Quick (what CI runs): the report's shape and call counts at two small sizes.
QUICK_SIZES = (200, 500)
REPLICAS = (1, 8)
LATENCY_SAMPLES, QUICK_LATENCY_SAMPLES = 300, 100
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


def _supervised(system: System, to: str, n: int) -> float:
    supervisor = system.supervisor
    began = time.perf_counter()
    handles = [supervisor.submit(Ping(i=i), to=to, expect=Pong) for i in range(n)]
    outcomes = ray.get([h.ref for h in handles])
    rate = n / (time.perf_counter() - began)
    if any(o.error is not None for o in outcomes):
        raise RuntimeError("a no-op subtask failed")
    return rate


def _batched(system: System, to: str, n: int) -> tuple[float, int]:
    """The rate of N subtasks sent in one ``submit_many``, and the items streamed back."""
    began = time.perf_counter()
    handles = system.supervisor.submit_many([Ping(i=i) for i in range(n)], to=to, expect=Pong)
    outputs = [h.result() for h in handles]
    rate = n / (time.perf_counter() - began)
    if outputs != [Pong(i=i) for i in range(n)]:
        raise RuntimeError("a no-op subtask answered wrong")
    return rate, handles[0]._calls.stream.items if handles[0]._calls.stream else 0


def _latencies(system: System, group: AgentGroup, to: str, samples: int) -> dict[str, float]:
    direct, supervised = [], []
    actor, trace = group.actors[0], system.trace_id
    for i in range(samples):
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


def _measure(
    system: System, sizes: tuple[int, ...], held: int, samples: int = LATENCY_SAMPLES
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    latency: dict[str, float] = {}
    cpu: dict[str, dict[str, float]] = {}
    for replicas in REPLICAS:
        name = f"noop{replicas}"
        group = system.agent(NoopAgent, name=name, replicas=replicas)
        system.supervisor.submit(Ping(i=0), to=name, expect=Pong).result()  # warm up
        _direct(group, 200, system.trace_id)
        _batched(system, name, 200)
        if replicas == 1:
            latency = _latencies(system, group, name, samples)
            cpu = _cpu(system, group, name, sizes[0])
        for n in sizes:
            progress_bar(
                len(rows), len(REPLICAS) * len(sizes), f"bench supervisor: {replicas} agents, n={n}"
            )
            rows.append(_row(system, group, name, n))
    memory = measure_memory(system, held)
    return {"throughput": rows, "latency": latency, "cpu_us_per_subtask": cpu, "memory": memory}


def _cpu(system: System, group: AgentGroup, name: str, n: int) -> dict[str, dict[str, float]]:
    """CPU per subtask of the caller, the supervisor and the agent, each way."""
    pids = {"supervisor": supervisor_pid(system), "agent": actor_pid(group.actors[0])}
    return cpu_per_subtask({
        "direct": lambda k: _direct(group, k, system.trace_id),
        "supervised": lambda k: _supervised(system, name, k),
        "batched": lambda k: _batched(system, name, k),
    }, pids, n)  # fmt: skip


def _row(system: System, group: AgentGroup, name: str, n: int) -> dict[str, Any]:
    direct = _direct(group, n, system.trace_id)
    supervised = _supervised(system, name, n)
    batched, items = _batched(system, name, n)
    _log(f"n={n} agents={len(group.actors)}: direct {direct:.0f}/s, "
         f"supervised {supervised:.0f}/s, batched {batched:.0f}/s")  # fmt: skip
    return {
        "n": n, "agents": len(group.actors), "direct_per_s": round(direct),
        "supervised_per_s": round(supervised), "ratio": round(supervised / direct, 2),
        "batched_per_s": round(batched), "batched_ratio": round(batched / direct, 2),
        "calls_per_subtask": {
            "direct": 1.0,
            "supervised": {"caller": 1.0, "agent": 1.0},
            "batched": {"caller": round(1 / n, 6), "streamed_items": round(items / n, 4),
                        "agent": 1.0},
        },
    }  # fmt: skip


def _verdict(document: dict[str, Any]) -> dict[str, Any]:
    worst = min(row["ratio"] for row in document["throughput"])
    batched = min(row["batched_ratio"] for row in document["throughput"])
    added = document["latency"]["added_p50_over_direct_p50"]
    left = max(m["live_after"] for m in document["memory"].values())
    return {
        "targets": TARGETS,
        "throughput_ratio_worst": worst,
        "batched_ratio_worst": batched,
        "throughput_met": batched >= TARGETS["throughput_ratio_min"],
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
        document = (
            _measure(system, QUICK_SIZES, QUICK_HELD, QUICK_LATENCY_SAMPLES)
            if quick
            else _measure(system, SIZES, HELD)
        )
    document["verdict"] = _verdict(document)
    document["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = json.dumps(document, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    emit(text if as_json else _table(document))
    return 0


def _table(document: dict[str, Any]) -> str:
    lines = [
        f"{'n':>6} {'agents':>6} {'direct/s':>9} {'supervised/s':>12} {'ratio':>6} "
        f"{'batched/s':>9} {'ratio':>6}"
    ]
    for row in document["throughput"]:
        lines.append(
            f"{row['n']:>6} {row['agents']:>6} {row['direct_per_s']:>9} "
            f"{row['supervised_per_s']:>12} {row['ratio']:>6} "
            f"{row['batched_per_s']:>9} {row['batched_ratio']:>6}"
        )
    lines.append(json.dumps(document["latency"]))
    lines.append(json.dumps(document["cpu_us_per_subtask"]))
    lines.append(json.dumps(document["memory"]))
    lines.append(json.dumps(document["verdict"]))
    return "\n".join(lines)


def _log(text: str) -> None:
    note(text)
