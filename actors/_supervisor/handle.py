"""Handles to the supervisor: blocking ones for drivers, awaitable ones for agents."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import ray
from pydantic import BaseModel
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from policies import Deadlines, OnFailure, RestartIntensity, Retry, RetryBudget, RetryPolicy
from runtime import ConfigurationError, Envelope, new_task_id

from .reconnect import await_through_restarts, call_through_restarts
from .types import Outcome, SubtaskSpec, SubtaskStatus
from .validate import check_submission

_GONE = (RayActorError, ActorUnavailableError)
_RECONNECT_S = 60.0
_PAUSE_S = 0.05


def make_spec(
    task: BaseModel,
    *,
    to: str,
    expect: type[BaseModel] | None,
    deadline: Deadlines | timedelta | None,
    retry: RetryPolicy | None,
    on_failure: OnFailure | None,
    envelope: Envelope,
    parent: str | None = None,
    stage: str | None = None,
    next_stage: str | None = None,
    run: str | None = None,
    retry_budget: RetryBudget | None = None,
) -> SubtaskSpec:
    """The stored form of a submission. ``retry`` alone means ``Retry(policy=retry)``;
    with a non-``Retry`` ``on_failure`` it means "retry like this, then ``on_failure``".
    ``run`` and ``retry_budget``: see ``SubtaskSpec``.

    Raises:
        ConfigurationError: both ``retry`` and a ``Retry`` plan are given.
    """
    if isinstance(deadline, timedelta):
        deadline = Deadlines(running=deadline)
    if on_failure is None:
        plan: OnFailure = Retry(policy=retry or RetryPolicy())
    elif retry is None:
        plan = on_failure
    elif isinstance(on_failure, Retry):
        raise ConfigurationError("give retry= or on_failure=Retry(...), not both")
    else:
        plan = Retry(policy=retry, then=on_failure)
    return SubtaskSpec(
        subtask_id=envelope.task_id, message=task, to=to, expect=expect,
        deadlines=deadline or Deadlines(), on_failure=plan, envelope=envelope,
        parent=parent, stage=stage, next_stage=next_stage, run=run, retry_budget=retry_budget,
    )  # fmt: skip


class SubtaskHandle:
    """A submitted subtask, for a driver.

    Attributes:
        id: the subtask id (the ``task_id`` of every attempt's envelope).
    """

    def __init__(self, actor: Any, spec: SubtaskSpec) -> None:
        self.id = spec.subtask_id
        self._actor = actor
        self._spec = spec
        self.ref = actor.run.remote(spec)

    def result(self, timeout: float | None = None) -> BaseModel:
        """The output, validated as ``expect``. If the supervisor restarts meanwhile,
        the subtask is joined again by id (it was not lost).

        Raises:
            SubtaskFailedError: the subtask failed; ``reason`` and ``attempts`` say how.
            TimeoutError: ``timeout`` seconds passed first (the subtask goes on).
        """
        ends = None if timeout is None else time.monotonic() + timeout
        gone_since: float | None = None
        while True:
            left = None if ends is None else max(0.0, ends - time.monotonic())
            try:
                outcome: Outcome = ray.get(self.ref, timeout=left)
            except GetTimeoutError:
                raise TimeoutError(f"subtask {self.id} not finished after {timeout}s") from None
            except _GONE:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since > _RECONNECT_S:
                    raise
                time.sleep(_PAUSE_S)
                self.ref = self._actor.run.remote(self._spec)
                continue
            return outcome.unwrap()

    def status(self) -> SubtaskStatus:
        """Where it stands: state, target, reason and attempt history (waiting out a
        restart of the supervisor, as ``result`` does)."""
        return call_through_restarts(lambda: self._actor.status.remote(self.id))  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        """Fail it with reason cancelled; False if it had already finished."""
        return ray.get(self._actor.cancel.remote(self.id))  # type: ignore[no-any-return]


class Supervisor:
    """The driver's handle to the ``supervisor`` actor (``system.supervisor``)."""

    def __init__(self, actor: Any, trace_id: str, namespace: str | None = None) -> None:
        self.actor = actor
        self._trace_id = trace_id
        self._namespace = namespace

    def submit(
        self,
        task: BaseModel,
        *,
        to: str,
        expect: type[BaseModel] | None = None,
        deadline: Deadlines | timedelta | None = None,
        retry: RetryPolicy | None = None,
        on_failure: OnFailure | None = None,
        stage: str | None = None,
        next_stage: str | None = None,
        envelope: Envelope | None = None,
        run: str | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> SubtaskHandle:
        """Run ``task`` on agent ``to`` (a name, or one replica ``"name:i"``), held to
        ``deadline`` (a ``timedelta`` bounds the running phase) and to ``expect``. Its
        retries draw on the retry budget of ``run`` (default: the system's trace id, so
        every driver submission shares one), which is ``retry_budget`` if the run has
        none yet (see ``configure``).

        Raises:
            ConfigurationError: both ``retry`` and ``on_failure=Retry(...)``; ``to`` is
                not an agent or a replica that runs; ``expect`` is not a model class.
        """
        check_submission(to, expect, self._namespace)
        env = envelope or Envelope(trace_id=self._trace_id, task_id=new_task_id())
        spec = make_spec(
            task, to=to, expect=expect, deadline=deadline, retry=retry, on_failure=on_failure,
            envelope=env, stage=stage, next_stage=next_stage, run=run, retry_budget=retry_budget,
        )  # fmt: skip
        return SubtaskHandle(self.actor, spec)

    def configure(self, *, retry_budget: RetryBudget | None) -> None:
        """The retry budget of every run whose subtasks name none; it wins over the
        budget actor's. None hands runs back to the budget actor (else ``RetryBudget()``)."""
        ray.get(self.actor.configure_retry_budget.remote(retry_budget))

    def declare_stage(self, name: str, window: timedelta) -> None:
        """Report stage ``name`` as stalled if, once a finished subtask's handoff names it
        as ``next_stage``, no subtask with ``stage=name`` is submitted within ``window``."""
        ray.get(self.actor.declare_stage.remote(name, window.total_seconds()))

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


class AsyncSubtaskHandle:
    """A subtask submitted from inside an agent; ``await handle.result()``."""

    def __init__(self, actor: Any, spec: SubtaskSpec) -> None:
        self.id = spec.subtask_id
        self._actor = actor
        self._spec = spec
        self._ref = actor.run.remote(spec)

    async def result(self, timeout: float | None = None) -> BaseModel:
        """See ``SubtaskHandle.result``.

        Raises:
            SubtaskFailedError: the subtask failed.
            TimeoutError: ``timeout`` seconds passed first.
        """
        loop = asyncio.get_running_loop()
        gone_since: float | None = None
        while True:
            try:
                outcome: Outcome = await asyncio.wait_for(asyncio.shield(self._ref), timeout)
            except _GONE:
                gone_since = gone_since or loop.time()
                if loop.time() - gone_since > _RECONNECT_S:
                    raise
                await asyncio.sleep(_PAUSE_S)
                self._ref = self._actor.run.remote(self._spec)
                continue
            return outcome.unwrap()

    async def status(self) -> SubtaskStatus:
        """See ``SubtaskHandle.status``."""
        return await await_through_restarts(lambda: self._actor.status.remote(self.id))  # type: ignore[no-any-return]

    async def cancel(self) -> bool:
        return await self._actor.cancel.remote(self.id)  # type: ignore[no-any-return]


class AsyncSupervisor:
    """The supervisor as an agent sees it (``self.supervisor``): subtasks it submits are
    children of its current task, under the same trace id."""

    def __init__(self, actor: Any, sender: str, parent: Envelope | None) -> None:
        self._actor = actor
        self._sender = sender
        self._parent = parent

    def submit(
        self,
        task: BaseModel,
        *,
        to: str,
        expect: type[BaseModel] | None = None,
        deadline: Deadlines | timedelta | None = None,
        retry: RetryPolicy | None = None,
        on_failure: OnFailure | None = None,
        stage: str | None = None,
        next_stage: str | None = None,
        run: str | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> AsyncSubtaskHandle:
        """See ``Supervisor.submit``; the subtask is a child of the current task.

        Raises:
            ConfigurationError: as for ``Supervisor.submit``.
        """
        check_submission(to, expect, ray.get_runtime_context().namespace)
        task_id = new_task_id()
        env = (
            Envelope(sender=self._sender, task_id=task_id)
            if self._parent is None
            else self._parent.child(sender=self._sender, task_id=task_id)
        )
        spec = make_spec(
            task, to=to, expect=expect, deadline=deadline, retry=retry, on_failure=on_failure,
            envelope=env, parent=None if self._parent is None else self._parent.task_id,
            stage=stage, next_stage=next_stage, run=run, retry_budget=retry_budget,
        )  # fmt: skip
        return AsyncSubtaskHandle(self._actor, spec)


_ACTORS: dict[str, Any] = {}


def supervisor_actor(namespace: str) -> Any:
    """The ``supervisor`` actor of ``namespace``, cached per process.

    Raises:
        ConfigurationError: no supervisor runs in the namespace.
    """
    if namespace not in _ACTORS:
        try:
            _ACTORS[namespace] = ray.get_actor("supervisor", namespace=namespace)
        except ValueError as error:
            raise ConfigurationError(f"no supervisor in namespace {namespace!r}") from error
    return _ACTORS[namespace]


def send_heartbeat(namespace: str, envelope: Envelope) -> None:
    """Tell the supervisor the attempt running under ``envelope`` is alive (no wait)."""
    try:
        actor = supervisor_actor(namespace)
    except ConfigurationError:
        return  # not supervised: nobody to tell
    actor.heartbeat.remote(envelope.task_id, envelope.span_id)
