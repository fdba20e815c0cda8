"""The logic of a submitted subtask, written once for both faces of its handle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray
from pydantic import BaseModel

from runtime import Clock, ConfigurationError, Envelope

from .._reconnect import Plan, Reconnect, Resolve, Take, reconnecting
from .batch import check_batch
from .spec import make_spec
from .stream import OutcomeStream
from .types import Outcome, SubtaskSpec, SubtaskStatus

SUPERVISOR = "supervisor"


class SubtaskCalls:
    """The logic of a submitted subtask, for both faces: each call is a plan
    (``actors._reconnect``). Submitting runs the subtask at once: alone (one ``run`` call
    here), or as one of a batch whose outcomes come on ``stream`` (``submit_many``)."""

    def __init__(
        self,
        actor: Any,
        spec: SubtaskSpec,
        reconnect: Reconnect,
        clock: Clock,
        stream: OutcomeStream | None = None,
    ) -> None:
        self.actor = actor
        self.spec = spec
        self.reconnect = reconnect
        self.clock = clock
        self.stream = stream
        self.ref = None if stream is not None else actor.run.remote(spec)

    def outcome(self, timeout: float | None) -> Plan[Outcome]:
        """The outcome. While the supervisor restarts, the subtask is joined again by id
        (``run`` of a known id waits for it rather than starting it again); so is a
        subtask of a batch whose stream broke."""
        ends = None if timeout is None else self.clock.monotonic() + timeout

        def left() -> float | None:
            return None if ends is None else max(0.0, ends - self.clock.monotonic())

        try:
            if self.stream is not None and self.ref is None:
                streamed: Outcome | None = yield Take(self.stream, self.spec.subtask_id, left())
                if streamed is not None:
                    return streamed
            outcome: Outcome = yield from reconnecting(
                self._join_again, reconnect=self.reconnect, clock=self.clock,
                target=SUPERVISOR, sent=self.ref, timeout=left,
            )  # fmt: skip
        except TimeoutError:
            raise TimeoutError(
                f"subtask {self.spec.subtask_id} not finished after {timeout}s"
            ) from None
        return outcome

    def status(self) -> Plan[SubtaskStatus]:
        """Where the subtask stands, asked again while the supervisor restarts."""
        status: SubtaskStatus = yield from reconnecting(
            lambda: self.actor.status.remote(self.spec.subtask_id),
            reconnect=self.reconnect, clock=self.clock, target=SUPERVISOR,
        )  # fmt: skip
        return status

    def cancel(self) -> Plan[bool]:
        cancelled: bool = yield Resolve(self.actor.cancel.remote(self.spec.subtask_id))
        return cancelled

    def _join_again(self) -> Any:
        self.ref = self.actor.run.remote(self.spec)
        return self.ref


def batch_specs(
    tasks: Sequence[BaseModel], envelopes: Sequence[Envelope], **options: Any
) -> list[SubtaskSpec]:
    """One spec per task, each under its envelope, with the same ``make_spec`` options.

    Raises:
        ConfigurationError, ProvenanceError: as ``make_spec``; none is submitted.
    """
    return [
        make_spec(task, envelope=env, **options) for task, env in zip(tasks, envelopes, strict=True)
    ]


def open_batch(actor: Any, specs: list[SubtaskSpec], clock: Clock) -> OutcomeStream:
    """Send every spec in one ``run_many`` call; its outcomes stream back.

    Raises:
        InvalidArgumentError: an empty batch, or more than ``MAX_BATCH`` specs.
    """
    check_batch(specs)
    return OutcomeStream(actor.run_many.options(num_returns="streaming").remote(specs), clock)


_ACTORS: dict[str, Any] = {}


def supervisor_actor(namespace: str) -> Any:
    """The ``supervisor`` actor of ``namespace``, cached per process.

    Raises:
        ConfigurationError: no supervisor runs in the namespace.
    """
    if namespace not in _ACTORS:
        try:
            _ACTORS[namespace] = ray.get_actor(SUPERVISOR, namespace=namespace)
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
