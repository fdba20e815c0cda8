"""The logic of the locks actor as a plain class: grant, renew, release, expire, kill, and
break deadlocks, every change stored before it is answered.

The Ray actor (``_locks.host``) queues calls, hands them to this class one batch at a time,
commits, and only then answers; so every rule here is tested without Ray. Time comes from
the injected clock: wall-clock seconds, so that expiry times mean the same after a restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from policies import LockPolicy, breaks_order, in_lock_order
from runtime import (
    Clock,
    DeadlockError,
    InvalidArgumentError,
    LeaseExpiredError,
    Location,
    LockError,
    LockOrderError,
    LockTimeoutError,
    SystemClock,
)

from .graph import find_cycle, victim
from .status import KeyStatus, LeaseGrant, LocksStatus, WaitAlert
from .store import Changes, LockEvent, LocksStore
from .table import LeaseState, LockTable

_NAME_CHARS = 256
Outcome = LeaseGrant | LockError
"""How a waiting lease ends: granted, or refused with a typed error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Acquire:
    """One request for a lease, as a handle sends it (``LocksCore.check`` validates it).

    Attributes:
        lease_id: chosen by the caller, unique; sending it again (after the actor
            restarted) resumes the same lease. owner: who holds and waits
            (``agent:replica:task``). agent: the agent, for the kill switch.
        keys: the keys, any order. shared: a shared (reader) lease.
        ttl_s: time to live. expected_s: declared hold time (the wait alert's unit).
        timeout_s: how long to wait for the keys.
    """

    lease_id: str
    owner: str
    agent: str
    keys: tuple[str, ...]
    shared: bool = False
    ttl_s: float | None = None
    expected_s: float | None = None
    timeout_s: float | None = None


class LocksCore:
    """Leases on named keys, durable in ``<root>/locks.sqlite``.

    Raises:
        StorageError: the store cannot be opened or read.
    """

    def __init__(
        self,
        root: Location,
        policy: LockPolicy | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.policy = policy or LockPolicy()
        self._clock = clock or SystemClock()
        self._store = LocksStore(root, self.policy.durability)
        self._changes = Changes()
        self._resolved: dict[str, Outcome] = {}
        self._queued: set[str] = set()
        self.deadlocks = 0
        # the first key of each lease refused to break a cycle, until the host counts it
        self.broken_keys: list[str] = []
        self.expired = 0
        self.counts: dict[str, int] = {}
        stored = self._store.open_incarnation()
        self.incarnation = stored.incarnation
        self.table = LockTable(stored.token)
        self._restore(stored.leases, stored.grants)

    def _restore(self, rows: list[dict[str, Any]], grants: list[tuple[str, str, int]]) -> None:
        by_lease: dict[str, dict[str, int]] = {}
        for key, lease_id, token in grants:
            by_lease.setdefault(lease_id, {})[key] = token
        for row in sorted(rows, key=lambda r: r["started"]):
            lease = LeaseState(**{**row, "keys": tuple(row["keys"])})
            self.table.restore(lease, by_lease.get(lease.lease_id, {}))
        self._granted(self.table.settle())

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # -- calls ----------------------------------------------------------------------

    def acquire(self, request: Acquire) -> LeaseGrant | None:
        """Grant the lease now, or queue it (None: its outcome comes from ``resolved``).

        A known ``lease_id`` resumes its lease: its grant if held, else None again.

        Raises:
            InvalidArgumentError: a malformed request.
            LockOrderError: keys that do not sort after every key the owner holds (when
                ``LockPolicy.enforce_order``).
            DeadlockError: waiting would close a cycle and this lease is the youngest.
        """
        keys, ttl, expected, timeout = self.check(request)
        known = self.table.leases.get(request.lease_id)
        if known is not None:
            return self._grant_of(known) if known.held else None
        if self.policy.enforce_order:
            held = breaks_order(self.table.held_by(request.owner), keys, self.policy.order)
            if held:
                self._event("order_refused", keys[0], request.lease_id, request.owner, held)
                raise LockOrderError(keys, held)
        now = self._now()
        lease = LeaseState(
            lease_id=request.lease_id, owner=request.owner, agent=request.agent, keys=keys,
            shared=request.shared, ttl=ttl, expected=expected, started=now,
            deadline=now + timeout,
        )  # fmt: skip
        self._changes.leases[lease.lease_id] = lease.stored()
        self._granted(self.table.take(lease))
        self._queued.add(lease.owner)
        self._break_cycles()
        outcome = self._resolved.pop(lease.lease_id, None)
        if isinstance(outcome, LockError):
            raise outcome
        return outcome

    def renew(self, lease_id: str) -> LeaseGrant:
        """Push a held lease's expiry to now + its ttl.

        Raises:
            LeaseExpiredError: the lease is not held (expired, released, killed, unknown).
        """
        lease = self.table.leases.get(lease_id) if isinstance(lease_id, str) else None
        if lease is None or not lease.held:
            raise LeaseExpiredError(() if lease is None else lease.keys, str(lease_id)[:200])
        lease.expires_at = self._now() + lease.ttl
        self._changes.leases[lease_id] = lease.stored()
        return self._grant_of(lease)

    def release(self, lease_id: str) -> bool:
        """End a lease (held or waiting) and hand its keys on; False if it was gone."""
        if not isinstance(lease_id, str):
            raise InvalidArgumentError(f"a lease id must be a str, not {type(lease_id).__name__}")
        lease = self._drop(lease_id, "released", "")
        if lease is not None and not lease.held:
            self._resolved[lease_id] = LeaseExpiredError(lease.keys, lease_id)
        return lease is not None

    def kill(self, agent: str) -> dict[str, int]:
        """End every lease of ``agent`` (held or waiting), and draw a new token for each
        key it held: once resources know it, the agent's old tokens are refused.

        Returns:
            Each key the agent held -> the token that fences it.
        """
        if not isinstance(agent, str) or not agent:
            raise InvalidArgumentError(f"an agent must be a non-empty str, not {agent!r}")
        fenced: dict[str, int] = {}
        for lease in [lease for lease in self.table.leases.values() if lease.agent == agent]:
            for key in lease.tokens:  # drawn first: whoever gets the key next is newer
                fenced[key] = self.table.next_token()
            self._drop(lease.lease_id, "killed", f"agent {agent} killed")
            # Also a lease handed a key by the drop of another of the agent's leases.
            self._resolved[lease.lease_id] = LeaseExpiredError(lease.keys, lease.lease_id)
        if fenced:
            self._changes.token = self.table.token
        return fenced

    def tick(self) -> list[WaitAlert]:
        """The lock manager's tick: expire leases past their ttl, time out waits past
        their deadline, raise the alerts that are due, break any cycle left.

        Returns:
            The alerts raised by this tick.
        """
        now = self._now()
        for lease in list(self.table.leases.values()):
            if lease.held and lease.expires_at is not None and lease.expires_at <= now:
                self.expired += 1
                self._drop(lease.lease_id, "expired", f"ttl {lease.ttl:g}s")
            elif not lease.held and lease.deadline <= now:
                waited = timedelta(seconds=now - lease.started)
                self._drop(lease.lease_id, "timeout", f"waited {waited.total_seconds():g}s")
                self._resolved[lease.lease_id] = LockTimeoutError(lease.keys, waited)
        self._queued.update(lease.owner for lease in self.table.leases.values() if not lease.held)
        self._break_cycles()
        return self._raise_alerts(now)

    def resolved(self) -> dict[str, Outcome]:
        """The outcomes of waiting leases decided since the last call (hand them out
        only after ``commit``)."""
        resolved, self._resolved = self._resolved, {}
        return resolved

    def commit(self) -> None:
        """Store every change since the last commit.

        Raises:
            StorageError: nothing was stored; reopen the core from storage.
        """
        for key, lease_id, token in self.table.granted:
            self._changes.grants.append((key, lease_id, token))
        if self.table.granted:
            self._changes.token = self.table.token
        self.table.granted.clear()
        changes, self._changes = self._changes, Changes()
        for lease_id in changes.ended:
            changes.leases.pop(lease_id, None)
        changes.grants = [g for g in changes.grants if g[1] not in changes.ended]
        self._store.commit(changes)

    def check(self, request: Acquire) -> tuple[tuple[str, ...], float, float, float]:
        """The request's keys in the global order, ttl, expected hold and wait timeout.

        Raises:
            InvalidArgumentError: what is wrong with it.
        """
        if not isinstance(request, Acquire):
            raise InvalidArgumentError(f"an acquire must be an Acquire, not {type(request)}")
        for what in ("lease_id", "owner", "agent"):
            _check_name(what, getattr(request, what))
        keys = request.keys
        if not isinstance(keys, tuple | list) or not 0 < len(keys) <= self.policy.max_keys:
            raise InvalidArgumentError(f"a lease takes 1 to {self.policy.max_keys} keys")
        for key in keys:
            _check_name("key", key)
        if not isinstance(request.shared, bool):
            raise InvalidArgumentError("shared must be a bool")
        p = self.policy
        ttl = _seconds("ttl_s", request.ttl_s, p.default_ttl, p.max_ttl)
        expected = _seconds("expected_s", request.expected_s, timedelta(seconds=ttl), None)
        timeout = _seconds("timeout_s", request.timeout_s, p.default_wait, None, zero=True)
        return in_lock_order(keys, p.order), ttl, expected, timeout

    # -- reading -------------------------------------------------------------------

    def status(self) -> LocksStatus:
        """Leases, keys, standing alerts and counts."""
        leases = self.table.leases
        keys = tuple(
            KeyStatus(
                key=key,
                shared=any(state.holders.values()),
                holders=tuple(leases[h].owner for h in state.holders),
                queued=tuple(leases[q].owner for q in state.queue),
            )
            for key, state in sorted(self.table.keys.items())
        )
        now = self._now()
        alerts = sorted(
            (self._alert(lease, now) for lease in leases.values() if lease.alerted),
            key=lambda a: -a.waited_s,
        )
        held = sum(1 for lease in leases.values() if lease.held)
        return LocksStatus(
            incarnation=self.incarnation, held=held, waiting=len(leases) - held, keys=keys,
            alerts=tuple(alerts), deadlocks=self.deadlocks, expired=self.expired,
            last_token=self.table.token, counts=dict(self.counts),
        )  # fmt: skip

    def events(self, after: int = 0, limit: int = 1000) -> list[LockEvent]:
        """The locks log after position ``after``, at most ``limit`` events."""
        return self._store.events(after, limit)

    def prune(self) -> bool:
        """Delete events older than ``LockPolicy.events``; whether more are due.

        Raises:
            StorageError: nothing was deleted.
        """
        return self._store.prune(self._now() - self.policy.events.total_seconds())

    def close(self) -> None:
        self._store.close()

    # -- inside ----------------------------------------------------------------------

    def _grant_of(self, lease: LeaseState) -> LeaseGrant:
        return LeaseGrant(
            lease_id=lease.lease_id, keys=lease.keys, tokens=dict(lease.tokens),
            ttl_s=lease.ttl, shared=lease.shared,
        )  # fmt: skip

    def _granted(self, done: list[LeaseState]) -> None:
        """Leases that became held: their expiry starts now; waiters hear of it."""
        now = self._now()
        for lease in done:
            lease.expires_at = now + lease.ttl
            self._changes.leases[lease.lease_id] = lease.stored()
            detail = json.dumps(lease.tokens, separators=(",", ":"))
            self._event("granted", lease.keys[0], lease.lease_id, lease.owner, detail)
            self._resolved[lease.lease_id] = self._grant_of(lease)
        if done:  # a lease that moved on to its next key may wait there: look for cycles
            self._queued.update(
                lease.owner for lease in self.table.leases.values() if not lease.held
            )

    def _drop(self, lease_id: str, kind: str, detail: str) -> LeaseState | None:
        lease, done = self.table.drop(lease_id)
        if lease is not None:
            self._changes.ended.add(lease_id)
            self._event(kind, lease.keys[0], lease_id, lease.owner, detail)
            self._granted(done)
        return lease

    def _break_cycles(self) -> None:
        """Refuse the youngest waiter of each cycle through an owner that began to wait."""
        while self._queued:
            owner = self._queued.pop()
            while (cycle := find_cycle(self.table, owner)) is not None:
                chosen = victim(self.table, cycle)
                at = cycle.index(chosen.owner)
                ring = tuple(cycle[at:] + cycle[:at])
                self.deadlocks += 1
                self.broken_keys.append(chosen.keys[0])
                self._drop(chosen.lease_id, "deadlock", " -> ".join(ring))
                self._resolved[chosen.lease_id] = DeadlockError(chosen.keys, ring)

    def _raise_alerts(self, now: float) -> list[WaitAlert]:
        raised = []
        for lease in self.table.leases.values():
            due = now - lease.started > self.policy.alert_factor * lease.expected
            if not lease.held and not lease.alerted and due:
                lease.alerted = True
                alert = self._alert(lease, now)
                self._event("lock_wait_exceeded", alert.key, lease.lease_id, lease.owner,
                            alert.line())  # fmt: skip
                raised.append(alert)
        return raised

    def _alert(self, lease: LeaseState, now: float) -> WaitAlert:
        blockers = tuple(sorted({b.owner for b in self.table.blockers(lease)}))
        return WaitAlert(
            lease_id=lease.lease_id, owner=lease.owner, key=lease.waiting_on or "",
            waited_s=round(now - lease.started, 3), expected_s=lease.expected, blockers=blockers,
        )  # fmt: skip

    def _event(self, kind: str, key: str, lease_id: str, owner: str, detail: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._changes.events.append((self._now(), kind, key, lease_id, owner, detail))


def _check_name(what: str, value: Any) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= _NAME_CHARS:
        raise InvalidArgumentError(f"{what} must be a str of 1 to {_NAME_CHARS} characters")


def _seconds(
    what: str, value: Any, default: timedelta, most: timedelta | None, *, zero: bool = False
) -> float:
    if value is None:
        return default.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidArgumentError(f"{what} must be a number of seconds")
    if (
        value < 0
        or (value == 0 and not zero)
        or (most is not None and value > most.total_seconds())
    ):
        bound = "" if most is None else f" and at most {most.total_seconds():g}"
        raise InvalidArgumentError(f"{what} must be positive{bound}, not {value}")
    return float(value)
