"""``agentcast bench budget``: the cost of metering model calls through the budget actor.

One local Ray, one group of 32 client agents with a scripted model of zero latency. For
1, 8 and 32 agents at once, each agent makes a fixed number of sequential calls after a
warm-up (as many calls again for leases, so that they reach their steady size): unmetered
(the raw model), metered with a budget-actor call around every call (``Metering.PER_CALL``:
reserve, and a settle not waited for), and metered with leases (``Metering.LEASE``); the
unmetered and leased runs alternate three times and each keeps its best, since the load of
the machine moves meanwhile. ``--quick`` runs 1 and 8 agents only, the counts of the target.
A last row checks strict mode: all the agents (32) call until a cap of calls on their run
refuses them; nothing may be spent beyond the cap.

Before Ray starts, the CPU rows (``budget_cpu``): what a leased call costs the agent's own
process against an unmetered one, at 1 and 8 agents, in interleaved rounds timed by
``time.process_time`` (the wall-clock rows above move with the machine's load; these far
less). The target (0.9x) is judged on them; every leased call must be counted.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import ray
from pydantic import BaseModel

from policies import BudgetLimit, Dimension, Metering, Scope, ScopeKind
from runtime import BudgetExceededError, Envelope, Message, ScriptedModel, new_trace_id

from ..._agent.agent import Agent, handler
from ..._budget.meter import process_meter
from ..._budget.metered_model import MeteredModel
from ..._system import System
from ..output import emit, progress_bar
from .budget_cpu import cpu_rows
from .machine import machine

AGENT_COUNTS = (1, 8, 32)
QUICK_AGENT_COUNTS = (1, 8)  # the two counts of the target; 32 replicas take a minute to start
MODES = ("unmetered", "per_call", "lease")
REPEATS = 3
CPU_CALLS, CPU_ROUNDS = 20_000, 7  # per round, all agents together; rounds per mode
QUICK_CPU_CALLS, QUICK_CPU_ROUNDS = 2_000, 3
TARGETS = {
    "lease_vs_unmetered_cpu_min": 0.9,
    "lease_vs_unmetered_throughput_min": 0.9,
    "budget_calls_per_model_call_max": 1 / 50,
    "strict_overspend": 0,
}


class BenchRun(BaseModel):
    mode: str
    calls: int
    start_at: float
    until_refused: bool = False


class BenchOut(BaseModel):
    calls: int
    started: float
    finished: float
    budget_calls: int
    refused: int


class BudgetBenchClient(Agent):
    """Makes ``calls`` sequential model calls in the given metering mode."""

    @handler
    async def run(self, message: BenchRun) -> BenchOut:
        inner = self._runtime.model
        meter = process_meter(self.namespace, f"{self.name}:{self.replica}")
        model: Any = inner
        if message.mode != "unmetered":
            mode = Metering.PER_CALL if message.mode == "per_call" else Metering.LEASE
            model = MeteredModel(inner, meter, agent=self.name, run=lambda: self.task.trace_id,
                                 metering=mode)  # fmt: skip
            await meter.link.policy()
        messages = [Message(role="user", content="hello")]
        while time.time() < message.start_at:
            time.sleep(min(0.001, max(0.0, message.start_at - time.time())))
        before, made, refused = meter.link.calls, 0, 0
        started = time.perf_counter()
        for _ in range(message.calls):
            try:
                await model.complete(messages, max_tokens=8)
                made += 1
            except BudgetExceededError:
                refused += 1
                if message.until_refused:
                    break
        finished = time.perf_counter()
        budget_calls = meter.link.calls - before
        if message.until_refused:
            await meter.flush()
        return BenchOut(calls=made, started=started, finished=finished,
                        budget_calls=budget_calls, refused=refused)  # fmt: skip


def _run(system: System, group: Any, n: int, message: BenchRun, trace: str) -> list[BenchOut]:
    envelope = Envelope(trace_id=trace)
    refs = [group.call(message, envelope=envelope, replica=i) for i in range(n)]
    outs: list[BenchOut] = ray.get(refs)
    return outs


def _rows(system: System, group: Any, n: int, calls: int) -> list[dict[str, Any]]:
    """The rows of ``n`` agents. The machine's load moves while the benchmark runs, so the
    unmetered and leased runs alternate ``REPEATS`` times and each keeps its best; the
    budget-actor calls are counted over all of its runs."""
    traces = {mode: new_trace_id() for mode in MODES}
    for mode in MODES:
        # Leases start at ``lease_calls`` and grow while allowances run out before the
        # next one arrives: warm up until they are at their steady size. Per-call
        # metering has nothing to warm up but its connection.
        warm_up = calls if mode == "lease" else max(10, calls // 5)
        _run(system, group, n, BenchRun(mode=mode, calls=warm_up, start_at=0), traces[mode])
    runs: dict[str, list[list[BenchOut]]] = {mode: [] for mode in MODES}
    for attempt in range(REPEATS):
        for mode in MODES:
            if mode == "per_call" and attempt > 0:
                continue  # slow and steady: once is enough
            message = BenchRun(mode=mode, calls=calls, start_at=time.time() + 0.3)
            runs[mode].append(_run(system, group, n, message, traces[mode]))
    return [_row(mode, n, runs[mode]) for mode in MODES]


def _row(mode: str, n: int, runs: list[list[BenchOut]]) -> dict[str, Any]:
    def wall(outs: list[BenchOut]) -> float:
        return max(o.finished for o in outs) - min(o.started for o in outs)

    outs = min(runs, key=wall)
    total = sum(o.calls for o in outs)
    per_call_us = sum((o.finished - o.started) / max(1, o.calls) for o in outs) / n * 1e6
    budget_calls = sum(o.budget_calls for run in runs for o in run)
    model_calls = sum(o.calls for run in runs for o in run)
    return {
        "mode": mode, "agents": n, "model_calls": total, "wall_s": round(wall(outs), 4),
        "throughput_calls_per_s": round(total / wall(outs), 1),
        "mean_call_us": round(per_call_us, 1), "runs": len(runs),
        "budget_calls": budget_calls,
        "budget_calls_per_model_call": round(budget_calls / model_calls, 5),
    }  # fmt: skip


def _strict_row(system: System, group: Any, cap: int, agents: int) -> dict[str, Any]:
    trace = new_trace_id()
    limit = BudgetLimit(scope=Scope(kind=ScopeKind.RUN, key=trace), dimension=Dimension.CALLS,
                        cap=cap)  # fmt: skip
    system.budget.declare(limit)
    message = BenchRun(mode="lease", calls=cap, start_at=time.time() + 0.3, until_refused=True)
    outs = _run(system, group, agents, message, trace)
    made = sum(o.calls for o in outs)
    ledger = system.budget.status().ledger(scope="run", key=trace, dimension="calls")
    return {
        "mode": "lease", "agents": agents, "cap_calls": cap, "model_calls_made": made,
        "committed": ledger.committed, "outstanding": ledger.outstanding,
        "refused_agents": sum(1 for o in outs if o.refused),
        "overspend": max(0.0, ledger.committed + ledger.outstanding - cap, made - cap),
    }  # fmt: skip


def run_bench(*, as_json: bool, quick: bool, out: str | None) -> int:
    """Run every row and print a table (or one JSON document). Returns the exit code."""
    calls = 200 if quick else 2000
    counts = QUICK_AGENT_COUNTS if quick else AGENT_COUNTS
    progress_bar(0, len(counts) + 2, "bench budget: CPU per call")
    cpu = cpu_rows(calls=QUICK_CPU_CALLS if quick else CPU_CALLS,
                   rounds=QUICK_CPU_ROUNDS if quick else CPU_ROUNDS)  # fmt: skip
    with tempfile.TemporaryDirectory() as storage:
        system = System.start(storage, namespace=f"bench-budget-{os.getpid()}", dashboard=False)
        try:
            group = system.agent(BudgetBenchClient, name="clients", replicas=max(counts),
                                 model=ScriptedModel())  # fmt: skip
            rows = []
            for i, n in enumerate(counts):
                progress_bar(i + 1, len(counts) + 2, f"bench budget: {n} agents")
                rows += _rows(system, group, n, calls)
            progress_bar(len(counts) + 1, len(counts) + 2, "bench budget: strict caps")
            strict = _strict_row(system, group, cap=calls * 4, agents=max(counts))
        finally:
            system.shutdown()
    report = _report(rows, strict, cpu, calls, counts)
    text = json.dumps(report, indent=2)
    if out:
        with open(out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    emit(text if as_json else _table(report))
    return 0


def _report(
    rows: list[dict[str, Any]],
    strict: dict[str, Any],
    cpu: list[dict[str, Any]],
    calls: int,
    counts: tuple[int, ...],
) -> dict[str, Any]:
    by = {(r["mode"], r["agents"]): r for r in rows}
    ratios = {
        n: round(by[("lease", n)]["throughput_calls_per_s"]
                 / by[("unmetered", n)]["throughput_calls_per_s"], 3)
        for n in counts
    }  # fmt: skip
    steady = max(by[("lease", n)]["budget_calls_per_model_call"] for n in counts)
    cpu_ratios = {r["agents"]: r["ratio_best"] for r in cpu}
    uncounted = sum(r["leased_calls"] - r["counted_calls"] for r in cpu)
    return {
        "benchmark": "budget", "calls_per_agent": calls, **machine(),
        "cpu": cpu, "rows": rows, "strict": strict, "targets": TARGETS,
        "results": {
            "lease_vs_unmetered_cpu": cpu_ratios,
            "cpu_uncounted_calls": uncounted,
            "lease_vs_unmetered_throughput": ratios,
            "lease_budget_calls_per_model_call_max": steady,
            "strict_overspend": strict["overspend"],
            "met": {
                "lease_cpu": min(cpu_ratios.values()) >= TARGETS["lease_vs_unmetered_cpu_min"],
                "every_call_counted": uncounted == 0,
                "lease_throughput": min(ratios.values())
                >= TARGETS["lease_vs_unmetered_throughput_min"],
                "budget_calls": steady <= TARGETS["budget_calls_per_model_call_max"],
                "strict_overspend": strict["overspend"] == 0,
            },
        },
    }  # fmt: skip


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'mode':<10}{'agents':>7}{'calls/s':>12}{'us/call':>10}{'budget/model':>14}"]
    for r in report["rows"]:
        lines.append(
            f"{r['mode']:<10}{r['agents']:>7}{r['throughput_calls_per_s']:>12,.0f}"
            f"{r['mean_call_us']:>10.1f}{r['budget_calls_per_model_call']:>14.4f}"
        )
    for r in report["cpu"]:
        lines.append(
            f"cpu, {r['agents']} agents: unmetered {r['unmetered_us_best']:.2f} us, "
            f"lease {r['lease_us_best']:.2f} us per call ({r['ratio_best']:.3f}x)"
        )
    lines.append(f"strict: {json.dumps(report['strict'])}")
    lines.append(f"results: {json.dumps(report['results'])}")
    return "\n".join(lines)
