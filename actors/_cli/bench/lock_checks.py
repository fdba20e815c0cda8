"""The two measurements of ``agentcast bench locks`` that are not throughput: how soon a
deadlock cycle is broken, and whether a holder paused past its TTL can still write."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from runtime import DeadlockError, StaleLeaseError

from ..._locks.client import LocksCalls
from ..._locks.held import HELD
from ..._locks.lease import lease_request
from ..._reconnect import run_blocking
from ..._system import System

_TTL = timedelta(seconds=30)
_WAIT = timedelta(seconds=60)


def _until(condition: Any, limit_s: float = 60.0) -> None:
    ends = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > ends:
            raise TimeoutError("the benchmark's scenario did not reach its next step")
        time.sleep(0.002)


def _one_cycle(system: System, i: int) -> float:
    """Owner A (a thread) holds ``a`` and waits for ``b``; owner B (this thread) holds
    ``b`` and asks for ``a``: the cycle closes with B's request, and B, the youngest
    waiter, gets ``DeadlockError``. Returns seconds from B's request to the error."""
    a, b = f"cycle:{i}:a", f"cycle:{i}:b"
    a_holds, b_holds = threading.Event(), threading.Event()

    def owner_a() -> None:
        with system.lease(a, ttl=_TTL, timeout=_WAIT):
            a_holds.set()
            b_holds.wait(60)
            with system.lease(b, ttl=_TTL, timeout=_WAIT):
                pass

    thread = threading.Thread(target=owner_a, daemon=True)
    thread.start()
    a_holds.wait(60)
    detected = float("inf")
    with system.lease(b, ttl=_TTL, timeout=_WAIT):
        b_holds.set()
        _until(lambda: system.locks.status().waiting == 1)
        asked = time.perf_counter()
        try:
            with system.lease(a, ttl=_TTL, timeout=_WAIT):
                pass
        except DeadlockError:
            detected = time.perf_counter() - asked
    thread.join(60)
    return detected


def detection_samples(system: System, samples: int, tick: timedelta) -> dict[str, Any]:
    """Cycles formed and broken ``samples`` times; each from its closing request to the
    victim's ``DeadlockError`` (a round trip through the locks actor included)."""
    found = [_one_cycle(system, i) * 1000 for i in range(samples)]
    tick_ms = tick.total_seconds() * 1000
    return {
        "tick_ms": tick_ms, "samples": len(found), "detection_ms": [round(f, 3) for f in found],
        "p50_ms": round(sorted(found)[len(found) // 2], 3), "max_ms": round(max(found), 3),
        "max_ticks": round(max(found) / tick_ms, 3),
        "measured": "from the request that closes the cycle to the victim's DeadlockError",
    }  # fmt: skip


def stale_writes(system: System, trials: int) -> dict[str, Any]:
    """A holder takes a short lease and stops renewing it (paused); the runtime expires it,
    a newer holder takes the key and writes, then the paused holder writes with its old
    token. Counts the paused holder's writes a resource applied (the target is none)."""
    calls = LocksCalls(lambda: system.locks.actor)
    counter = system.get_resource("locks-bench")
    applied = refused = 0
    for i in range(trials):
        key = f"stale:{i}"
        request = lease_request(
            (key,), owner=f"paused:{i}", agent="paused", ttl=timedelta(milliseconds=300),
            expected=None, shared=False, timeout=_WAIT,
        )  # fmt: skip
        grant = run_blocking(calls.acquire(request, _WAIT.total_seconds()), calls.clock)
        _until(lambda: system.locks.status().held == 0)  # expired by the runtime
        with system.lease(key, ttl=_TTL):
            counter.add(key, 1)
        reset = HELD.set(tuple(grant.tokens.items()))
        try:
            counter.add(key, 1)
            applied += 1
        except StaleLeaseError:
            refused += 1
        finally:
            HELD.reset(reset)
    return {"trials": trials, "stale_applied": applied, "stale_refused": refused}
