"""Wedged replicas: an attempt that missed its deadline (or was cancelled) is asked to stop;
one that has not let go of its replica ``Deadlines.grace`` later has wedged the replica,
which is then restarted, within its group's restart intensity, and reported.

Ray interrupts a running async handler on cancel, but a handler that blocks its event loop
(or a sync actor) cannot be interrupted: restarting the replica is the only way to get the
slot back, as an Erlang supervisor restarts a child that does not exit on shutdown.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable

from runtime import Clock

from .background import Background
from .planner import FailurePlanner
from .pool import Pool, group_of
from .state import Attempt
from .store import SubtaskStore
from .types import Dispatcher

_log = logging.getLogger(__name__)


class ReplicaRestarts:
    """Watches stopped attempts until they let go, and restarts the replicas they wedge.

    Args:
        pool: the replicas; a restarted one comes back as a new generation.
        planner: the restart intensity of each group.
        dispatcher: restarts a replica.
        store: where each wedged replica is reported (an event).
        clock: the supervisor's clock.
        background: runs restarts.
        on_back: told of a replica restarted (its queue can start).
        on_lost: told of a replica that could not be restarted, with why.
    """

    def __init__(
        self,
        pool: Pool,
        planner: FailurePlanner,
        dispatcher: Dispatcher,
        store: SubtaskStore,
        *,
        clock: Clock,
        background: Background,
        on_back: Callable[[str], None],
        on_lost: Callable[[str, int, str], None],
    ) -> None:
        self._pool = pool
        self._planner = planner
        self._dispatcher = dispatcher
        self._store = store
        self._clock = clock
        self._background = background
        self._on_back = on_back
        self._on_lost = on_lost
        self._watched: list[tuple[float, int, Attempt]] = []
        self._seq = itertools.count()
        self.restarting: set[str] = set()
        self.restarts: dict[str, int] = {}

    def waited_for(self, target: str) -> bool:
        """Whether ``target`` (a group, or one replica ``name:i``) has a replica being
        restarted: its attempts wait for it (the restart's end pumps their queue), they
        are not failed no_agent as if it were dead."""
        return target in self.restarting or any(group_of(r) == target for r in self.restarting)

    def watch(self, attempt: Attempt, grace: float) -> None:
        """``attempt`` was asked to stop: it must return within ``grace`` seconds."""
        if attempt.replica is not None and not attempt.returned:
            at = self._clock.monotonic() + grace
            heapq.heappush(self._watched, (at, next(self._seq), attempt))

    def tick(self, now: float) -> None:
        """Restart the replicas of watched attempts still running past their grace."""
        while self._watched and self._watched[0][0] <= now:
            attempt = heapq.heappop(self._watched)[2]
            if attempt.returned or attempt.replica is None:
                continue
            if self._pool.generation(attempt.replica) != attempt.generation:
                continue  # restarted or gone already
            self._wedged(attempt.replica, attempt.generation)

    def _wedged(self, replica: str, generation: int) -> None:
        allowed = self._planner.may_restart(group_of(replica))
        self._store.stage_event(
            self._clock.now().timestamp(), "wedged", replica, {"restarted": allowed}
        )
        self._background.spawn(self._store.commit())
        if not allowed:
            self._on_lost(replica, generation, "wedged past its grace, restart intensity spent")
            return
        self.restarting.add(replica)
        self._pool.remove(replica, generation)
        self._background.spawn(self._restart(replica, generation))

    async def _restart(self, replica: str, generation: int) -> None:
        try:
            info = await self._dispatcher.restart(replica)
        except Exception as error:
            _log.warning("restarting wedged replica %s failed: %s", replica, error)
            self.restarting.discard(replica)
            self._on_lost(replica, generation, f"wedged, and its restart failed: {error}")
            return
        self.restarting.discard(replica)
        self.restarts[replica] = self.restarts.get(replica, 0) + 1
        self._pool.renew(info)
        self._on_back(replica)
