"""The supervisor's liveness property, on a fake clock: whatever mix of hangs, exceptions,
schema breakers, late answers, wedged and dying replicas and supervisor kills its agents
produce, every subtask reaches exactly one terminal status within

    n * (Deadlines.queued + Deadlines.running) + n * 2 * TICK_S,  n = max_attempts + kills

(every attempt ends at its phase bounds, seen on the first tick after them; a retry is
queued at once, the grace bounds only how long a slot stays taken; the attempt a
supervisor kill interrupts is driven again, so each kill may add one attempt), and every
attempt of a subtask runs under its id, so an idempotent write is applied once.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liveness_fakes import Call, Replicas, stop
from pydantic import BaseModel

from actors._supervisor.core import SupervisorCore
from actors._supervisor.handle import make_spec
from actors._supervisor.store import SubtaskStore
from actors._supervisor.types import Outcome, SubtaskSpec
from policies import Deadlines, RestartIntensity, RetryBudget, RetryPolicy
from runtime import Envelope, new_task_id
from runtime.testing import FakeClock

BEHAVIOURS = ("ok", "raise", "bad", "hang", "wedge", "late", "die")
QUEUED_S, RUNNING_S, GRACE_S = 30.0, 10.0, 5.0
PHASES = Deadlines(
    queued=timedelta(seconds=QUEUED_S), running=timedelta(seconds=RUNNING_S),
    grace=timedelta(seconds=GRACE_S),
)  # fmt: skip
ATTEMPTS = 3
TICK_S = 1.0


def bound_s(kills: int) -> float:
    """The latest a subtask may end, from its submission."""
    n = ATTEMPTS + kills
    return n * (QUEUED_S + RUNNING_S) + n * 2 * TICK_S


class Ask(BaseModel):
    topic: str


class Answer(BaseModel):
    summary: str


async def settle() -> None:
    for _ in range(40):
        await asyncio.sleep(0)


class Simulation:
    """Subtasks whose attempts behave as planned, one supervisor incarnation at a time."""

    def __init__(
        self, root: Path, plans: list[list[str]], targets: list[str], agents: Replicas,
        rng: random.Random,
    ) -> None:  # fmt: skip
        self.root = root
        self.clock = FakeClock()
        self.agents = agents
        self.rng = rng
        self.specs = [self._spec(to) for to in targets]
        self.plans = {s.subtask_id: p for s, p in zip(self.specs, plans, strict=True)}
        self.outcomes: dict[str, list[tuple[float, Outcome]]] = {s: [] for s in self.plans}
        self.due: list[tuple[float, Callable[[], None]]] = []
        self.seen = 0
        self.writes: dict[str, int] = {}
        self.core = self._core()
        self.clients: list[asyncio.Task[None]] = []

    def _spec(self, to: str) -> SubtaskSpec:
        return make_spec(
            Ask(topic="x"), to=to, expect=Answer, deadline=PHASES, on_failure=None,
            retry=RetryPolicy(max_attempts=ATTEMPTS, initial_backoff=timedelta(0)),
            envelope=Envelope(task_id=new_task_id()),
        )  # fmt: skip

    def _core(self) -> SupervisorCore:
        core = SupervisorCore(SubtaskStore(self.root), self.agents, clock=self.clock)
        core.configure_group("r", RestartIntensity(max_restarts=10_000))
        core.configure_retry_budget(RetryBudget(ratio=10.0))
        return core

    async def _client(self, spec: SubtaskSpec) -> None:
        outcome = await self.core.run(spec)
        self.outcomes[spec.subtask_id].append((self.clock.monotonic(), outcome))

    def start_clients(self) -> None:
        waiting = [s for s in self.specs if not self.outcomes[s.subtask_id]]
        self.clients = [asyncio.ensure_future(self._client(s)) for s in waiting]

    async def kill_supervisor(self) -> None:
        """The supervisor's process dies: its tasks stop, its staged writes are lost; a
        new incarnation recovers from storage and the clients join it again."""
        for task in self.clients:
            task.cancel()
        await stop(self.core)
        self.core = self._core()
        self.core.recover()
        self.start_clients()

    def step(self) -> None:
        """One tick: act on new calls as planned, resolve what fell due, tick."""
        now = self.clock.monotonic()
        for call in self.agents.calls[self.seen :]:
            self._plan(call, now)
        self.seen = len(self.agents.calls)
        for _, act in [d for d in self.due if d[0] <= now]:
            act()
        self.due = [d for d in self.due if d[0] > now]
        self.core.tick()

    def _plan(self, call: Call, now: float) -> None:
        sid = call.envelope.task_id
        earlier = [c for c in self.agents.calls if c.envelope.task_id == sid].index(call)
        plan = self.plans[sid]
        behaviour = plan[earlier] if earlier < len(plan) else "ok"
        call.stubborn = behaviour in ("wedge", "late")
        after = now + self.rng.uniform(0, RUNNING_S * 0.8)
        if behaviour == "late":
            after = now + self.rng.uniform(RUNNING_S, RUNNING_S + 2 * GRACE_S)
        results: dict[str, Any] = {
            "ok": Answer(summary="ok"), "late": Answer(summary="late"),
            "raise": ValueError("boom"), "bad": Ask(topic="not an answer"),
        }  # fmt: skip
        if behaviour in results:
            self.due.append((after, lambda: self._answer(call, results[behaviour])))
        elif behaviour == "die":
            self.due.append((after, lambda: self.agents.die(call.replica)))

    def _answer(self, call: Call, result: Any) -> None:
        if call.future.done():
            return
        if not isinstance(result, Exception):  # the handler ran: its idempotent write
            key = call.envelope.task_id
            self.writes[key] = self.writes.get(key, 0) + (0 if key in self.writes else 1)
            call.future.set_result(result)
        else:
            call.future.set_exception(result)


async def simulate(
    plans: list[tuple[int, list[str]]],
    replicas: int,
    capacity: int,
    kill_at: int | None,
    seed: int,
    root: Path,
) -> Simulation:
    """Run ``plans`` (a target, ``-1`` for the group or a replica index that may not
    exist, and the behaviours of its attempts) to their end, or past every bound."""
    targets = ["r" if index < 0 else f"r:{index}" for index, _ in plans]
    agents = Replicas({"r": replicas}, capacity)
    sim = Simulation(root, [p for _, p in plans], targets, agents, random.Random(seed))
    sim.start_clients()
    await settle()
    steps = int(bound_s(1) / TICK_S) + 5
    for index in range(steps):
        if index == kill_at:
            await sim.kill_supervisor()
        sim.clock.advance(TICK_S)
        sim.step()
        await settle()
        if all(sim.outcomes.values()):
            break
    for task in sim.clients:
        task.cancel()
    return sim


plans = st.lists(
    st.tuples(
        st.integers(min_value=-1, max_value=3),
        st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=ATTEMPTS),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(
    plans=plans,
    replicas=st.integers(min_value=1, max_value=3),
    capacity=st.sampled_from([1, 2]),
    kill_at=st.none() | st.integers(min_value=0, max_value=60),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_every_subtask_ends_once_within_its_deadlines(
    plans: list[tuple[int, list[str]]],
    replicas: int,
    capacity: int,
    kill_at: int | None,
    seed: int,
) -> None:
    # One store per example, removed with it (200 examples a run).
    with tempfile.TemporaryDirectory(prefix="liveness-") as root:
        sim = asyncio.run(simulate(plans, replicas, capacity, kill_at, seed, Path(root)))
        check_endings(sim, kill_at)


def check_endings(sim: Simulation, kill_at: int | None) -> None:
    """Each subtask ended once, within its bound, as its stored history says."""
    kills = 0 if kill_at is None else 1
    for sid, seen in sim.outcomes.items():
        assert len(seen) == 1, (sid, seen, sim.core.status_of(sid))  # exactly one ending
        at, outcome = seen[0]
        assert at <= bound_s(kills), (at, sim.core.status_of(sid))
        status = sim.core.status_of(sid)
        assert status.state == ("done" if outcome.error is None else "failed")
        numbers = [a.number for a in status.attempts if not a.outcome.startswith("late:")]
        assert len(numbers) == len(set(numbers)) and len(numbers) <= ATTEMPTS + kills, status
        started = sim.agents.sent.count(sid)  # every attempt started is in the history
        assert started == len({a.number for a in status.attempts if a.replica}), status
    assert {c.envelope.task_id for c in sim.agents.calls} <= set(sim.outcomes)
    assert all(count == 1 for count in sim.writes.values())  # no write applied twice
