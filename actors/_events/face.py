"""The driver's side of events: starting the dispatcher, registering consumer groups,
and ``Subscriptions`` (lag, status, replay)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from policies import EventsPolicy
from runtime import get_or_spawn, lookup

from .dead_letters import DeadLetter
from .host import EventsHost
from .nudge import DISPATCHER as DISPATCHER
from .partition import Lag
from .subscribe import types_of

_RETRY_S = 0.2  # between calls to a dispatcher Ray is restarting
_ANSWER_S = 5.0  # past the wait's own end: a paused or wedged dispatcher never answers


def start_dispatcher(
    root: str, namespace: str, policy: EventsPolicy | None = None
) -> tuple[Any, bool]:
    """The dispatcher of ``namespace``, started with ``policy`` if it is not running.

    Returns:
        Its handle, and whether this call started it.
    """
    return get_or_spawn(
        EventsHost, root, namespace, policy or EventsPolicy(),
        name=DISPATCHER, namespace=namespace, storage=root,
    )  # fmt: skip


def register_subscriber(
    cls: type, name: str, root: str, namespace: str, spawned: list[Any]
) -> None:
    """If agent class ``cls`` has ``@subscribe`` handlers, make agent ``name`` a consumer
    group, starting the dispatcher if needed (``System.agent``'s hook).

    Raises:
        ConfigurationError: a malformed ``@subscribe`` handler.
    """
    types = types_of(cls)
    if not types:
        return
    actor, started = start_dispatcher(root, namespace)
    if started:
        spawned.append(actor)
    ray.get(actor.register.remote(name, types))


class Subscriptions:
    """The consumer groups of a namespace, from a driver: ``Subscriptions(system.namespace)``.

    ``start`` chooses the dispatcher's ``EventsPolicy`` (call it before the first
    subscribing agent); otherwise the first subscribing agent starts it with the default.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    @classmethod
    def start(cls, system: Any, policy: EventsPolicy | None = None) -> Subscriptions:
        """Start the dispatcher of ``system`` with ``policy`` if it is not running."""
        actor, started = start_dispatcher(str(system.root), system.namespace, policy)
        if started:
            system._spawned.append(actor)
        return cls(system.namespace)

    def _actor(self) -> Any:
        return lookup(DISPATCHER, self.namespace)

    def lags(self) -> list[Lag]:
        """Every partition (group x resource): checkpoint and newest event number.

        Raises:
            ConfigurationError: no dispatcher runs.
        """
        return list(ray.get(self._actor().lags.remote()))

    def status(self) -> list[dict[str, Any]]:
        """Per partition: checkpoint, newest event, lag, handled, last error."""
        return list(ray.get(self._actor().status.remote()))

    def replay(self, group: str | list[str], resource: str, *, after: int = 0) -> None:
        """Deliver ``resource``'s retained events after ``after`` (default: from the
        start) to ``group`` (a name, or a list of them: one transaction) again;
        handlers see them again, their writes deduplicate. A batch out at the time is
        delivered again after the replay, whatever its report says.

        Raises:
            ConfigurationError: no such group or resource, or ``after`` is not an int
                from 0 to the resource's newest event number.
            StorageError: the resource's events could not be read.
        """
        ray.get(self._actor().rewind.remote(group, resource, after))

    def dead_letters(self, group: str) -> list[DeadLetter]:
        """``group``'s dead letters: events its handler failed ``max_delivery_attempts``
        times in a row, set aside so its partitions went on (docs/events.md)."""
        return list(ray.get(self._actor().dead_letters.remote(group)))

    def redeliver(self, group: str, event_id: str) -> bool:
        """Deliver dead letter ``event_id`` to ``group`` once more, now (its handler's
        writes are keyed from the event id: an effect that happened once is not applied
        again). Returns whether it was handled (then the letter is deleted); if not, the
        letter counts the attempt and keeps the new error.

        Raises:
            UnknownDeadLetterError: ``group`` has no such dead letter.
            ConfigurationError: no replica of ``group`` is running.
        """
        return bool(ray.get(self._actor().redeliver.remote(group, event_id)))

    def forget(self, group: str) -> None:
        """Stop delivering to ``group`` and drop its checkpoints and dead letters."""
        ray.get(self._actor().forget.remote(group))

    def wait_caught_up(
        self, timeout: timedelta = timedelta(seconds=60), *,
        upto: dict[str, int] | None = None, groups: list[str] | None = None,
    ) -> list[Lag]:  # fmt: skip
        """Wait until each partition of ``groups`` (default: every group) has its
        checkpoint at ``upto[resource]`` or past it (default: each resource's newest
        event number now); every partition's lag at the end. One call, answered by the
        dispatcher when the checkpoints move there. If the dispatcher dies meanwhile,
        the call is made again to its next incarnation within ``timeout``.

        Raises:
            TimeoutError: a partition is still behind after ``timeout``, or the
                dispatcher gave no answer a few seconds past it (paused or wedged).
            InvalidArgumentError: malformed ``upto`` or ``groups``.
            ConfigurationError: no dispatcher runs, or no such group.
        """
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the dispatcher of {self.namespace!r} did not answer")
            try:
                ref = self._actor().wait_caught_up.remote(upto, groups, left)
                return list(ray.get(ref, timeout=left + _ANSWER_S))
            except GetTimeoutError as error:
                raise TimeoutError(
                    f"the dispatcher of {self.namespace!r} did not answer"
                ) from error
            except RayActorError:  # died or restarting: asked again, within the deadline
                time.sleep(min(_RETRY_S, max(left, 0.0)))
