"""``agentcast bench agents``: how many agents one machine holds, pooled and dedicated.

For each row a fresh system starts N agents (pooled: many to a host actor; dedicated: a
Ray actor each, the plain Ray way) and the benchmark reports the time to start them, the
memory per agent (PSS of the processes that run them, from ``/proc/<pid>/smaps_rollup``;
for pooled agents beyond the base of as many empty hosts, measured in the same run), that
every agent answers a direct call, and the throughput of subtasks through the supervisor
with all of them alive, side by side with direct Ray calls to the same agents.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel

from policies import HostPolicy
from runtime import Envelope, start_local_ray

from ..._agent.agent import Agent, handler
from ..._agent.group import AgentGroup
from ..._agent.host import CONTROL_GROUP
from ..._agent.pool_host import PoolHost
from ..._system import System
from ..output import emit

POOLED = (100, 1_000, 10_000)
DEDICATED = (10, 50)
QUICK_POOLED = (100, 300)
QUICK_DEDICATED = (2,)
SUBTASKS, QUICK_SUBTASKS = 2_000, 200
HOSTS = HostPolicy(agents_per_host=250)
TARGETS = {"pooled_mb_per_agent_max": 5.0, "start_1000_s_max": 30.0, "pooled_10000_served": True}


class Hello(BaseModel):
    i: int


class Where(BaseModel):
    i: int
    pid: int


class PidAgent(Agent):
    """Answers at once, with the process it runs in."""

    @handler
    async def where(self, hello: Hello) -> Where:
        return Where(i=hello.i, pid=os.getpid())


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _empty_host_pss(namespace: str) -> int:
    """The PSS of a host with no agent: the base every host pays."""
    remote: Any = ray.remote(concurrency_groups={CONTROL_GROUP: 1})  # type: ignore[call-overload]
    host = remote(PoolHost).options(namespace=namespace, num_cpus=0)
    actor: Any = host.remote("agent-host:empty", namespace, persist=False)
    try:
        pid = int(ray.get(actor.status.remote(), timeout=120)["pid"])
        return _pss_bytes(pid)
    finally:
        ray.kill(actor, no_restart=True)


def _serve_all(group: AgentGroup, n: int, trace: str) -> tuple[int, set[int], float]:
    """One direct call to every agent: how many answered, their processes, calls/s."""
    began = time.perf_counter()
    refs = [group.call(Hello(i=i), replica=i, envelope=Envelope(trace_id=trace)) for i in range(n)]
    answers = ray.get(refs, timeout=600)
    rate = n / (time.perf_counter() - began)
    return sum(a.i == i for i, a in enumerate(answers)), {a.pid for a in answers}, rate


def _supervised(system: System, name: str, count: int) -> float:
    supervisor = system.supervisor
    supervisor.submit(Hello(i=-1), to=name, expect=Where).result()  # found its replicas
    began = time.perf_counter()
    handles = [supervisor.submit(Hello(i=i), to=name, expect=Where) for i in range(count)]
    outcomes = ray.get([h.ref for h in handles], timeout=600)
    if any(o.error is not None for o in outcomes):
        raise RuntimeError("a subtask of the agents benchmark failed")
    return count / (time.perf_counter() - began)


def _row(root: Path, placement: str, n: int, subtasks: int, base: int) -> dict[str, Any]:
    namespace = f"bench-agents-{uuid.uuid4().hex[:8]}"
    with System.start(root / namespace, namespace=namespace, dashboard=False) as system:
        began = time.perf_counter()
        hosts = HOSTS if placement == "pooled" else None
        group = system.agent(PidAgent, name="a", replicas=n, placement=placement, hosts=hosts)  # type: ignore[arg-type]
        start_s = time.perf_counter() - began
        served, pids, direct = _serve_all(group, n, system.trace_id)
        total = sum(_pss_bytes(pid) for pid in pids)
        beyond = total - (base * len(pids) if placement == "pooled" else 0)
        supervised = _supervised(system, "a", subtasks)
    row = {
        "placement": placement, "agents": n, "processes": len(pids),
        "start_s": round(start_s, 2), "served": served,
        "pss_mb_total": round(total / 2**20, 1),
        "pss_mb_per_agent": round(total / n / 2**20, 3),
        "direct_calls_per_s": round(direct), "supervised_per_s": round(supervised),
        "supervised_over_direct": round(supervised / direct, 2), "subtasks": subtasks,
    }  # fmt: skip
    if placement == "pooled":
        row["pss_mb_per_agent_beyond_base"] = round(beyond / n / 2**20, 3)
    _log(json.dumps(row))
    return row


def _verdict(rows: list[dict[str, Any]], base: int) -> dict[str, Any]:
    pooled = {r["agents"]: r for r in rows if r["placement"] == "pooled"}
    thousand = pooled.get(1_000) or pooled[max(pooled)]
    biggest = pooled[max(pooled)]
    return {
        "targets": TARGETS, "empty_host_pss_mb": round(base / 2**20, 1),
        "pooled_row_judged": thousand["agents"],
        "pooled_mb_per_agent": thousand["pss_mb_per_agent_beyond_base"],
        "memory_met": thousand["pss_mb_per_agent_beyond_base"] <= TARGETS[
            "pooled_mb_per_agent_max"
        ],
        "start_s": thousand["start_s"],
        "start_met": thousand["start_s"] < TARGETS["start_1000_s_max"],
        "largest_pooled": biggest["agents"],
        "largest_all_served": biggest["served"] == biggest["agents"],
    }  # fmt: skip


def run_bench(as_json: bool, quick: bool, out: str | None) -> int:
    """Run the benchmark on a fresh local Ray and report it.

    Returns:
        0, whether or not targets are met (the report says which).
    """
    began = time.perf_counter()
    subtasks = QUICK_SUBTASKS if quick else SUBTASKS
    plan = [("dedicated", n) for n in (QUICK_DEDICATED if quick else DEDICATED)] + [
        ("pooled", n) for n in (QUICK_POOLED if quick else POOLED)
    ]
    start_local_ray("bench-agents", None, False)  # each row's system joins it
    try:
        with tempfile.TemporaryDirectory(
            prefix="agentcast-bench-", ignore_cleanup_errors=True
        ) as tmp:
            base = _empty_host_pss("bench-agents-base")
            rows = [_row(Path(tmp), kind, n, min(subtasks, 10 * n), base) for kind, n in plan]
    finally:
        ray.shutdown()
    document: dict[str, Any] = {"rows": rows, "verdict": _verdict(rows, base)}
    document["elapsed_s"] = round(time.perf_counter() - began, 1)
    text = json.dumps(document, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    emit(text if as_json else _table(document))
    return 0


def _table(document: dict[str, Any]) -> str:
    lines = [f"{'placement':>9} {'agents':>6} {'start s':>8} {'MB/agent':>9} {'sup/s':>7}"]
    for row in document["rows"]:
        per = row.get("pss_mb_per_agent_beyond_base", row["pss_mb_per_agent"])
        lines.append(
            f"{row['placement']:>9} {row['agents']:>6} {row['start_s']:>8} {per:>9} "
            f"{row['supervised_per_s']:>7}"
        )
    lines.append(json.dumps(document["verdict"]))
    return "\n".join(lines)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
