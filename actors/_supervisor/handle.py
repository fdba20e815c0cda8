"""Handles to the supervisor: blocking ones for drivers, awaitable ones for agents.

``SubtaskCalls`` holds a subtask handle's logic once; ``SubtaskHandle`` and
``AsyncSubtaskHandle`` only run its plans (``actors._reconnect``), so they take the same
arguments and raise the same errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Unpack

import ray
from pydantic import BaseModel

from policies import (
    ConstraintSet,
    Deadlines,
    Provenance,
    RestartIntensity,
    RetryBudget,
    SamplingPolicy,
)
from runtime import (
    Clock,
    ConfigurationError,
    Envelope,
    InvalidArgumentError,
    SystemClock,
    new_task_id,
)

from .._agent.derived import note
from .._reconnect import Reconnect, run_async, run_blocking
from .calls import SubtaskCalls, batch_specs, open_batch
from .calls import send_heartbeat as send_heartbeat
from .calls import supervisor_actor as supervisor_actor
from .sampling import Agree, Truth
from .spec import DEFAULT_VERIFY, StageRule, SubmitOptions
from .spec import make_spec as make_spec
from .stream import OutcomeStream
from .types import SubtaskSpec, SubtaskStatus
from .validate import check_submission
from .verify import Claim, Verdict, verify_request

NONE = ConstraintSet()


class SubtaskHandle:
    """A submitted subtask, for a driver.

    Attributes:
        id: the subtask id (the ``task_id`` of every attempt's envelope).
    """

    def __init__(
        self,
        actor: Any,
        spec: SubtaskSpec,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
        stream: OutcomeStream | None = None,
    ) -> None:
        self.id = spec.subtask_id
        self._calls = SubtaskCalls(
            actor, spec, reconnect or Reconnect(), clock or SystemClock(), stream
        )

    @property
    def ref(self) -> Any:
        """The Ray ``ObjectRef`` of the subtask's ``Outcome``; None for a subtask of
        ``submit_many`` (its outcome comes on the batch's stream) unless it was joined
        again by id."""
        return self._calls.ref

    def result(self, timeout: float | None = None) -> BaseModel:
        """The output, validated as ``expect``. If the supervisor restarts meanwhile,
        the subtask is joined again by id (it was not lost).

        Raises:
            SubtaskFailedError: the subtask failed; ``reason`` and ``attempts`` say how.
            TimeoutError: ``timeout`` seconds passed first (the subtask goes on).
            ResourceUnavailableError: the supervisor stayed unreachable past the
                reconnect time.
        """
        return run_blocking(self._calls.outcome(timeout), self._calls.clock).unwrap()

    def provenance(self, timeout: float | None = None) -> Provenance:
        """The mark the supervisor believed of the output (VERIFIED once its stage's
        verifier passed it, else UNVERIFIED_AGENT): carry it on the envelope of a task
        made from the output. Raises as ``result``."""
        outcome = run_blocking(self._calls.outcome(timeout), self._calls.clock)
        outcome.unwrap()
        return outcome.provenance

    def status(self) -> SubtaskStatus:
        """Where it stands: state, target, reason and attempt history (waiting out a
        restart of the supervisor, as ``result`` does)."""
        return run_blocking(self._calls.status(), self._calls.clock)

    def cancel(self) -> bool:
        """Fail it with reason cancelled; False if it had already finished."""
        return run_blocking(self._calls.cancel(), self._calls.clock)


class AsyncSubtaskHandle:
    """A subtask submitted from inside an agent; ``await handle.result()``. Arguments,
    errors and behaviour are ``SubtaskHandle``'s."""

    def __init__(
        self,
        actor: Any,
        spec: SubtaskSpec,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
        stream: OutcomeStream | None = None,
    ) -> None:
        self.id = spec.subtask_id
        self._calls = SubtaskCalls(
            actor, spec, reconnect or Reconnect(), clock or SystemClock(), stream
        )

    @property
    def ref(self) -> Any:
        """See ``SubtaskHandle.ref``."""
        return self._calls.ref

    async def result(self, timeout: float | None = None) -> BaseModel:
        """See ``SubtaskHandle.result``.

        Raises:
            SubtaskFailedError: the subtask failed.
            TimeoutError: ``timeout`` seconds passed first.
            ResourceUnavailableError: the supervisor stayed unreachable.
        """
        outcome = await run_async(self._calls.outcome(timeout), self._calls.clock)
        output = outcome.unwrap()
        note(outcome.provenance, f"subtask:{self.id}")  # what the handler makes now derives from it
        return output

    async def status(self) -> SubtaskStatus:
        """See ``SubtaskHandle.status``."""
        return await run_async(self._calls.status(), self._calls.clock)

    async def cancel(self) -> bool:
        """See ``SubtaskHandle.cancel``."""
        return await run_async(self._calls.cancel(), self._calls.clock)


class Supervisor:
    """The driver's handle to the ``supervisor`` actor (``system.supervisor``).

    Args:
        actor: the supervisor actor.
        trace_id: the trace of the driver's submissions.
        namespace: the system's Ray namespace, where ``submit`` checks that a pinned
            replica runs.
        reconnect: how long a subtask handle rejoins a restarting supervisor. Default
            ``Reconnect()``.
        clock: the time of subtask handles' timeouts and reconnects. Default
            ``SystemClock()``.
    """

    def __init__(
        self,
        actor: Any,
        trace_id: str,
        namespace: str | None = None,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.actor = actor
        self._trace_id = trace_id
        self._namespace = namespace
        self._reconnect = reconnect or Reconnect()
        self._clock = clock or SystemClock()

    def submit(
        self,
        task: BaseModel,
        *,
        to: str,
        envelope: Envelope | None = None,
        **options: Unpack[SubmitOptions],
    ) -> SubtaskHandle:
        """Run ``task`` on agent ``to`` (a name, or one replica ``"name:i"``), held to
        ``deadline`` (a ``timedelta`` bounds the running phase) and to ``expect``. Its
        retries draw on the retry budget of ``run`` (default: the system's trace id, so
        every driver submission shares one), which is ``retry_budget`` if the run has
        none yet (see ``configure``). ``requires``: the stage accepts only input whose
        provenance (the envelope's) is at least this (docs/integrity.md).

        Raises:
            ConfigurationError: both ``retry`` and ``on_failure=Retry(...)``; ``to`` is
                not an agent or a replica that runs; ``expect`` is not a model class.
            ProvenanceError: the input is less trusted than ``requires``; not submitted.
        """
        check_submission(to, options.get("expect"), self._namespace)
        env = envelope or Envelope(trace_id=self._trace_id, task_id=new_task_id())
        spec = make_spec(task, to=to, envelope=env, **options)
        return SubtaskHandle(self.actor, spec, self._reconnect, self._clock)

    def submit_many(
        self, tasks: Sequence[BaseModel], *, to: str, envelopes: list[Envelope] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> list[SubtaskHandle]:  # fmt: skip
        """``submit`` of every task (each its own subtask, with these options) in one call
        to the supervisor; each handle's ``result`` returns when its own subtask ends, as
        for ``submit`` (the outcomes stream back as they end). ``envelopes``: one per
        task (their task ids are the subtask ids: a known id is joined, not run again);
        default a new task id each, under the driver's trace.

        Raises:
            ConfigurationError: as for ``submit``.
            InvalidArgumentError: no tasks, more than ``MAX_BATCH`` (10,000), or not one
                envelope per task.
            ProvenanceError: an input is less trusted than ``requires``; none submitted.
        """
        check_submission(to, options.get("expect"), self._namespace)
        if envelopes is not None and len(envelopes) != len(tasks):
            raise InvalidArgumentError(f"{len(envelopes)} envelopes for {len(tasks)} tasks")
        envs = envelopes or [
            Envelope(trace_id=self._trace_id, task_id=new_task_id()) for _ in tasks
        ]
        specs = batch_specs(tasks, envs, to=to, **options)
        stream = open_batch(self.actor, specs, self._clock)
        return [SubtaskHandle(self.actor, s, self._reconnect, self._clock, stream) for s in specs]

    def verify(
        self, stage: str, claims: list[Claim], *, verifier: str,
        deadline: Deadlines | timedelta | None = None,
    ) -> SubtaskHandle:  # fmt: skip
        """Run the verifier agent ``verifier`` on ``claims`` (checked on request, e.g. a
        figure about to be used: a stage's outputs are checked by the verifier declared
        on it, see ``declare_stage``), as a supervised subtask of stage
        ``verify:<stage>`` whose output is a ``Verdict`` (kept in the subtask table).

        Raises:
            ConfigurationError: ``verifier`` is not a running agent.
            InvalidArgumentError: no claims.
        """
        request = verify_request(stage, claims)
        return self.submit(
            request, to=verifier, expect=Verdict, deadline=deadline, stage=f"verify:{stage}"
        )

    def configure(self, *, retry_budget: RetryBudget | None) -> None:
        """The retry budget of every run whose subtasks name none; it wins over the
        budget actor's. None hands runs back to the budget actor (else ``RetryBudget()``)."""
        ray.get(self.actor.configure_retry_budget.remote(retry_budget))

    def declare_stage(
        self, name: str, window: timedelta | None = None, *, requires: Provenance | None = None,
        verifier: str | None = None, verify_within: timedelta | None = None,
    ) -> None:  # fmt: skip
        """Declare stage ``name``. ``window``: report it as stalled if, once a finished
        subtask's handoff names it as ``next_stage``, no subtask with ``stage=name`` is
        submitted within it. ``requires``: every submit to it needs input at least this
        trusted (a submit's own ``requires`` may only add to it). ``verifier``: the agent
        that checks every output of the stage before it is released (within
        ``verify_within``, default 60 s); see docs/integrity.md.

        Raises:
            ConfigurationError: ``requires`` is not a ``Provenance``, ``verifier`` not an
                agent name, ``verify_within`` not positive or given without a verifier.
        """
        window_s = None if window is None else window.total_seconds()
        if verify_within is not None and verifier is None:
            raise ConfigurationError(f"stage {name!r}: verify_within without a verifier")
        rule = None
        if requires is not None or verifier is not None:
            within = verify_within or DEFAULT_VERIFY
            rule = StageRule(requires=requires, verifier=verifier, verify_within=within)
        ray.get(self.actor.declare_stage.remote(name, window_s, rule))

    def sample(
        self, stage: str, truth: Truth, *, agree: Agree | None = None,
        policy: SamplingPolicy | None = None,
    ) -> None:  # fmt: skip
        """Compare ``policy.rate`` of ``stage``'s final outputs with ``truth(message)``
        (see ``actors._supervisor.sampling``; verdicts are ``sample`` events).

        Raises:
            InvalidArgumentError: not a stage name, a callable or a ``SamplingPolicy``.
        """
        ray.get(self.actor.declare_sampler.remote(stage, truth, agree, policy or SamplingPolicy()))

    def configure_group(self, agent: str, intensity: RestartIntensity) -> None:
        """The restart intensity of agent group ``agent``."""
        ray.get(self.actor.configure_group.remote(agent, intensity))

    def escalations(self, *, include_answered: bool = False) -> list[dict[str, Any]]:
        """Escalated subtasks waiting for a human (or all, answered included)."""
        state = None if include_answered else "open"
        return ray.get(self.actor.escalations.remote(state))  # type: ignore[no-any-return]

    def answer(
        self, subtask_id: str, output: BaseModel | dict[str, Any] | None = None, *,
        reject: str | None = None,
    ) -> str:  # fmt: skip
        """Answer an escalation with an output (validated as ``expect``) or a rejection.

        Raises:
            ConfigurationError: the subtask is not escalated.
            InvalidArgumentError: the output does not validate.
        """
        return ray.get(self.actor.answer.remote(subtask_id, output, reject))  # type: ignore[no-any-return]

    def handoffs(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Handoff records of finished subtasks, oldest first."""
        return ray.get(self.actor.handoffs.remote(trace_id))  # type: ignore[no-any-return]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Audit events (kill, stall, late_result, redriven, group_failed), oldest first."""
        return ray.get(self.actor.events.remote(kind))  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        """Subtasks by state, replicas, failed groups, open escalations and stalls."""
        return ray.get(self.actor.overview.remote())  # type: ignore[no-any-return]
