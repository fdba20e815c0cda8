"""The supervisor bench's CPU rows: CPU time per subtask of each process on its path.

On a machine whose cores are all busy, throughput is CPU per subtask: a direct call costs
the caller and the agent; a supervised one costs the caller, the supervisor and the agent.
Each process's CPU (user + system, from ``/proc/<pid>/stat``; the caller's from
``time.process_time``) is read before and after N no-op subtasks to one replica, each way,
and divided by N. Linux only: elsewhere the rows are empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import ray

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def actor_pid(actor: Any) -> int:
    """The process id of a dedicated actor (from the GCS's actor table: the state API
    needs the dashboard, which the bench does not start)."""
    from ray._private.state import actors

    pid = actors(actor._actor_id.hex()).get("Pid")
    if not pid:
        raise RuntimeError("actor process not found")
    return int(pid)


def cpu_per_subtask(
    ways: dict[str, Callable[[int], Any]], pids: dict[str, int], n: int
) -> dict[str, dict[str, float]]:
    """Microseconds of CPU per subtask, for each way and each process (``caller`` is this
    one), after running ``way(n)``; with ``total`` the sum of the processes."""
    rows: dict[str, dict[str, float]] = {}
    if not os.path.exists("/proc/self/stat"):
        return rows
    for way, run in ways.items():
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        caller = time.process_time()
        run(n)
        spent = {name: cpu_s(pid) - before[name] for name, pid in pids.items()}
        spent["caller"] = time.process_time() - caller
        row: dict[str, float] = {name: round(s * 1e6 / n) for name, s in spent.items()}
        row["total"] = sum(row.values())
        rows[way] = row
    return rows


def supervisor_pid(system: Any) -> int:
    """The supervisor actor's process id."""
    return int(ray.get(system.supervisor.actor.stats.remote(), timeout=60)["pid"])
