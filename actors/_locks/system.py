"""The locks actor as a system sees it: started on first use (by the driver or by an agent),
leases for the driver, and stopped with the system."""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import timedelta
from typing import Any

import ray

from policies import LockPolicy
from runtime import Clock, ConfigurationError, lookup

from .client import LOCKS_ACTOR, LocksCalls, LocksHandle, ensure_locks
from .lease import Lease, lease_request


class SystemLocks:
    """The locks actor of one system: ``use`` starts it (or joins it), ``lease`` takes a
    driver's lease, ``stop`` stops it when an agent of the system started it."""

    def __init__(self, root: str, namespace: str, spawned: list[Any]) -> None:
        self._root = root
        self._namespace = namespace
        self._spawned = spawned
        self._calls: LocksCalls | None = None

    def use(self, policy: LockPolicy | None = None, clock: Clock | None = None) -> LocksCalls:
        """The calls to the locks actor, started with ``policy`` on ``clock`` if this
        starts it (a running actor keeps the policy it was started with)."""
        if self._calls is None:
            actor, started = ensure_locks(self._root, self._namespace, policy, clock=clock)
            if started:
                self._spawned.append(actor)
            self._calls = LocksCalls(lambda: actor)
        return self._calls

    def handle(self, policy: LockPolicy | None = None, clock: Clock | None = None) -> LocksHandle:
        return LocksHandle(self.use(policy, clock))

    def lease(
        self, keys: tuple[str, ...], *, ttl: timedelta | None, expected: timedelta | None,
        shared: bool, timeout: timedelta | None,
    ) -> Lease:  # fmt: skip
        """A driver's lease: its owner is this process and thread."""
        owner = f"system:{os.getpid()}:{threading.get_ident()}"
        request = lease_request(
            keys, owner=owner, agent="system", ttl=ttl, expected=expected, shared=shared,
            timeout=timeout,
        )  # fmt: skip
        return Lease(self.use(), request)

    def stop_if_agents_started_it(self) -> None:
        """An agent of this system started the locks actor (detached, so that it did not
        die with that agent): it stops with the system, like one the driver started."""
        if self._calls is None:
            with contextlib.suppress(ConfigurationError):
                ray.kill(lookup(LOCKS_ACTOR, self._namespace), no_restart=True)
