"""The lock table in memory: who holds each key, who waits for it, in what order.

A lease takes its keys one at a time, in the global order: it holds the first ones while it
waits for the next. Each key has its holders (one exclusive, or any number of shared) and
a FIFO queue of waiting leases: a lease is granted a key only when no lease queued before it
on that key is still waiting, so a queued exclusive request blocks the shared ones that came
after it, and no writer starves. Tokens are drawn from one counter, so they grow per key.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LeaseState:
    """One lease: held, or waiting for its next key while holding the ones before it.

    Times are wall-clock seconds since the epoch (they must mean the same after a restart).
    """

    lease_id: str
    owner: str
    agent: str
    keys: tuple[str, ...]
    shared: bool
    ttl: float
    expected: float
    started: float
    deadline: float
    expires_at: float | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    wait_seq: int = 0  # when it started waiting for its current key: the youngest is highest
    alerted: bool = False

    @property
    def held(self) -> bool:
        return len(self.tokens) == len(self.keys)

    @property
    def waiting_on(self) -> str | None:
        return None if self.held else self.keys[len(self.tokens)]

    def stored(self) -> dict[str, Any]:
        """The lease's row (its tokens are rows of their own)."""
        return {
            "lease_id": self.lease_id, "owner": self.owner, "agent": self.agent,
            "keys": list(self.keys), "shared": self.shared, "ttl": self.ttl,
            "expected": self.expected, "started": self.started, "deadline": self.deadline,
            "expires_at": self.expires_at,
        }  # fmt: skip


@dataclass(slots=True)
class KeyState:
    """The holders of one key (lease id -> shared) and the leases queued for it."""

    holders: dict[str, bool] = field(default_factory=dict)
    queue: deque[str] = field(default_factory=deque)


def conflicts(shared_a: bool, shared_b: bool) -> bool:
    """Two leases of one key conflict unless both are shared."""
    return not (shared_a and shared_b)


class LockTable:
    """Leases and keys in memory; ``take`` and ``drop`` return the leases they completed."""

    def __init__(self, token: int = 0) -> None:
        self.leases: dict[str, LeaseState] = {}
        self.keys: dict[str, KeyState] = {}
        self.token = token
        self._wait_seq = 0
        self.granted: list[tuple[str, str, int]] = []  # (key, lease, token) since last drained

    def next_token(self) -> int:
        self.token += 1
        return self.token

    def restore(self, lease: LeaseState, grants: dict[str, int]) -> None:
        """Put back a stored lease with its granted keys; it queues for its next key."""
        self.leases[lease.lease_id] = lease
        for key in lease.keys:
            if key in grants:
                lease.tokens[key] = grants[key]
                self.keys.setdefault(key, KeyState()).holders[lease.lease_id] = lease.shared
        if not lease.held:
            self._queue(lease)

    def settle(self) -> list[LeaseState]:
        """After ``restore``: grant what the restored holders left free."""
        done: list[LeaseState] = []
        for key in list(self.keys):
            self._advance(key, done)
        return done

    def take(self, lease: LeaseState) -> list[LeaseState]:
        """Add a new lease: grant what is free now, queue for the rest.

        Returns:
            The leases that became held (this one, if all its keys were free).
        """
        self.leases[lease.lease_id] = lease
        done: list[LeaseState] = []
        self._progress(lease, done)
        return done

    def drop(self, lease_id: str) -> tuple[LeaseState | None, list[LeaseState]]:
        """Remove a lease (released, expired, timed out, killed, or a deadlock's victim)
        and hand its keys on.

        Returns:
            The lease (None if unknown) and the leases that became held.
        """
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return None, []
        touched = list(lease.tokens)
        waiting = lease.waiting_on
        if waiting is not None:
            self.keys[waiting].queue.remove(lease_id)
            touched.append(waiting)
        for key in lease.tokens:
            del self.keys[key].holders[lease_id]
        done: list[LeaseState] = []
        for key in touched:
            self._advance(key, done)
        return lease, done

    def blockers(self, lease: LeaseState) -> Iterator[LeaseState]:
        """The leases ``lease`` waits for: conflicting holders of its key and conflicting
        leases queued before it."""
        key = lease.waiting_on
        if key is None:
            return
        state = self.keys[key]
        for holder, shared in state.holders.items():
            if conflicts(shared, lease.shared):
                yield self.leases[holder]
        for queued in state.queue:
            if queued == lease.lease_id:
                return
            ahead = self.leases[queued]
            if conflicts(ahead.shared, lease.shared):
                yield ahead

    def held_by(self, owner: str) -> set[str]:
        """Every key granted to a lease of ``owner``."""
        leases = self.leases.values()
        return {key for lease in leases if lease.owner == owner for key in lease.tokens}

    def _progress(self, lease: LeaseState, done: list[LeaseState]) -> None:
        """Grant ``lease`` its next keys while each is free and nobody waits before it."""
        while (key := lease.waiting_on) is not None:
            state = self.keys.setdefault(key, KeyState())
            if state.queue or not self._fits(state, lease.shared):
                self._queue(lease)
                return
            self._grant(state, key, lease)
        done.append(lease)

    def _advance(self, key: str, done: list[LeaseState]) -> None:
        """Grant ``key`` to the leases at the head of its queue while they fit."""
        state = self.keys.get(key)
        while state is not None and state.queue:
            head = self.leases[state.queue[0]]
            if not self._fits(state, head.shared):
                return
            state.queue.popleft()
            self._grant(state, key, head)
            self._progress(head, done)
        if state is not None and not state.holders and not state.queue:
            del self.keys[key]  # a key nobody holds or waits for costs nothing

    def _fits(self, state: KeyState, shared: bool) -> bool:
        return not any(conflicts(held, shared) for held in state.holders.values())

    def _grant(self, state: KeyState, key: str, lease: LeaseState) -> None:
        token = self.next_token()
        lease.tokens[key] = token
        state.holders[lease.lease_id] = lease.shared
        self.granted.append((key, lease.lease_id, token))

    def _queue(self, lease: LeaseState) -> None:
        key = lease.waiting_on
        assert key is not None
        self._wait_seq += 1
        lease.wait_seq = self._wait_seq
        self.keys.setdefault(key, KeyState()).queue.append(lease.lease_id)
