"""What an event costs a write in the resource's applier, in process (docs/benchmarks.md,
"Events"): ``ResourceCore.apply_batch`` on a real SQLite file, batches of 50 writes
(``Durability.PROCESS``, as ``agentcast bench events``), with and without an event per
write, in alternated rounds. Run it by hand:
``PYTHONPATH=$PWD python tests/event_write_costs.py [batches] [rounds] [--profile]``
(default 100 batches a round, 6 rounds; ``time.process_time``, medians; ``--profile``
prints cProfile's top 30 of each kind of write instead)."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from actors._cli.bench.event_clients import TickFeed
from actors._resource.calls import WriteCall
from actors._resource.core import ResourceCore
from policies import Durability, ResourcePolicy
from runtime import encode

BATCH = 50


class Writes:
    """Batches of ``op`` to one in-process applier, numbered on."""

    def __init__(self, core: ResourceCore) -> None:
        self.core, self.n = core, 0

    def batches(self, op: str, count: int) -> list[list[WriteCall]]:
        made = []
        for _ in range(count):
            made.append([self._call(op) for _ in range(BATCH)])
        return made

    def _call(self, op: str) -> WriteCall:
        self.n += 1
        args = encode([[self.n, 1.5], {}])
        return WriteCall(op, args, "w", 1, uuid.uuid4().hex, "a" * 32, None)

    def cpu_us(self, op: str, count: int, profiler: cProfile.Profile | None = None) -> float:
        """CPU per write of ``count`` batches of ``op``, in microseconds."""
        batches = self.batches(op, count)
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for batch in batches:
            self.core.apply_batch(batch)
        if profiler is not None:
            profiler.disable()
        return (time.process_time() - started) * 1e6 / (count * BATCH)


def main(batches: int, rounds: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        policy = ResourcePolicy(durability=Durability.PROCESS)
        writes = Writes(ResourceCore(TickFeed(), "feed", Path(folder), policy=policy))
        ops = ("tick_silent", "mark")
        for op in ops:
            writes.cpu_us(op, 20)  # warm-up
        if profile:
            for op in ops:
                profiler = cProfile.Profile()
                writes.cpu_us(op, batches, profiler)
                print(f"--- {op}")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return
        got: dict[str, list[float]] = {op: [] for op in ops}
        for round_ in range(rounds):
            for op in ops if round_ % 2 == 0 else ops[::-1]:
                got[op].append(writes.cpu_us(op, batches))
        silent, emitting = (statistics.median(got[op]) for op in ops)
        print(
            f"us of CPU per write: {silent:.1f} without an event, {emitting:.1f} with one "
            f"(+{emitting - silent:.1f}, {emitting / silent - 1:+.1%})"
        )


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if not a.startswith("--")]
    main(*(numbers + [100, 6][len(numbers) :]), "--profile" in sys.argv)  # type: ignore[call-arg]
