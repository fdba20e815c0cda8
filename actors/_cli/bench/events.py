"""``agentcast bench events``: committed events to 1, 8 and 32 subscribers against plain
Ray pub/sub (a publisher actor fanning out calls to subscriber actors), side by side.

- ``delivery`` rows: for N subscribers (N consumer groups, one replica each; N plain
  subscriber actors), ``events`` events are produced in batches of ``batch`` (agentcast:
  ``write_many`` to a resource whose writes emit; plain: ``publish`` calls) and the clock
  stops when every subscriber has seen every event. Throughput is events x subscribers
  over that wall time; latency is from the write's (or publish's) sending to the handler,
  p50 and p99. Each row keeps the best of 3 runs (1 with ``--quick``).
- ``backlog`` rows: delivery alone. Events already committed (agentcast: one call replays
  them to every group, one more returns when every group is done) or already produced
  (plain: one call, the publisher holds them), ``events`` of them at 32 subscribers and
  three times as many below (``backlog_size``), are delivered in batches
  of ``max_in_flight`` to N subscribers; the clock runs from the start until every
  subscriber has all of them. The sides' runs alternate; each keeps its best of 5.
  The ``delivery`` rows also pay for producing: each agentcast event is a durable write,
  which caps them at the resource's write rate (``emit_cost``) whatever the delivery.
- ``pooled_backlog`` rows: the same, once every other row ran, to N more consumer groups
  placed in shared host processes (``placement="pooled"``, ``POOL_HOSTS``: 16 to a host,
  so two at 32) against the same N plain subscriber actors (one process each). Each
  agentcast row reports how many processes its subscribers ran in.
- ``emit_cost``: writes per second of the same ``write_many`` batches with and without an
  event per write, nobody subscribed to either, the dispatcher running (what emitting adds
  to a write, the nudge to the dispatcher included): 400 batches of 50 of each kind, the
  kinds alternating batch by batch; the overhead is the time a write takes with an event
  over the time without, less one.
- ``lag``: writes at a steady rate for a few seconds to 8 subscribers; the largest lag
  (events committed past a checkpoint), sampled every 0.2 s, is the curve; then how long
  the lag takes to drain.

Resources store with ``Durability.PROCESS``. Targets: emit adds at most 10 % to a write,
delivery at least 0.8x plain-Ray fan-out, lag bounded (it drains once the load stops).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import timedelta
from typing import Any

import ray

from policies import Durability, EventsPolicy, HostPolicy, ResourcePolicy

from ..._events.face import Subscriptions
from ..._resource.handle import Write
from ..._system import System
from ..output import emit
from .event_clients import PlainPublisher, PlainSubscriber, StatsQuery, TickCounter, TickFeed
from .machine import machine

COUNTS = (1, 8, 32)
QUICK_COUNTS = (1, 2, 4)
TARGETS = {"emit_overhead_max": 0.10, "delivery_vs_plain_min": 0.8}
POOL_HOSTS = HostPolicy(agents_per_host=16)  # 32 subscribers in two processes: one per core


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else 0.0


def backlog_size(events: int, subscribers: int, quick: bool) -> int:
    """How many events a backlog row delivers: three times ``events`` (what the delivery
    rows committed) below 32 subscribers, where ``events`` took 0.03-0.3 s and one stall
    of a few milliseconds moved a run by a tenth; ``events`` with ``--quick``."""
    return events if quick or subscribers >= 32 else 3 * events


def _plain(cls: type, namespace: str) -> Any:
    return ray.remote(cls).options(namespace=namespace, num_cpus=0).remote()


class _Bench:
    publisher: Any  # the plain side's publisher actor
    plain: list[Any]  # and its subscriber actors

    def __init__(
        self, system: System, quick: bool, *, pooled: bool = False, plain: _Bench | None = None
    ) -> None:
        """``plain``: a bench whose plain publisher and subscribers this one shares (the
        pooled rows fan out to the same actors: 32 processes fewer)."""
        self.system, self.quick = system, quick
        self.side, self.prefix = (
            ("agentcast_pooled", "bench-pool") if pooled else ("agentcast", "bench-sub")
        )
        self.placement: dict[str, Any] = (
            {"placement": "pooled", "hosts": POOL_HOSTS} if pooled else {}
        )
        self.events = 500 if quick else 2_000
        self.batch = 50
        self.repeats = 1 if quick else 3
        # The backlog rows last 0.1-2 s each: a moment's load moves one run by a tenth
        # or more, so each side keeps its best of more runs than the delivery rows.
        self.backlog_repeats = 1 if quick else 5
        policy = ResourcePolicy(durability=Durability.PROCESS)
        self.feed = system.resource(TickFeed, name="bench-events", policy=policy)
        self.silent = system.resource(TickFeed, name="bench-silent", policy=policy)
        self.groups: list[Any] = []
        self.publisher = (
            _plain(PlainPublisher, system.namespace) if plain is None else plain.publisher
        )
        self.plain = [] if plain is None else plain.plain
        self.subs = Subscriptions.start(system)  # running, as where events are used
        self.n = 0

    def grow(self, count: int) -> None:
        """Up to ``count`` subscribers on each side; new groups catch up first."""
        while len(self.groups) < count:
            name = f"{self.prefix}-{len(self.groups)}"
            self.groups.append(self.system.agent(TickCounter, name=name, **self.placement))
        while len(self.plain) < count:
            sub = _plain(PlainSubscriber, self.system.namespace)
            ray.get(self.publisher.add.remote(sub))
            self.plain.append(sub)
        self.subs.wait_caught_up(timedelta(minutes=10))
        self._agent_stats(reset=True)
        ray.get([s.stats.remote(True) for s in self.plain])

    def _agent_stats(self, reset: bool) -> list[Any]:
        return [g.ask(StatsQuery(reset=reset), timeout=120) for g in self.groups]

    def _writes(self, op: str, count: int) -> list[Write]:
        start, self.n = self.n, self.n + count
        return [Write(op=op, args=[n, time.time()]) for n in range(start, start + count)]

    def agentcast_run(self, count: int) -> tuple[float, list[float]]:
        started = time.perf_counter()
        for _ in range(self.events // self.batch):
            self.feed.write_many(self._writes("tick", self.batch))
        # One call the dispatcher answers when the checkpoints are there (as the plain
        # side's one ``drain``): asking the agents would queue between their deliveries.
        self.subs.wait_caught_up(timedelta(minutes=10))
        wall = time.perf_counter() - started
        stats = self._agent_stats(reset=True)
        assert all(s.count >= self.events for s in stats), "an event never arrived"
        return wall, [ms for s in stats for ms in s.latencies_ms]

    def plain_run(self, count: int) -> tuple[float, list[float]]:
        started = time.perf_counter()
        for _ in range(self.events // self.batch):
            batch = [(n, time.time()) for n in range(self.batch)]
            ray.get(self.publisher.publish.remote(batch))
        ray.get(self.publisher.drain.remote())
        wall = time.perf_counter() - started
        stats = ray.get([s.stats.remote(True) for s in self.plain])
        assert all(c >= self.events for c, _ in stats)
        return wall, [ms for _, lat in stats for ms in lat]

    def agentcast_backlog(self, count: int, events: int) -> float:
        newest = self.subs_checkpoint()
        groups = [f"{self.prefix}-{group}" for group in range(count)]
        started = time.perf_counter()
        # One call each way, as the plain side's one ``publish_all``: every group's
        # replay in one transaction, then a wait the dispatcher answers when done.
        self.subs.replay(groups, "bench-events", after=newest - events)
        upto = {"bench-events": newest}
        self.subs.wait_caught_up(timedelta(minutes=10), upto=upto, groups=groups)
        wall = time.perf_counter() - started
        stats = self._agent_stats(reset=True)
        assert all(s.count >= events for s in stats), "an event never arrived"
        return wall

    def subs_checkpoint(self) -> int:
        return max(lag.last_seq for lag in self.subs.lags() if lag.resource == "bench-events")

    def plain_backlog(self, count: int, events: int) -> float:
        size = EventsPolicy().max_in_flight
        produced = [(n, time.time()) for n in range(events)]
        batches = [produced[i : i + size] for i in range(0, events, size)]
        started = time.perf_counter()
        ray.get(self.publisher.publish_all.remote(batches, count))
        wall = time.perf_counter() - started
        fed = ray.get([s.stats.remote(True) for s in self.plain[:count]])
        assert all(c >= events for c, _ in fed)
        return wall

    def backlog(self, count: int) -> list[dict[str, Any]]:
        """Delivery alone (``rows`` first: it grows the subscribers and commits the events).
        The two sides' runs alternate, so a load that drifts meanwhile weighs on both."""
        runs = {"plain_ray_fanout": self.plain_backlog, self.side: self.agentcast_backlog}
        walls: dict[str, list[float]] = {name: [] for name in runs}
        events = backlog_size(self.events, count, self.quick)
        for _ in range(self.backlog_repeats):
            for name, run in runs.items():
                walls[name].append(run(count, events))
        processes = len({s.pid for s in self._agent_stats(reset=False)})
        return [
            {
                "row": name, "subscribers": count, "events": events,
                "deliveries": events * count, "wall_s": round(min(walls[name]), 4),
                "events_per_s": round(events * count / min(walls[name]), 1),
                "processes": count if name == "plain_ray_fanout" else processes,
            }
            for name in runs
        ]  # fmt: skip

    def rows(self, count: int) -> list[dict[str, Any]]:
        self.grow(count)
        found = []
        for name, run in (("plain_ray_fanout", self.plain_run), ("agentcast", self.agentcast_run)):
            wall, latencies = min((run(count) for _ in range(self.repeats)), key=lambda r: r[0])
            found.append({
                "row": name, "subscribers": count, "events": self.events,
                "deliveries": self.events * count, "wall_s": round(wall, 4),
                "events_per_s": round(self.events * count / wall, 1),
                "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99),
            })  # fmt: skip
        return found

    def emit_cost(self) -> dict[str, Any]:
        """Writes/s with and without an event, on resources nobody is behind on. The two
        kinds of batch alternate one by one (in pairs, the order flipped each pair), and
        only the time inside each ``write_many`` counts: a load that comes and goes
        meanwhile lands on both alike (rounds of 2,500 writes of each kind, side by side,
        differed by up to 30 % either way on a shared 2-core machine). The overhead is
        the time a write takes with an event over the time without, less one;
        ``pair_quartiles`` are the quartiles of the same figure taken pair by pair (how
        far one pair's batches move on this machine)."""
        pairs = 10 if self.quick else 400
        ops = ("tick_silent", "mark")
        # The publisher's and the dispatcher's processes start in the background (a few
        # seconds of imports on this machine's two cores): not while this is measured.
        ray.get(self.publisher.drain.remote())  # answered once the publisher runs
        self.subs.lags()  # and once the dispatcher does
        for _ in range(10):  # warm-up: the first batches pay for imports
            for op in ops:
                self.silent.write_many(self._writes(op, self.batch))
        spent: dict[str, list[float]] = {op: [] for op in ops}
        for pair in range(pairs):
            for op in ops if pair % 2 else ops[::-1]:
                batch = self._writes(op, self.batch)
                started = time.perf_counter()
                self.silent.write_many(batch)
                spent[op].append(time.perf_counter() - started)
        return emit_figures(spent["mark"], spent["tick_silent"], self.batch)

    def lag_curve(self, count: int) -> dict[str, Any]:
        """Steady writes for a few seconds to ``count`` subscribers; lag sampled."""
        self.grow(count)
        seconds, rate = (2.0, 200) if self.quick else (6.0, 500)
        curve: list[list[float]] = []
        started = time.perf_counter()
        next_sample = 0.0
        while (elapsed := time.perf_counter() - started) < seconds:
            self.feed.write_many(self._writes("tick", int(rate * 0.05)))
            if elapsed >= next_sample:
                curve.append([round(elapsed, 2), max(lag.lag for lag in self.subs.lags())])
                next_sample += 0.2
            time.sleep(max(0.0, 0.05 - (time.perf_counter() - started - elapsed)))
        stop = time.perf_counter()
        self.subs.wait_caught_up(timedelta(minutes=10))
        return {"subscribers": count, "rate_per_s": rate, "seconds": seconds,
                "curve": curve, "max_lag": max(lag for _, lag in curve),
                "drained_s": round(time.perf_counter() - stop, 3)}  # fmt: skip


def run_bench(*, as_json: bool, quick: bool, out: str | None) -> int:
    """Run every row and print a table (or one JSON document). Returns the exit code."""
    counts = QUICK_COUNTS if quick else COUNTS
    with tempfile.TemporaryDirectory() as storage:
        system = System.start(storage, namespace=f"bench-events-{os.getpid()}", dashboard=False)
        try:
            bench = _Bench(system, quick)
            emit_cost = bench.emit_cost()
            rows, backlog = [], []
            for n in counts:
                rows.extend(bench.rows(n))
                backlog.extend(bench.backlog(n))
            lag = bench.lag_curve(counts[1])
            # Last: the pooled groups are new (they catch up on what was committed, then
            # take replays only); the plain side is the same actors.
            pooled, pooled_backlog = _Bench(system, quick, pooled=True, plain=bench), []
            for n in counts:
                pooled.grow(n)
                pooled_backlog.extend(pooled.backlog(n))
        finally:
            system.shutdown()
    report = _report(rows, backlog, pooled_backlog, emit_cost, lag, counts, quick)
    text = json.dumps(report, indent=2)
    if out:
        with open(out, "w", encoding="utf-8") as file:
            file.write(text + "\n")
    emit(text if as_json else _table(report))
    return 0


def emit_figures(marked: list[float], silent: list[float], batch: int) -> dict[str, Any]:
    """``emit_cost``'s figures from the seconds each batch of ``batch`` writes took, with
    an event (``marked``) and without (``silent``), pair by pair."""
    writes, with_s, without_s = len(marked) * batch, sum(marked), sum(silent)
    by_pair = [m / s - 1 for m, s in zip(marked, silent, strict=True)]
    return {
        "writes": writes, "without_emit_per_s": round(writes / without_s, 1),
        "with_emit_per_s": round(writes / with_s, 1),
        "overhead": round(with_s / without_s - 1, 4),
        "pair_quartiles": [_percentile(by_pair, q) for q in (0.25, 0.5, 0.75)],
    }  # fmt: skip


def ratios(
    rows: list[dict[str, Any]], counts: tuple[int, ...], side: str = "agentcast"
) -> dict[str, float]:
    """``side``'s delivery throughput over plain Ray fan-out's, per subscriber count."""
    by = {(r["row"], r["subscribers"]): r["events_per_s"] for r in rows}
    return {str(n): round(by[(side, n)] / by[("plain_ray_fanout", n)], 3) for n in counts}


def _report(
    rows: list[dict[str, Any]], backlog: list[dict[str, Any]],
    pooled_backlog: list[dict[str, Any]], emit_cost: dict[str, Any], lag: dict[str, Any],
    counts: tuple[int, ...], quick: bool,
) -> dict[str, Any]:  # fmt: skip
    found, alone = ratios(rows, counts), ratios(backlog, counts)
    pooled = ratios(pooled_backlog, counts, "agentcast_pooled")
    least = TARGETS["delivery_vs_plain_min"]
    met = {
        "emit_overhead": emit_cost["overhead"] <= TARGETS["emit_overhead_max"],
        "delivery_vs_plain": min(found.values()) >= least,
        "backlog_vs_plain": min(alone.values()) >= least,
        "pooled_backlog_vs_plain": min(pooled.values()) >= least,
        "lag_bounded": lag["drained_s"] < lag["seconds"],
    }
    return {
        "benchmark": "events", "quick": quick, **machine(),
        "subscriber_counts": list(counts), "rows": rows, "backlog": backlog,
        "pooled_backlog": pooled_backlog, "emit_cost": emit_cost, "lag": lag,
        "targets": TARGETS,
        "results": {
            "delivery_vs_plain": found, "backlog_vs_plain": alone,
            "pooled_backlog_vs_plain": pooled, "met": met,
        },
    }  # fmt: skip


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'row':<18}{'subs':>6}{'events/s':>12}{'p50 ms':>9}{'p99 ms':>9}"]
    for r in report["rows"]:
        lines.append(
            f"{r['row']:<18}{r['subscribers']:>6}{r['events_per_s']:>12,.0f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        )
    for r in report["backlog"] + report["pooled_backlog"]:
        lines.append(
            f"{r['row'] + ' backlog':<26}{r['subscribers']:>6}{r['events_per_s']:>12,.0f}"
            f"  in {r['processes']} processes"
        )
    lines.append(f"emit cost: {json.dumps(report['emit_cost'])}")
    lag = {k: v for k, v in report["lag"].items() if k != "curve"}
    lines.append(f"lag: {json.dumps(lag)}; curve {report['lag']['curve']}")
    lines.append(f"results: {json.dumps(report['results'])}")
    return "\n".join(lines)
