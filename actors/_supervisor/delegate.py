"""The supervisor as an agent sees it (``self.supervisor``): what it submits are children
of the task it handles, carrying its constraints, the provenance it derived and the
decision-log versions it is briefed on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Unpack

import ray
from pydantic import BaseModel

from policies import ConstraintSet, Deadlines
from runtime import MAX_BRIEFED_TOPICS, Clock, Envelope, SystemClock, new_task_id

from .._agent.derived import derived, sources
from .._reconnect import Reconnect
from .._resource.briefing import briefed_now
from .calls import batch_specs, open_batch
from .handle import NONE, AsyncSubtaskHandle
from .spec import SubmitOptions, make_spec
from .validate import check_submission
from .verify import Claim, Verdict, verify_request


class AsyncSupervisor:
    """The supervisor as an agent sees it (``self.supervisor``): subtasks it submits are
    children of its current task, under the same trace id."""

    def __init__(
        self,
        actor: Any,
        sender: str,
        parent: Envelope | None,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._actor = actor
        self._sender = sender
        self._parent = parent
        self._parent_id = None if parent is None else parent.task_id
        self._reconnect = reconnect or Reconnect()
        self._clock = clock or SystemClock()

    def submit(
        self,
        task: BaseModel,
        *,
        to: str,
        constraints: ConstraintSet | None = None,
        **options: Unpack[SubmitOptions],
    ) -> AsyncSubtaskHandle:
        """See ``Supervisor.submit``; a child of the current task, carrying its constraints
        or ``constraints`` if they are at least as strict (``Envelope.child``).

        Raises:
            ConfigurationError: as for ``Supervisor.submit``.
            ConstraintLoosenedError, InvalidArgumentError: see ``Envelope.child``.
        """
        check_submission(to, options.get("expect"), ray.get_runtime_context().namespace)
        spec = make_spec(
            task, to=to, envelope=self._child(constraints), parent=self._parent_id, **options
        )
        return AsyncSubtaskHandle(self._actor, spec, self._reconnect, self._clock)

    def submit_many(
        self, tasks: Sequence[BaseModel], *, to: str, constraints: ConstraintSet | None = None,
        **options: Unpack[SubmitOptions],
    ) -> list[AsyncSubtaskHandle]:  # fmt: skip
        """See ``Supervisor.submit_many``; each a child of the current task, as ``submit``.

        Raises:
            ConfigurationError, InvalidArgumentError, ProvenanceError: as for
                ``Supervisor.submit_many``.
            ConstraintLoosenedError: see ``Envelope.child``.
        """
        check_submission(to, options.get("expect"), ray.get_runtime_context().namespace)
        envelopes = [self._child(constraints) for _ in tasks]
        specs = batch_specs(tasks, envelopes, to=to, parent=self._parent_id, **options)
        stream = open_batch(self._actor, specs, self._clock)
        return [AsyncSubtaskHandle(self._actor, s, self._reconnect, self._clock, stream)
                for s in specs]  # fmt: skip

    def verify(
        self, stage: str, claims: list[Claim], *, verifier: str,
        deadline: Deadlines | timedelta | None = None,
    ) -> AsyncSubtaskHandle:  # fmt: skip
        """See ``Supervisor.verify``: a child of the current task; ``await
        handle.result()`` is the ``Verdict``.

        Raises:
            ConfigurationError: ``verifier`` is not a running agent.
            InvalidArgumentError: no claims.
        """
        request = verify_request(stage, claims)
        return self.submit(
            request, to=verifier, expect=Verdict, deadline=deadline, stage=f"verify:{stage}"
        )

    def _child(self, constraints: ConstraintSet | None) -> Envelope:
        """A new task's envelope: a child of the current task (derived), or a root."""
        if self._parent is None:
            return Envelope(sender=self._sender, task_id=new_task_id(),
                            constraints=constraints or NONE)  # fmt: skip
        child = self._parent.child(sender=self._sender, task_id=new_task_id(),
                                   constraints=constraints, provenance=derived(),
                                   sources=sources())  # fmt: skip
        return replace(child, briefed=_briefed(self._parent))


def _briefed(parent: Envelope) -> tuple[tuple[str, int], ...]:
    """A child's briefing: its parent task's as it is now, a decision the task read or
    recorded included (the child works on what the parent decided with), and never
    lower than the parent's envelope; at most ``MAX_BRIEFED_TOPICS`` topics."""
    carried = dict(parent.briefed)
    for topic, version in briefed_now():  # none outside the parent's task
        if topic in carried or len(carried) < MAX_BRIEFED_TOPICS:
            carried[topic] = max(carried.get(topic, 0), version)
    return tuple(sorted(carried.items()))
