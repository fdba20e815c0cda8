"""The supervisor as a plain class: every subtask ends ``done`` with an output that
validated as its ``expect``, or ``failed`` with a typed reason and its attempt history:
nothing disappears.

``SupervisorCore`` owns and wires the parts, each holding one responsibility:

- ``SubtaskTable`` (``table.py``): live subtasks, their waiters, their durable record;
- ``AttemptEngine`` (``attempts.py``): attempts dispatched, awaited, timed out, late;
- ``FailurePlanner`` (``planner.py``): retry, reroute, abandon or escalate after a failure;
- ``Timers`` (``timers.py``), ``Pool`` (``pool.py``): deadlines due, replicas and queues;
- ``ReplicaRestarts`` (``restarts.py``, owned by the engine): replicas wedged by an
  attempt that does not let go after its cancel, restarted within restart intensity;
- ``StageWatcher`` (``stages.py``): pipeline stages silent past their window;
- ``OutputSampler`` (``sampling.py``): final outputs compared with ground truth.

The Ray actor (``host.py``) forwards calls and runs ``tick`` on a timer, so all of this is
tested without Ray (``tests/test_supervisor_core.py``), with a fake clock and dispatcher.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from pydantic import BaseModel

from policies import RestartIntensity, RetryBudget, SupervisorRetention
from runtime import Clock, StorageError, trim_malloc

from .attempts import AttemptEngine
from .background import Background
from .metrics import Metrics, NoMetrics
from .planner import FailurePlanner
from .pool import Pool
from .sampling import OutputSampler
from .settings import Configuration
from .spec import StageRule
from .stages import StageWatcher
from .state import Live
from .store import SubtaskStore
from .table import SubtaskTable
from .timers import Timers
from .types import (
    Dispatcher,
    LocalRetryBudget,
    Outcome,
    RetryBudgetHook,
    SubtaskSpec,
    SubtaskStatus,
)
from .verification import OutputGate, StageRules

_log = logging.getLogger(__name__)


class SupervisorCore:
    """Every subtask held to a deadline and an output schema.

    Args:
        store: the durable subtask table.
        dispatcher: how agent replicas are found and sent attempts.
        clock: the only source of time.
        retry_budget: the run's retry budget. Default: one kept here.
        metrics: where counts go. Default: nowhere.
        rng: the jitter of backoffs. Default: a fresh ``random.Random()``.
        retention: how long the store keeps what is done with, pruned from ``tick``.
            Default ``SupervisorRetention()``.
    """

    def __init__(
        self,
        store: SubtaskStore,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        retry_budget: RetryBudgetHook | None = None,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        retention: SupervisorRetention | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention or SupervisorRetention()
        self._pruned_at = clock.monotonic()
        self._prune_more = True  # a new incarnation prunes at its first tick
        self._prune_every = self.retention.prune_every.total_seconds()
        self.metrics: Metrics = metrics or NoMetrics()
        self.pool = Pool()
        self.submissions: dict[str, dict[str, int]] = {}  # since this incarnation started
        background = Background()
        self._stages = StageWatcher(store, clock=clock, metrics=self.metrics, background=background)
        self.sampler = OutputSampler(
            store, clock=clock, metrics=self.metrics, background=background
        )
        self._table = SubtaskTable(
            store, clock=clock, metrics=self.metrics, background=background,
            on_finished=self._finished,
        )  # fmt: skip
        self._planner = FailurePlanner(
            store, clock=clock, retry_budget=retry_budget or LocalRetryBudget(clock),
            rng=rng or random.Random(),
        )  # fmt: skip
        self.rules = StageRules()
        self._attempts = AttemptEngine(
            self._table, self.pool, Timers(), self._planner, dispatcher,
            clock=clock, metrics=self.metrics, background=background,
            gate=OutputGate(self.rules, self.run, background),
        )  # fmt: skip

    def _audit(self, spec: SubtaskSpec) -> None:
        """Count the subtask for ``agentcast check``: by target, with or without a schema,
        and the longest running deadline asked of each target."""
        row = self.submissions.setdefault(spec.to, {"subtasks": 0, "no_schema": 0, "running_s": 0})
        row["subtasks"] += 1
        row["no_schema"] += spec.expect is None
        row["running_s"] = max(row["running_s"], int(spec.deadlines.running.total_seconds()))

    def _finished(self, spec: SubtaskSpec, output: BaseModel | None) -> None:
        self._stages.handed_off(spec)
        self.sampler.finished(spec, output)

    @property
    def live(self) -> dict[str, Live]:
        """Every unfinished subtask by id."""
        return self._table.live

    @property
    def failed_groups(self) -> set[str]:
        """Agent groups that exceeded their restart intensity."""
        return self._planner.failed_groups

    # -- subtasks --------------------------------------------------------------------

    async def run(self, spec: SubtaskSpec) -> Outcome:
        """Submit ``spec`` (or join it if known) and wait for its outcome."""
        await self.submit(spec)
        return await self.wait(spec.subtask_id)

    async def submit(self, spec: SubtaskSpec) -> None:
        """Store the subtask, then start its first attempt. A known id is left as is
        (returning once it is stored, if another submit of it is storing it).

        Raises:
            ProvenanceError: its input is less trusted than its stage requires.
            StorageError: it could not be stored; it was not started.
        """
        live = self._table.admit(self.rules.admit(spec))
        if live is None:
            await self._table.being_stored(spec.subtask_id)
            return
        self._audit(spec)
        self._stages.submitted(spec.stage)
        self._planner.first_attempt(spec)
        attempt = self._attempts.prepare(live)  # its number is committed with the subtask
        self._attempts.watch(live, attempt)  # time queued counts while it is being stored
        if await self._table.stored(live) and live.current is attempt and not attempt.over:
            self._attempts.start(live, prepared=True)

    def recover(self) -> int:
        """Load every unfinished subtask from storage and drive it again: its in-flight
        attempt runs anew under the same subtask id (so the same idempotency keys), with
        the next attempt number; the interrupted one's result is recorded as late.

        Returns:
            How many subtasks were re-driven.
        """
        redriven = self._table.restore()
        for live in redriven:
            self._attempts.follow(live)
            self._attempts.start(live)
        return len(redriven)

    async def wait(self, subtask_id: str) -> Outcome:
        """The subtask's outcome, once it is final and stored.

        Raises:
            ConfigurationError: no subtask has this id.
        """
        return await self._table.wait(subtask_id)

    def status_of(self, subtask_id: str) -> SubtaskStatus:
        """Where the subtask stands, from memory or from storage."""
        return self._table.status_of(subtask_id)

    def heartbeat(self, subtask_id: str, span_id: str) -> bool:
        """Note a heartbeat of the running attempt with ``span_id``; False if it is not
        the current attempt."""
        return self._attempts.heartbeat(subtask_id, span_id)

    def tick(self) -> None:
        """Act on what fell due as of now: deadlines, retries, stalls."""
        now = self.clock.monotonic()
        self._attempts.tick(now)
        self._stages.tick(now)
        self._prune_if_due(now)

    def _prune_if_due(self, now: float) -> None:
        """One bounded pruning pass every ``prune_every``, and at each tick while a pass
        left more to delete."""
        if not self._prune_more and now - self._pruned_at < self._prune_every:
            return
        self._pruned_at = now
        try:
            self._prune_more = self.store.prune(self.clock.now().timestamp(), self.retention)
        except StorageError as error:  # pruning only saves space: tried again later
            _log.warning("pruning the supervisor store failed: %s", error)
            self._prune_more = False
        if not self._prune_more:  # what bursts of subtasks freed, the arenas give back
            trim_malloc()

    # -- operators -------------------------------------------------------------------

    async def cancel(self, subtask_id: str) -> bool:
        """Fail the subtask with reason cancelled and cancel its running attempt.

        Returns:
            False if it was already final (or unknown).
        """
        live = self._table.live.get(subtask_id)
        if live is None:
            return False
        self._attempts.cancel(live)
        return True

    async def kill_agent(self, group: str, min_epoch: int) -> dict[str, Any]:
        """Stop using ``group``'s replicas below ``min_epoch`` and fail its attempts with
        reason killed (each then follows its plan: rerouted, escalated or abandoned).

        Returns:
            What was done, as stored in the audit event.
        """
        failed = self._attempts.kill(group, min_epoch)
        detail = {"agent": group, "epoch": min_epoch, "attempts_failed": failed}
        self.store.stage_event(self.clock.now().timestamp(), "kill", group, detail)
        await self.store.commit()
        return detail

    async def answer(
        self, subtask_id: str, output: dict[str, Any] | BaseModel | None, reject: str | None
    ) -> str:
        """Answer an escalated subtask: with an output (it is done) or a rejection (it
        fails with reason rejected).

        Returns:
            The subtask's final state.

        Raises:
            ConfigurationError: the subtask is not waiting on an escalation.
            InvalidArgumentError: the output does not validate as the subtask's ``expect``.
        """
        return self._table.answer(subtask_id, output, reject)

    # -- configuration: stored first, so a restarted supervisor keeps it ---------------

    def apply(self, configuration: Configuration) -> None:
        """Run with ``configuration`` (what ``store.settings.begin`` gave at start)."""
        self._planner.configure_retry_budget(configuration.retry_budget)
        for group, intensity in configuration.groups.items():
            self._planner.configure_group(group, intensity)
        for stage, (window, rule) in configuration.stages.items():
            self._declare_stage(stage, window, rule)

    def configure_group(self, group: str, intensity: RestartIntensity) -> None:
        """Set the restart intensity of an agent group (default ``RestartIntensity()``).

        Raises:
            StorageError: it could not be stored; it is not applied.
        """
        self.store.settings.save_group(group, intensity)
        self._planner.configure_group(group, intensity)

    def configure_retry_budget(self, budget: RetryBudget | None) -> None:
        """The retry budget of every run whose subtasks name none (see
        ``SubtaskSpec.retry_budget``); None leaves them to the budget actor, if it runs,
        else to ``RetryBudget()``.

        Raises:
            StorageError: it could not be stored; it is not applied.
        """
        self.store.settings.save_retry_budget(budget)
        self._planner.configure_retry_budget(budget)

    def declare_stage(self, name: str, window: float | None, rule: StageRule | None = None) -> None:
        """Watch stage ``name``: once a handoff names it as the next stage, a subtask of
        it must be submitted within ``window`` seconds (None: not watched), or the stage
        is a stall; ``rule``: what it requires of its input and who verifies its output.

        Raises:
            StorageError: it could not be stored; it is not applied.
        """
        self.store.settings.save_stage(name, window, rule)
        self._declare_stage(name, window, rule)

    def _declare_stage(self, name: str, window: float | None, rule: StageRule | None) -> None:
        if window is not None:
            self._stages.declare(name, window)
        if rule is not None:
            self.rules.declare(name, rule)

    def stalls(self) -> list[dict[str, Any]]:
        """Stages silent past their window, now."""
        return self._stages.stalls()

    def overview(self) -> dict[str, Any]:
        """What ``agentcast status`` prints: subtasks by state, replicas, restarts of
        wedged replicas (done and under way), failed groups, open escalations and stalls."""
        states: dict[str, int] = {}
        for live in self._table.live.values():
            states[live.state] = states.get(live.state, 0) + 1
        return {
            "live": states,
            "stored": self.store.counts(),
            "replicas": {
                n: f"{r.busy}/{r.capacity}" for n, r in sorted(self.pool.replicas.items())
            },
            "restarts": dict(sorted(self._attempts.restarts.restarts.items())),
            "restarting": sorted(self._attempts.restarts.restarting),
            "failed_groups": sorted(self.failed_groups),
            "open_escalations": self.store.open_escalations(),
            "stalls": self.stalls(),
        }
