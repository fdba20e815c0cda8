"""Deadlines of an attempt by phase: queued, running, heartbeat.

An attempt is queued at ``queued_at``, starts running at ``started_at`` and, while running, may
report liveness at ``last_heartbeat_at``. Each phase has its own bound, the way Temporal splits
schedule-to-start, start-to-close and heartbeat timeouts: a task that never gets a worker, a
worker that runs too long and a worker that went silent are three different failures.

Instants are monotonic seconds (floats) passed in by the caller; durations are ``timedelta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class ExpiryReason(StrEnum):
    """Why an attempt expired.

    QUEUE_TIMEOUT: it waited for a worker longer than ``Deadlines.queued``.
    DEADLINE: it ran longer than ``Deadlines.running``.
    HEARTBEAT_TIMEOUT: it ran without a heartbeat for longer than ``Deadlines.heartbeat``.
    """

    QUEUE_TIMEOUT = "queue_timeout"
    DEADLINE = "deadline"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadlines:
    """How long an attempt may spend in each phase.

    Every default is finite, so an attempt left to the defaults ends within
    ``queued + running + grace`` (15 minutes 10 seconds) whatever its agent does. Every
    bound must be positive: a zero or negative duration is a ``ValueError``.

    Attributes:
        queued: longest wait from being queued to being started. Default 10 minutes; None
            waits for a worker indefinitely (only when asked for explicitly).
        running: longest run from start to result. Default 5 minutes.
        heartbeat: longest silence while running, measured from the start or the last
            heartbeat. Default None: no heartbeats are required, and the running phase is
            bounded by ``running`` alone.
        grace: how long an attempt that missed its deadline (and was cancelled) may take to
            let go of its replica; past it, the replica is wedged and restarted. Default
            10 seconds.
    """

    queued: timedelta | None = timedelta(minutes=10)
    running: timedelta = timedelta(minutes=5)
    heartbeat: timedelta | None = None
    grace: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        for name in ("queued", "running", "heartbeat", "grace"):
            value = getattr(self, name)
            if value is not None and value <= timedelta(0):
                raise ValueError(f"Deadlines.{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Expiry:
    """When an attempt expires if nothing changes, and why.

    Attributes:
        at: the instant, in monotonic seconds; the attempt has expired once ``now >= at``.
        reason: the phase bound that is crossed at ``at``.
    """

    at: float
    reason: ExpiryReason


def next_expiry(
    deadlines: Deadlines,
    *,
    queued_at: float,
    started_at: float | None = None,
    last_heartbeat_at: float | None = None,
) -> Expiry | None:
    """The earliest instant at which the attempt expires, for arming a timer.

    A queued attempt (``started_at`` None) expires only by ``queued``; a running one by
    ``running`` or ``heartbeat``, whichever comes first. When both fall on the same instant
    the reason is ``DEADLINE``.

    Args:
        deadlines: the bounds by phase.
        queued_at: when the attempt was queued.
        started_at: when it started running, or None while still queued.
        last_heartbeat_at: its last heartbeat, or None if it has sent none.

    Returns:
        The expiry, or None when no bound applies (queued with no ``queued`` bound).

    Raises:
        ValueError: the instants are not finite, are out of order (started before queued,
            heartbeat before start), or a heartbeat is given without a start.
    """
    _check_instants(queued_at, started_at, last_heartbeat_at)
    if started_at is None:
        if deadlines.queued is None:
            return None
        return Expiry(
            at=queued_at + deadlines.queued.total_seconds(), reason=ExpiryReason.QUEUE_TIMEOUT
        )
    expiry = Expiry(at=started_at + deadlines.running.total_seconds(), reason=ExpiryReason.DEADLINE)
    if deadlines.heartbeat is not None:
        silent_since = started_at if last_heartbeat_at is None else last_heartbeat_at
        heartbeat_at = silent_since + deadlines.heartbeat.total_seconds()
        if heartbeat_at < expiry.at:
            expiry = Expiry(at=heartbeat_at, reason=ExpiryReason.HEARTBEAT_TIMEOUT)
    return expiry


def expired(
    deadlines: Deadlines,
    *,
    queued_at: float,
    started_at: float | None = None,
    last_heartbeat_at: float | None = None,
    now: float,
) -> ExpiryReason | None:
    """Whether the attempt has expired at ``now``, and why.

    The bound is inclusive: an attempt queued at 10.0 with ``queued=5s`` and not started has
    expired at exactly 15.0.

    Args:
        deadlines: the bounds by phase.
        queued_at: when the attempt was queued.
        started_at: when it started running, or None while still queued.
        last_heartbeat_at: its last heartbeat, or None if it has sent none.
        now: the current monotonic instant.

    Returns:
        The reason it expired, or None while it is within every bound.

    Raises:
        ValueError: as for ``next_expiry``, or ``now`` is not finite.
    """
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, got {now!r}")
    expiry = next_expiry(
        deadlines,
        queued_at=queued_at,
        started_at=started_at,
        last_heartbeat_at=last_heartbeat_at,
    )
    if expiry is None or now < expiry.at:
        return None
    return expiry.reason


def _check_instants(
    queued_at: float, started_at: float | None, last_heartbeat_at: float | None
) -> None:
    for name, value in (
        ("queued_at", queued_at),
        ("started_at", started_at),
        ("last_heartbeat_at", last_heartbeat_at),
    ):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if started_at is None:
        if last_heartbeat_at is not None:
            raise ValueError("last_heartbeat_at given for an attempt that has not started")
        return
    if started_at < queued_at:
        raise ValueError(f"started_at {started_at} is before queued_at {queued_at}")
    if last_heartbeat_at is not None and last_heartbeat_at < started_at:
        raise ValueError(f"last_heartbeat_at {last_heartbeat_at} is before started_at {started_at}")
