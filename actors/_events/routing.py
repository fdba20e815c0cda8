"""Which replica of a consumer group takes a resource's events, and waiting for the
answer to a delivery call.

A partition maps to one live replica (a stable pick by the resource's name), and it has
one delivery call out at a time: it is never handled by two replicas at once, nor twice
by one. So a call not answered within ``delivery_timeout`` is not sent again, to the
replica it runs on (the second call would queue behind the first, run the batch's
handlers twice, and a batch longer than the timeout would never be done) nor to another
(a scaled group may map the partition elsewhere now: two replicas would run its events at
once, out of order). It is waited for until it answers or fails, shown as slow
meanwhile; a replica that dies fails its calls (Ray resolves them with an actor error),
and the batch then goes to whichever replica the partition maps to.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

from runtime import ConfigurationError

from .._agent.group import replicas_of

_Replicas = list[Any]  # the replicas' actors, sorted by their names


def future_of(ref: Any) -> asyncio.Future[Any]:
    """The result of ``ref`` as a future: ``wait_for`` on the ref itself wraps it in a
    task (about 40 us more CPU per call, measured side by side); ``ref.as_future()``
    logs a deprecation warning on every call."""
    return asyncio.wrap_future(ref.future())


class ReplicaRoutes:
    """The replicas of each consumer group, looked up once and again after a failure.

    Args:
        namespace: the system's namespace.
        timeout_s: how long a call is waited for before the replicas are looked up
            again (``EventsPolicy.delivery_timeout``).
    """

    def __init__(self, namespace: str, timeout_s: float) -> None:
        self._namespace = namespace
        self._timeout_s = timeout_s
        self._replicas: dict[str, _Replicas] = {}

    def forget(self, group: str) -> None:
        """Look ``group``'s replicas up again at the next pick."""
        self._replicas.pop(group, None)

    async def pick(self, group: str, resource: str) -> Any:
        """The replica of ``group`` that takes ``resource``'s events. The
        look-up asks the GCS and waits for pooled hosts Ray is restarting: on a thread,
        so the other partitions' deliveries go on meanwhile.

        Raises:
            ConfigurationError: the group has no live replica.
        """
        replicas = self._replicas.get(group)
        if replicas is None:
            found = await asyncio.to_thread(replicas_of, self._namespace, group)
            replicas = self._replicas[group] = [found[name] for name in sorted(found)]
        if not replicas:
            self._replicas.pop(group, None)
            raise ConfigurationError(f"no live replica of {group!r}")
        return replicas[zlib.crc32(resource.encode()) % len(replicas)]

    async def answer(self, group: str, sent: Any, slow: Callable[[], None]) -> Any:
        """The answer to ``sent``, a delivery call of a partition of ``group``; past each
        timeout ``slow()`` is called, the group's replicas are looked up afresh for the
        next pick, and the call is waited for again.

        Raises:
            Exception: whatever the call raised (the replica died, a Ray error).
        """
        while True:
            try:
                return await asyncio.wait_for(future_of(sent), self._timeout_s)
            except TimeoutError:
                self.forget(group)
                slow()
