"""The CPU rows of ``agentcast bench budget``: what a leased call costs the agent's process.

Wall-clock rows through Ray move with the machine's load; the CPU a call costs its own
process does not, or far less. So this section runs in the benchmark's process, without Ray:
a ``BudgetCore`` on a real SQLite file behind an in-process link (``CoreLink``), one process
meter, and for 1 and 8 agents a zero-latency ``ScriptedModel`` per agent, called raw
(``unmetered``) or through a leased ``MeteredModel`` (``lease``). Each agent is a coroutine
running under a task context of its own run, as a handler does, so a leased call pays what
it pays inside an agent (the run, the constraints, the provenance note). The two modes take
turns (A/B/A/B) for ``rounds`` rounds after a warm-up round, each round timed by
``time.process_time``; a mode's figure is its best round (and its median is reported), and
the ratio is unmetered CPU per call over leased CPU per call: the throughput a saturated
core would give leased calls against unmetered ones.

Every leased call must be counted: after the rounds the meter settles everything, and the
calls the budget's books hold for each run are reported beside the calls made.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from policies import BudgetPolicy
from runtime import Envelope, Message, ScriptedModel, new_trace_id

from ..._agent import derived
from ..._agent.agent import TaskContext, current_run, current_task
from ..._budget.core import BudgetCore
from ..._budget.local_link import CoreLink
from ..._budget.meter import Meter
from ..._budget.metered_model import MeteredModel

CPU_AGENT_COUNTS = (1, 8)
CPU_MODES = ("unmetered", "lease")
HELLO = [Message(role="user", content="hello")]


def cpu_rows(*, calls: int, rounds: int) -> list[dict[str, Any]]:
    """One row per agent count in ``CPU_AGENT_COUNTS``; ``calls`` calls per round in all
    (split between the agents), ``rounds`` rounds per mode."""
    return [asyncio.run(_agents_row(n, calls, rounds)) for n in CPU_AGENT_COUNTS]


async def _agents_row(n: int, calls: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        core = BudgetCore(Path(root), BudgetPolicy())
        try:
            return await _measure(core, n, calls, rounds)
        finally:
            core.close()


async def _measure(core: BudgetCore, n: int, calls: int, rounds: int) -> dict[str, Any]:
    link = CoreLink(core)
    meter = Meter(link, holder="bench:0")  # type: ignore[arg-type]
    inners = [ScriptedModel() for _ in range(n)]
    leased = [MeteredModel(m, meter, agent=f"a{i}", run=current_run) for i, m in enumerate(inners)]
    agents: dict[str, list[Any]] = {"unmetered": list(inners), "lease": list(leased)}
    runs = [new_trace_id() for _ in range(n)]
    each = max(1, calls // n)
    us: dict[str, list[float]] = {mode: [] for mode in CPU_MODES}
    for attempt in range(rounds + 1):  # the first round warms up: leases reach their size
        for mode in CPU_MODES:
            spent = await _round(agents[mode], runs, each)
            if attempt:
                us[mode].append(spent / (each * n) * 1e6)
    await meter.flush()
    counted = sum(core.book.spent.get((run, f"a{i}", "scripted"), {}).get("calls", 0.0)
                  for i, run in enumerate(runs))  # fmt: skip
    best = {mode: round(min(us[mode]), 3) for mode in CPU_MODES}
    median = {mode: round(statistics.median(us[mode]), 3) for mode in CPU_MODES}
    return {
        "agents": n, "rounds": rounds, "calls_per_round": each * n,
        "unmetered_us_best": best["unmetered"], "lease_us_best": best["lease"],
        "unmetered_us_median": median["unmetered"], "lease_us_median": median["lease"],
        "ratio_best": round(best["unmetered"] / best["lease"], 3),
        "ratio_median": round(median["unmetered"] / median["lease"], 3),
        "leased_calls": each * n * (rounds + 1), "counted_calls": int(counted),
        "budget_calls": len(link.calls),
    }  # fmt: skip


async def _round(models: list[Any], runs: list[str], each: int) -> float:
    """The CPU seconds of ``each`` sequential calls by every model, one coroutine each."""
    gc.collect()
    started = time.process_time()
    agents = (_agent(model, run, each) for model, run in zip(models, runs, strict=True))
    await asyncio.gather(*agents)
    return time.process_time() - started


async def _agent(model: Any, run: str, each: int) -> None:
    """``each`` calls, as a handler of ``run`` makes them."""
    envelope = Envelope(trace_id=run)
    token, tracking = current_task.set(TaskContext(envelope)), derived.begin(envelope)
    try:
        for _ in range(each):
            await model.complete(HELLO, max_tokens=8)
    finally:
        derived.end(tracking)
        current_task.reset(token)
