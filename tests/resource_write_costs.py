"""CPU per unbatched write of the resource's applier (docs/benchmarks.md, "Durable
writes"): ``ResourceCore.apply_batch`` on a real SQLite file, one write a batch, the
fsync deferred to the group-sync thread as in the actor. Run it by hand:
``PYTHONPATH=$PWD python tests/resource_write_costs.py [writes] [FULL|PROCESS] [--profile]``
(default 3,000 writes, FULL; ``time.process_time``; ``--profile`` adds cProfile's top 25)."""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

from actors._cli.bench.counters import BenchCounter
from actors._resource.calls import WriteCall
from actors._resource.core import ResourceCore
from policies import Durability, ResourcePolicy
from runtime import encode

WARM_UP = 200


def cpu_us_per_write(writes: int, durability: Durability, profile: bool) -> float:
    """The applier's CPU time per write, in microseconds."""
    with tempfile.TemporaryDirectory() as folder:
        policy = ResourcePolicy(durability=durability)
        core = ResourceCore(BenchCounter(), "bench", Path(folder), policy=policy)
        core.log.defer_sync()
        args = encode([["k", 1], {}])
        batches = [
            [WriteCall("add", args, "w", 1, uuid.uuid4().hex, "a" * 32, None)]
            for _ in range(writes + WARM_UP)
        ]
        for batch in batches[:WARM_UP]:
            core.apply_batch(batch)
        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for batch in batches[WARM_UP:]:
            core.apply_batch(batch)
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return (time.process_time() - started) * 1e6 / writes


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    mode = Durability[sys.argv[2]] if len(sys.argv) > 2 else Durability.FULL
    cost = cpu_us_per_write(count, mode, "--profile" in sys.argv)
    print(f"{mode.name}: {cost:.0f} us of CPU per write")
