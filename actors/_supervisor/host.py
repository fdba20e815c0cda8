"""The supervisor actor ``supervisor``: a thin async Ray actor around ``SupervisorCore``.

It is restarted by Ray when it dies (``max_restarts=-1``); the new incarnation loads every
unfinished subtask from storage as soon as it starts (a call it sends itself from
``__init__``; any later call retries if storage was not ready) and drives it again. Nothing
in ``__init__`` may raise: an exception there would kill the actor for good.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ray
from pydantic import BaseModel
from ray import cloudpickle
from ray.exceptions import ActorUnavailableError, RayActorError, TaskCancelledError

from policies import Durability, RestartIntensity, RetryBudget, SamplingPolicy, SupervisorRetention
from runtime import (
    AgentGoneError,
    Clock,
    ConfigurationError,
    Envelope,
    Location,
    StorageError,
    SystemClock,
    fix_mmap_threshold,
    storage_root,
)

from .._agent.group import dedicated_replicas, find_replica
from .._agent.pooled import PooledReplica, pooled_pings
from .batch import Ended, stream_outcomes
from .core import SupervisorCore
from .metrics import SupervisorMetrics
from .store import SubtaskStore
from .types import (
    AgentDiedError,
    LocalRetryBudget,
    Outcome,
    ReplicaInfo,
    SubtaskSpec,
    SubtaskStatus,
)

SUPERVISOR_ACTOR = "supervisor"
BUDGET_ACTOR = "budget"
_TICK_S = 0.02
_PING_S = 10.0
_START_S = 60.0
_PAUSE_S = 0.05
_RECOVER_TRIES = 20
_log = logging.getLogger(__name__)


class RayDispatcher:
    """Reaches agent replicas of one namespace: the named actors ``agent:<group>:<i>``,
    and the pooled agents of its hosts (``PooledReplica``: their host, called by key)."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._actors: dict[str, Any] = {}
        self._recipes: dict[str, bytes] = {}

    async def replicas(self, group: str) -> list[ReplicaInfo]:
        infos: list[ReplicaInfo] = []
        for replica, actor in dedicated_replicas(self._namespace, group).items():
            try:
                infos.append(await self._ping(replica, actor, _PING_S))
            except Exception:  # dead or dying: not a replica to send work to
                continue
        for pooled, info in await pooled_pings(self._namespace, group):  # on shared hosts
            infos.append(await self._ping(pooled.key, pooled, _PING_S, info))
        return infos

    async def _ping(
        self, replica: str, actor: Any, timeout: float, info: dict[str, Any] | None = None
    ) -> ReplicaInfo:
        # ping runs in the replica's control group: it answers while handlers are busy.
        if info is None:
            info = dict(await asyncio.wait_for(actor.ping.remote(), timeout=timeout))
        self._actors[replica] = actor
        if info.get("recipe") is not None:
            self._recipes[replica] = info["recipe"]
        return ReplicaInfo(replica, int(info.get("capacity", 1)), int(info.get("epoch", 0)))

    def send(
        self, replica: str, message: BaseModel, envelope: Envelope
    ) -> tuple[Awaitable[Any], Callable[[], None]]:
        actor = self._actors[replica]
        ref = actor.handle.remote(message, envelope, marked=True)  # with its derived mark
        return _result(ref, replica, actor, envelope.span_id), lambda: ray.cancel(ref)

    async def restart(self, replica: str) -> ReplicaInfo:
        """Kill ``replica``'s actor and start it again from the recipe it handed out.

        Raises:
            ConfigurationError: no recipe is known for it, or its name stays taken.
        """
        from .._agent.spawn import spawn_replica

        if isinstance(pooled := self._actors.get(replica), PooledReplica):  # in its host
            return await self._ping(replica, pooled, _START_S, await pooled.restart())
        recipe = self._recipes.get(replica)
        if recipe is None:
            raise ConfigurationError(f"no recipe to restart {replica}")
        cls, runtime = cloudpickle.loads(recipe)
        ray.kill(self._actors.pop(replica), no_restart=True)
        for _ in range(int(_START_S / _PAUSE_S)):  # the name is freed once it is dead
            if not _named(f"agent:{replica}", self._namespace):
                return await self._ping(
                    replica, spawn_replica(cls, runtime, detached=True), _START_S
                )
            await asyncio.sleep(_PAUSE_S)
        raise ConfigurationError(f"{replica} was killed but its name is still taken")

    def follow(self, replica: str, span_id: str) -> Awaitable[Any]:
        """The result of attempt ``span_id``, started on ``replica`` by an earlier
        incarnation of the supervisor."""
        actor = self._actors.get(replica) or find_replica(self._namespace, replica)
        return _result(actor.outcome.remote(span_id), replica, None, span_id)


def _named(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


async def _result(ref: Any, replica: str, actor: Any, span_id: str) -> Any:
    """The attempt's output; its replica's death as ``AgentDiedError``. Ray reports a
    cancelled call as cancelled even when its handler ignored the cancel and answered:
    the replica's ledger then says what the handler really did."""
    try:
        return await ref
    except (RayActorError, ActorUnavailableError, AgentGoneError) as error:
        raise AgentDiedError(f"replica {replica} died: {str(error).splitlines()[0]}") from None
    except TaskCancelledError:
        if actor is None:
            raise asyncio.CancelledError(f"attempt on {replica} cancelled") from None
    return await _result(actor.outcome.remote(span_id), replica, None, span_id)


class BudgetActorRetries:
    """The retry-budget hook: the budget actor's ``try_retry`` when ``budget`` runs in
    the namespace, else a budget kept here. First attempts are sent in batches."""

    def __init__(self, namespace: str, clock: Clock) -> None:
        self._namespace = namespace
        self._local = LocalRetryBudget(clock)
        self._clock = clock
        self._actor: Any = None
        self._looked_at = float("-inf")
        self._deposits: dict[str, int] = {}

    def _budget(self, *, look_now: bool = False) -> Any:
        now = self._clock.monotonic()
        if self._actor is None and (look_now or now - self._looked_at >= 5.0):
            self._looked_at = now
            try:
                self._actor = ray.get_actor(BUDGET_ACTOR, namespace=self._namespace)
            except ValueError:
                self._actor = None
        return self._actor

    async def may_retry(self, run: str, agent: str) -> bool:
        actor = self._budget(look_now=True)  # a retry never misses a budget actor that runs
        if actor is not None:
            try:
                decision = await actor.try_retry.remote(run, agent)
                return bool(decision.allowed)
            except Exception as error:
                _log.warning("budget actor unreachable, using the local retry budget: %s", error)
                self._actor = None
        return await self._local.may_retry(run, agent)

    def record_first_attempts(self, run: str, count: int) -> None:
        self._local.record_first_attempts(run, count)
        self._deposits[run] = self._deposits.get(run, 0) + count

    def flush(self) -> None:
        deposits, self._deposits = self._deposits, {}
        actor = self._budget() if deposits else None
        if actor is not None:
            for run, count in deposits.items():
                actor.record_attempt.remote(run, count)


def _open_store(root: Location, durability: Durability) -> SubtaskStore:
    try:
        return SubtaskStore(root, durability)
    except Exception as error:  # retried on the next call
        raise StorageError(f"supervisor: cannot open storage: {error}") from error


class SupervisorHost:
    """Holds every subtask of the system to its deadline and its output schema."""

    def __init__(
        self,
        root: str,
        namespace: str,
        clock: Clock | None = None,
        durability: Durability = Durability.FULL,
        retry_budget: RetryBudget | None = None,
        retention: SupervisorRetention | None = None,
        start_id: str = "",
    ) -> None:
        fix_mmap_threshold()  # a burst of calls must not leave an arena of fiber stacks
        self._root = storage_root(root)
        self._start_id = start_id
        self._retention = retention
        self._namespace = namespace
        self._clock: Clock = clock or SystemClock()
        self._durability = durability
        self._retry_budget = retry_budget
        self._core: SupervisorCore | None = None
        self._retries = BudgetActorRetries(namespace, self._clock)
        self._ticker: asyncio.Task[None] | None = None
        _recover_soon()

    def __repr__(self) -> str:
        # The dashboard's Actors page shows this rather than an empty name.
        return f"Supervisor(namespace {getattr(self, '_namespace', '?')!r})"

    async def recover(self) -> None:
        """Load and re-drive every unfinished subtask now (sent by ``__init__``)."""
        self._open()

    def _open(self) -> SupervisorCore:
        if self._core is None:
            store = _open_store(self._root, self._durability)
            try:
                configuration = store.settings.begin(self._start_id, self._retry_budget)
            except StorageError:  # retried on the next call
                store.close()
                raise
            core = SupervisorCore(
                store, RayDispatcher(self._namespace), clock=self._clock,
                retry_budget=self._retries, metrics=SupervisorMetrics(),
                retention=self._retention,
            )  # fmt: skip
            core.apply(configuration)
            core.recover()
            self._core = core
            if not _moved_by_hand(self._clock):
                self._ticker = asyncio.get_running_loop().create_task(self._tick_forever(core))
        return self._core

    async def _tick_forever(self, core: SupervisorCore) -> None:
        while True:
            await self._clock.sleep(_TICK_S)
            try:
                core.tick()
                self._flush(core)
            except Exception:
                _log.exception("supervisor tick failed")

    def _flush(self, core: SupervisorCore) -> None:
        core.metrics.flush()
        self._retries.flush()

    async def run(self, spec: SubtaskSpec) -> Outcome:
        """Submit (or join) a subtask and return its outcome once final and stored."""
        return await self._open().run(spec)

    async def run_many(self, specs: list[SubtaskSpec]) -> AsyncIterator[Ended]:
        """Submit (or join) each subtask; yield outcomes as they end (see ``batch``)."""
        async for ended in stream_outcomes(self._open().run, specs):
            yield ended

    async def submit(self, spec: SubtaskSpec) -> None:
        """Store a subtask and start it; return once it is stored."""
        await self._open().submit(spec)

    async def wait(self, subtask_id: str) -> Outcome:
        return await self._open().wait(subtask_id)

    async def status(self, subtask_id: str) -> SubtaskStatus:
        return self._open().status_of(subtask_id)

    async def cancel(self, subtask_id: str) -> bool:
        return await self._open().cancel(subtask_id)

    async def heartbeat(self, subtask_id: str, span_id: str) -> bool:
        return self._open().heartbeat(subtask_id, span_id)

    async def kill_agent(self, group: str, min_epoch: int, extra: dict[str, Any]) -> dict[str, Any]:
        core = self._open()
        done = await core.kill_agent(group, min_epoch)
        core.store.stage_event(core.clock.now().timestamp(), "kill_done", group, extra)
        await core.store.commit()
        return {**done, **extra}

    async def answer(self, subtask_id: str, output: Any, reject: str | None) -> str:
        return await self._open().answer(subtask_id, output, reject)

    async def escalations(self, state: str | None) -> list[dict[str, Any]]:
        return self._open().store.escalations(state)

    async def handoffs(self, trace_id: str | None) -> list[dict[str, Any]]:
        return self._open().store.handoffs(trace_id)

    async def events(self, kind: str | None) -> list[dict[str, Any]]:
        return self._open().store.events(kind)

    async def declare_stage(self, name: str, window_s: float | None, rule: Any = None) -> None:
        self._open().declare_stage(name, window_s, rule)

    async def declare_sampler(
        self, stage: str, truth: Any, agree: Any, policy: SamplingPolicy
    ) -> None:
        self._open().sampler.declare(stage, truth, agree, policy)

    async def audit(self) -> dict[str, Any]:
        """For ``agentcast check``: subtasks by target since this incarnation started
        (with or without a schema, the longest running deadline), the sampled stages."""
        core = self._open()
        return {"submissions": core.submissions, "samplers": core.sampler.declared()}

    async def configure_group(self, group: str, intensity: RestartIntensity) -> None:
        self._open().configure_group(group, intensity)

    async def configure_retry_budget(self, budget: RetryBudget | None) -> None:
        self._open().configure_retry_budget(budget)

    async def overview(self) -> dict[str, Any]:
        return self._open().overview()

    async def advance_clock(self, seconds: float) -> None:
        """Move a ``FakeClock`` forward, act on what fell due and send the metrics and
        first-attempt counts (tests only: a fake clock is never ticked in the background).

        Raises:
            TypeError: the supervisor runs on a real clock.
        """
        advance = getattr(self._clock, "advance", None)
        if not callable(advance):
            raise TypeError("advance_clock needs a supervisor started with a FakeClock")
        core = self._open()
        advance(seconds)
        core.tick()
        self._flush(core)

    async def stats(self) -> dict[str, Any]:
        """Memory and bookkeeping sizes, for the benchmark."""
        core = self._open()
        return {"live": len(core.live), "rss_bytes": _rss_bytes(), "pid": os.getpid()}


def _recover_soon() -> None:
    """Have this actor call its own ``recover`` once ``__init__`` returns, from a thread
    that retries while the call cannot get through (the actor is still being restarted),
    so a restarted supervisor drives its subtasks again without waiting for a caller."""
    try:
        actor = ray.get_runtime_context().current_actor
    except Exception as error:  # not in an actor (tests), or Ray is shutting down
        _log.info("no eager recovery: %s", error)
        return
    threading.Thread(target=_recover, args=(actor,), name="recover", daemon=True).start()


def _recover(actor: Any) -> None:
    for _ in range(_RECOVER_TRIES):
        try:
            ray.get(actor.recover.remote(), timeout=_START_S)
            return
        except Exception as error:  # unreachable yet, or storage not ready: try again
            _log.warning("eager recovery failed, trying again: %s", error)
            time.sleep(_PAUSE_S * 10)


def _moved_by_hand(clock: Clock) -> bool:
    """Whether ``clock`` only moves when told (a ``FakeClock``). Then the clock is not
    ticked in the background: sleeping on it would move it, and the test that moves it
    ticks the supervisor itself (``advance_clock``)."""
    return callable(getattr(clock, "advance", None))


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak instead
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
