"""``agentcast bench soak``: a long run through one system, to show that nothing grows.

One local Ray and one system whose retention windows are short (``--quick``: 2 s; full:
30 s), so that the run reaches the steady state where retention deletes as much as the
load adds. In rounds, the driver makes resource writes (``write_many`` batches of slots
overwritten in turn, so the state itself stays the same size), supervised subtasks of a
no-op agent, and metered calls of a scripted model (lease metering, one run per round).
After each round it samples, for each state actor (resource, supervisor, budget): the
memory of its process (resident, ``Rss``, and unique to it, ``Private_*``: what its death
would free; from ``/proc/<pid>/smaps_rollup``), the time it takes to serve again after a
kill (Ray restarts it), and the bytes of its SQLite files (with the WAL, after a
checkpoint). The verdict compares the storage and memory at the end with mid-run.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel

from policies import (
    BudgetPolicy,
    BudgetRetention,
    ResourcePolicy,
    ResourceRetention,
    SupervisorRetention,
)
from runtime import (
    Envelope,
    Message,
    ScriptedModel,
    connect,
    lookup,
    new_trace_id,
    resource_actor_name,
    truncate_wal,
)

from ..._agent.agent import Agent, handler
from ..._budget.client import BUDGET_ACTOR
from ..._resource.declare import Resource, read, write
from ..._resource.handle import Write
from ..._supervisor.host import SUPERVISOR_ACTOR
from ..._system import System
from ..output import emit, note, progress_bar
from .supervisor import NoopAgent, Ping, Pong

SLOTS = 1_000
CALLERS = 4
# Storage counts as flat when the end is at most this much larger than mid-run, plus
# SLACK_MB (SQLite grows its files by pages and keeps its WAL at its largest size).
TOLERANCE = 0.25
SLACK_MB = 0.25
_SERVE_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """How much a soak does, in how many rounds, with which retention window."""

    writes: int
    subtasks: int
    calls: int
    rounds: int
    window_s: float
    write_batch: int = 2_000
    subtask_batch: int = 2_000
    resource_snapshot_every: int = 20_000
    budget_snapshot_every: int = 1_000
    restart_every: int = 1  # kill and time the state actors after every this many rounds


# Five rounds per incarnation: long enough to tell a plateau of memory from growth.
FULL = SoakPlan(
    writes=1_000_000, subtasks=100_000, calls=100_000, rounds=10, window_s=30.0, restart_every=5
)
QUICK = SoakPlan(
    writes=20_000, subtasks=2_000, calls=2_000, rounds=4, window_s=2.0, write_batch=1_000,
    subtask_batch=500, resource_snapshot_every=2_000, budget_snapshot_every=20,
    restart_every=2,
)  # fmt: skip


class Slots(Resource):
    """A fixed number of slots, overwritten in turn."""

    @write
    def put(self, state: dict[str, int], slot: str, value: int) -> int:
        state[slot] = value
        return value

    @read
    def size(self, state: dict[str, int]) -> int:
        return len(state)


class Calls(BaseModel):
    n: int


class Called(BaseModel):
    n: int


class Caller(Agent):
    """Makes ``n`` sequential calls of its (metered) model."""

    @handler
    async def call(self, job: Calls) -> Called:
        messages = [Message(role="user", content="hello")]
        for _ in range(job.n):
            await self.model.complete(messages, max_tokens=8)
        return Called(n=job.n)


def _policies(plan: SoakPlan) -> tuple[ResourcePolicy, SupervisorRetention, BudgetPolicy]:
    window = timedelta(seconds=plan.window_s)
    often = timedelta(seconds=min(1.0, plan.window_s / 2))
    resource = ResourcePolicy(
        snapshot_every=plan.resource_snapshot_every,
        retention=ResourceRetention(audit=window, idempotency_keys=window, compact_every=often),
    )
    supervisor = SupervisorRetention(
        subtasks=window, handoffs=window, events=window, escalations=window, prune_every=often
    )
    budget = BudgetPolicy(
        retention=BudgetRetention(closed_grants=window, runs=window, log=window,
                                  snapshot_every=plan.budget_snapshot_every),
    )  # fmt: skip
    return resource, supervisor, budget


def _pid_of(instance: Any) -> int:
    import os

    return os.getpid()


def _memory_bytes(pid: int) -> dict[str, int]:
    """Memory of a process on this machine: ``rss`` (resident) and ``uss`` (resident and
    its own, not shared with other processes); zeros if it is gone."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                name, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    fields[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"rss": fields.get("Rss", 0), "uss": private}


class StateActors:
    """The three state actors of one system: their processes, files, and restarts."""

    def __init__(self, system: System, resource: str) -> None:
        self._namespace = system.namespace
        self._names = {
            "resource": resource_actor_name(resource), "supervisor": SUPERVISOR_ACTOR,
            "budget": BUDGET_ACTOR,
        }  # fmt: skip
        self._serve = {"resource": "status", "supervisor": "overview", "budget": "status"}
        root = system.root
        assert isinstance(root, Path), "the soak measures SQLite files"
        self._files = {
            "resource": root / "resources" / f"{resource}.sqlite",
            "supervisor": root / "supervisor.sqlite", "budget": root / "budget.sqlite",
        }  # fmt: skip

    def _actor(self, which: str) -> Any:
        return lookup(self._names[which], self._namespace)

    def _pid(self, actor: Any) -> int:
        pid: int = ray.get(actor.__ray_call__.remote(_pid_of), timeout=_SERVE_TIMEOUT_S)
        return pid

    def memory_bytes(self) -> dict[str, dict[str, int]]:
        """``rss`` and ``uss`` of each actor's process (see ``_memory_bytes``)."""
        return {which: _memory_bytes(self._pid(self._actor(which))) for which in self._names}

    def storage_bytes(self) -> dict[str, int]:
        """Bytes of each store's file and WAL, after a checkpoint: what the tables hold,
        not where the WAL happened to stand (each store cuts its WAL back after its own
        retention passes too)."""
        sizes = {}
        for which, path in self._files.items():
            with contextlib.closing(connect(path)) as conn:
                for _ in range(100):  # it never waits: try again if a commit is under way
                    if truncate_wal(conn):
                        break
                    time.sleep(0.01)
            parts = [path, path.with_name(path.name + "-wal")]
            sizes[which] = sum(p.stat().st_size for p in parts if p.exists())
        return sizes

    def restart_s(self) -> dict[str, float]:
        """Kill each actor (Ray restarts it) and time until it serves a call again."""
        return {which: self._restart(which) for which in self._names}

    def _restart(self, which: str) -> float:
        """From the kill to the first answer of a new process (the old one may still
        answer a call sent just after the kill)."""
        actor = self._actor(which)
        old = self._pid(actor)
        began = time.perf_counter()
        ray.kill(actor, no_restart=False)
        ends = began + _SERVE_TIMEOUT_S
        while time.perf_counter() < ends:
            try:
                if self._pid(actor) != old:
                    ray.get(getattr(actor, self._serve[which]).remote(), timeout=_SERVE_TIMEOUT_S)
                    return round(time.perf_counter() - began, 3)
            except Exception:  # killed and not back yet
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{which} did not serve again within {_SERVE_TIMEOUT_S} s")


class Load:
    """What one round sends through the system."""

    def __init__(self, system: System, plan: SoakPlan, policy: ResourcePolicy) -> None:
        self._plan = plan
        self._slots = system.resource(Slots, name="soak", policy=policy)
        self._supervisor = system.supervisor
        system.agent(NoopAgent, name="noop", replicas=2)
        self._callers = system.agent(Caller, name="callers", replicas=CALLERS,
                                     model=ScriptedModel())  # fmt: skip
        self.done = {"writes": 0, "subtasks": 0, "calls": 0}

    def round(self) -> None:
        plan = self._plan
        self._writes(plan.writes // plan.rounds)
        self._subtasks(plan.subtasks // plan.rounds)
        self._calls(plan.calls // plan.rounds)

    def _writes(self, n: int) -> None:
        start = self.done["writes"]
        for first in range(start, start + n, self._plan.write_batch):
            last = min(first + self._plan.write_batch, start + n)
            batch = [Write(op="put", args=(str(i % SLOTS), i)) for i in range(first, last)]
            if any(r.error is not None for r in self._slots.write_many(batch)):
                raise RuntimeError("a soak write failed")
        self.done["writes"] += n

    def _subtasks(self, n: int) -> None:
        for first in range(0, n, self._plan.subtask_batch):
            count = min(self._plan.subtask_batch, n - first)
            handles = [
                self._supervisor.submit(Ping(i=i), to="noop", expect=Pong) for i in range(count)
            ]
            if any(o.error is not None for o in ray.get([h.ref for h in handles])):
                raise RuntimeError("a soak subtask failed")
        self.done["subtasks"] += n

    def _calls(self, n: int) -> None:
        each, run = max(1, n // CALLERS), Envelope(trace_id=new_trace_id())  # a run per round
        refs = [self._callers.call(Calls(n=each), envelope=run, replica=i) for i in range(CALLERS)]
        self.done["calls"] += sum(c.n for c in ray.get(refs))


def soak(plan: SoakPlan) -> dict[str, Any]:
    """Run ``plan`` on a fresh local Ray; the samples and the verdict."""
    resource, supervisor, budget = _policies(plan)
    samples: list[dict[str, Any]] = []
    began = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="agentcast-soak-", ignore_cleanup_errors=True) as tmp,
        System.start(tmp, namespace=f"soak-{uuid.uuid4().hex[:8]}", dashboard=False,
                     budgets=budget) as system,
    ):  # fmt: skip
        system.supervise(retention=supervisor)
        load = Load(system, plan, resource)
        state = StateActors(system, "soak")
        for number in range(1, plan.rounds + 1):
            progress_bar(number - 1, plan.rounds, f"bench soak: round {number}")
            load.round()
            sample = _sample(number, began, load, state)
            if number % plan.restart_every == 0:
                sample["restart_s"] = state.restart_s()
            samples.append(sample)
            _log(json.dumps(sample))
    return {
        "benchmark": "soak", "plan": asdict(plan), "samples": samples,
        "verdict": _verdict(samples), "elapsed_s": round(time.perf_counter() - began, 1),
    }  # fmt: skip


def _sample(number: int, began: float, load: Load, state: StateActors) -> dict[str, Any]:
    """Counts so far, memory and storage of each state actor (restarts are added)."""
    elapsed = round(time.perf_counter() - began, 1)
    storage, memory = state.storage_bytes(), state.memory_bytes()
    return {
        "round": number, "elapsed_s": elapsed, **load.done,
        "rss_mb": {k: round(v["rss"] / 2**20, 1) for k, v in memory.items()},
        "uss_mb": {k: round(v["uss"] / 2**20, 1) for k, v in memory.items()},
        "storage_mb": {k: round(v / 2**20, 3) for k, v in storage.items()},
    }  # fmt: skip


def _verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Storage at the end over mid-run; memory at the end of the last incarnation over
    memory after its first round (a restart resets memory: growth shows within one)."""
    mid, end = samples[(len(samples) - 1) // 2], samples[-1]
    ratios = {
        which: round(end["storage_mb"][which] / max(mid["storage_mb"][which], 1e-6), 3)
        for which in end["storage_mb"]
    }
    flat = {
        which: end["storage_mb"][which] <= mid["storage_mb"][which] * (1 + TOLERANCE) + SLACK_MB
        for which in end["storage_mb"]
    }
    restarted = [i for i, s in enumerate(samples[:-1]) if "restart_s" in s]
    first = samples[restarted[-1] + 1 if restarted else 0]
    rss, uss = (
        {w: round(end[key][w] / max(first[key][w], 1e-6), 3) for w in end[key]}
        for key in ("rss_mb", "uss_mb")
    )
    return {
        "mid_round": mid["round"], "storage_end_over_mid": ratios, "tolerance": TOLERANCE,
        "slack_mb": SLACK_MB, "storage_flat": flat, "all_flat": all(flat.values()),
        "incarnation_from_round": first["round"], "rss_growth_in_incarnation": rss,
        "uss_growth_in_incarnation": uss,
        "memory_flat": {w: ratio <= 1 + TOLERANCE for w, ratio in uss.items()},
    }  # fmt: skip


def run_bench(*, as_json: bool, quick: bool, out: str | None) -> int:
    """Run the soak and report it (one JSON document with ``as_json``).

    Returns:
        0, whether or not storage stayed flat (the verdict says).
    """
    document = soak(QUICK if quick else FULL)
    text = json.dumps(document, indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    emit(text if as_json else _table(document))
    return 0


def _table(document: dict[str, Any]) -> str:
    head = ("round", "s", "writes", "rss MB r/s/b", "uss MB r/s/b", "storage MB r/s/b")
    lines = ["{:>5} {:>7} {:>9} {:>16} {:>16} {:>20}".format(*head)]
    for s in document["samples"]:
        rss, uss = ("/".join(f"{v:.0f}" for v in s[key].values()) for key in ("rss_mb", "uss_mb"))
        disk = "/".join(f"{v:.1f}" for v in s["storage_mb"].values())
        lines.append(
            f"{s['round']:>5} {s['elapsed_s']:>7} {s['writes']:>9} {rss:>16} {uss:>16} {disk:>20}"
        )
    lines.append(json.dumps(document["verdict"]))
    return "\n".join(lines)


def _log(text: str) -> None:
    note(text)
