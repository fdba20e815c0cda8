"""Large blocks of an actor process go back to the system (``runtime.fix_mmap_threshold``).

Ray runs each call of an async actor on a fiber with a 256 KiB stack. glibc's dynamic
mmap threshold would carve those stacks from an arena once one had been freed, and a burst
of N concurrent calls would leave N stacks of arena behind for good: the supervisor's
memory crept up in the soak. The probes below run inside the processes under test and
read glibc's own counters (``mallinfo2``): how many blocks are mapped on their own, and
how many bytes its arenas hold.
"""

from __future__ import annotations

import asyncio
import ctypes
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from pydantic import BaseModel
from supervised_agents import Done, Job, Worker

from actors import Agent, System, handler
from runtime import CallTrim, lookup, resource_actor_name

STACK = 256 * 1024  # a fiber's stack: larger than glibc's default threshold (128 KiB)
PROBE = 24 * 2**20
BURST = 200


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _libc() -> Any:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="glibc's allocator only")


def mapped_anew(_instance: Any = None) -> int:
    """Free a large block, allocate one of the same size: how many blocks more are mapped
    on their own while it is held (1 if it was mapped anew, 0 if it was carved from an
    arena). Usable as ``actor.__ray_call__.remote(mapped_anew)``. The size is under the
    dynamic threshold's ceiling (32 MiB) and above any free stretch a sound arena holds."""
    libc = _libc()
    libc.free(libc.malloc(PROBE))  # with a dynamic threshold, this raises it past PROBE
    before = libc.mallinfo2().hblks
    block = libc.malloc(PROBE)
    try:
        return int(libc.mallinfo2().hblks - before)
    finally:
        libc.free(block)


def arena_bytes(_instance: Any = None) -> int:
    """Bytes glibc's arenas hold from the system (in use or free, not mapped blocks)."""
    return int(_libc().mallinfo2().arena)


_FRESH = """
import sys
sys.path.insert(0, {tests!r})
from test_memory import mapped_anew
from runtime import fix_mmap_threshold
print({before}, mapped_anew())
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("before", "mapped"),
    [("None", 0), ("fix_mmap_threshold()", 1), ("fix_mmap_threshold(), fix_mmap_threshold()", 1)],
)
def test_a_fixed_threshold_maps_a_freed_large_block_anew(before: str, mapped: int) -> None:
    """In a fresh interpreter: by default the second block comes from an arena (the
    dynamic threshold rose when the first was freed); once fixed (once or twice), it is
    mapped anew."""
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(tests).parent)
    out = subprocess.run(
        [sys.executable, "-c", _FRESH.format(tests=tests, before=before)],
        capture_output=True, text=True, check=True, cwd=root,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, timeout=50,
    ).stdout  # fmt: skip
    assert out.split()[-1] == str(mapped)
    assert "False" not in out


_TRIM = """
import sys
sys.path.insert(0, {tests!r})
from test_memory import freed_but_kept
print(freed_but_kept({trim}))
"""


def freed_but_kept(trim: bool) -> int:
    """Allocate 96 MiB in 1 KiB blocks, free all but the last (which pins the top of the
    heap, so freeing alone gives nothing back), then trim or not: the KiB resident then."""
    from runtime import trim_malloc

    libc = _libc()
    blocks = [libc.malloc(1024) for _ in range(96 * 1024)]
    for block in blocks:
        ctypes.memset(block, 1, 1024)  # resident, not only reserved
    for block in blocks[:-1]:
        libc.free(block)
    if trim:
        assert trim_malloc()
    return resident_kib()


def resident_kib(_instance: Any = None) -> int:
    """This process's resident memory, KiB (usable as ``actor.__ray_call__``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(60)
def test_trimming_gives_freed_arena_memory_back() -> None:
    """In a fresh interpreter: 96 MiB freed under a pinned top stays resident; after
    ``trim_malloc`` at least 64 MiB of it has gone back to the system."""
    tests = str(Path(__file__).resolve().parent)
    root = str(Path(tests).parent)
    kept = {}
    for trim in (False, True):
        out = subprocess.run(
            [sys.executable, "-c", _TRIM.format(tests=tests, trim=trim)],
            capture_output=True, text=True, check=True, cwd=root,
            env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, timeout=50,
        ).stdout  # fmt: skip
        kept[trim] = int(out.split()[-1])
    assert kept[False] - kept[True] >= 64 * 1024, kept


def _actors(system: System) -> dict[str, Any]:
    from resources_for_tests import Inventory

    system.resource(Inventory, name="inventory")
    group = system.agent(Worker, name="workers")
    system.budget.status()
    return {
        "supervisor": system.supervisor.actor,
        "resource": lookup(resource_actor_name("inventory"), system.namespace),
        "budget": system.budget.actor,
        "agent": group.actors[0],
    }


@pytest.mark.timeout(180)
def test_state_actors_map_large_blocks_anew_and_an_agent_keeps_the_dynamic_threshold(
    system: System,
) -> None:
    """The supervisor, a resource and the budget actor each fixed the threshold when they
    started; an agent replica did not (it trims after its calls instead)."""
    found = {
        which: ray.get(actor.__ray_call__.remote(mapped_anew), timeout=60)
        for which, actor in _actors(system).items()
    }
    assert found == {"supervisor": 1, "resource": 1, "budget": 1, "agent": 0}


@pytest.mark.timeout(30)
def test_calls_ending_together_are_trimmed_once_and_an_idle_process_never() -> None:
    trims: list[float] = []
    after_s = 0.05

    async def scenario() -> None:
        calls = CallTrim(lambda: trims.append(time.monotonic()), after_s)
        await asyncio.sleep(3 * after_s)
        assert trims == []  # no call, no trim
        for _ in range(5):
            calls.ended()
        started = time.monotonic()
        while not trims and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        await asyncio.sleep(3 * after_s)  # what no second trim looks like: none came
        assert len(trims) == 1 and trims[0] - started >= after_s * 0.9
        calls.ended()  # a call after the trim: trimmed again
        while len(trims) < 2 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        assert len(trims) == 2

    asyncio.run(scenario())


class Hold(BaseModel):
    kib: int
    hold_s: float
    pin_after_s: float | None = None


class Held(BaseModel):
    resident_kib: int


_PINS: list[int] = []


class Hog(Agent):
    """Holds a large touched block across an await, as many calls at once; one may also
    leave a block (kept for good) above the others, so freeing them gives nothing back by
    itself (glibc returns only the free memory at the top of a heap)."""

    max_concurrency = 64

    @handler
    async def hold(self, message: Hold) -> Held:
        libc = _libc()
        block = libc.malloc(message.kib * 1024)
        ctypes.memset(block, 1, message.kib * 1024)
        if message.pin_after_s is not None:
            await asyncio.sleep(message.pin_after_s)
            _PINS.append(libc.malloc(256 * 1024))  # below the threshold: from the top
            await asyncio.sleep(message.hold_s - message.pin_after_s)
        else:
            await asyncio.sleep(message.hold_s)
        libc.free(block)
        return Held(resident_kib=resident_kib())


@pytest.mark.timeout(120)
def test_a_burst_of_calls_to_an_agent_gives_its_memory_back(system: System) -> None:
    """48 calls at once each hold a touched MiB (carved from an arena once the dynamic
    threshold rose), and a block kept for good lands above them; within seconds of the
    burst the replica's resident memory is back within 16 MiB of where it was (without a
    trim the freed MiBs below the kept block would stay resident)."""
    group = system.agent(Hog, name="hog")
    # The first call also raises a dynamic threshold past 1 MiB.
    resident = group.ask(Hold(kib=1024, hold_s=0.0), timeout=60).resident_kib
    answers = [group.call(Hold(kib=1024, hold_s=1.0)) for _ in range(48)]
    answers.append(group.call(Hold(kib=1024, hold_s=1.0, pin_after_s=0.5)))
    peak = max(a.resident_kib for a in ray.get(answers, timeout=90))
    assert peak - resident >= 32 * 1024, (resident, peak)  # the burst was resident
    deadline = time.monotonic() + 30
    now = peak
    while time.monotonic() < deadline:
        now = ray.get(group.actors[0].__ray_call__.remote(resident_kib), timeout=30)
        if now - resident <= 16 * 1024:
            break
        time.sleep(0.2)
    assert now - resident <= 16 * 1024, (resident, peak, now)


@pytest.mark.timeout(240)
def test_bursts_of_subtasks_leave_no_arena_of_stacks_in_the_supervisor(system: System) -> None:
    """Two bursts of BURST subtasks in flight at once (the first raises a dynamic
    threshold, the second would be carved from the arena): the supervisor's arenas grow by
    far less than one stack per subtask of a burst."""
    system.agent(Worker, name="workers", replicas=2)
    supervisor = system.supervisor
    before = ray.get(supervisor.actor.__ray_call__.remote(arena_bytes), timeout=60)
    for burst in range(2):
        handles = [
            supervisor.submit(Job(key=f"{burst}-{i}"), to="workers", expect=Done)
            for i in range(BURST)
        ]
        outcomes = ray.get([h.ref for h in handles], timeout=180)
        assert [o.error for o in outcomes] == [None] * BURST
    after = ray.get(supervisor.actor.__ray_call__.remote(arena_bytes), timeout=60)
    assert after - before < BURST * STACK // 4, (before, after)
