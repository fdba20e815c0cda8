"""Circuit breaker per dependency, and failure fingerprints for the shared error registry.

A breaker is closed (calls flow), open (calls are refused) or half-open (a few probe calls
test the dependency). ``BreakerState`` is an immutable value: every event returns a new one,
so the budget actor can hold one per dependency and open it for the whole cluster.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class BreakerStatus(StrEnum):
    """The three states of a breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """When a breaker opens and how it tests the dependency again.

    Attributes:
        failure_threshold: failures within ``failure_window`` that open the breaker, at
            least 1. Default 5.
        failure_window: the sliding window failures are counted over, inclusive at both
            ends; positive. Default 30 seconds.
        open_for: how long an open breaker refuses every call before admitting probes, and
            how long a half-open breaker waits for its probes to report before admitting a
            fresh round; positive. Default 30 seconds.
        half_open_probes: probe calls admitted per half-open round, at least 1. Default 1.
    """

    failure_threshold: int = 5
    failure_window: timedelta = timedelta(seconds=30)
    open_for: timedelta = timedelta(seconds=30)
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_probes"):
            if getattr(self, name) < 1:
                raise ValueError(f"BreakerPolicy.{name} must be at least 1")
        for name in ("failure_window", "open_for"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"BreakerPolicy.{name} must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerState:
    """The state of one breaker.

    Transitions: closed -> open once ``failure_threshold`` failures fall within
    ``failure_window`` (successes do not erase them); open -> half-open once
    ``open_for`` has passed, whoever asks (``refreshed``), and the first ``allow`` then is
    admitted as a probe; half-open -> closed on a
    success, half-open -> open on a failure. A half-open breaker admits at most
    ``half_open_probes`` probes per round; if none reports within ``open_for`` a new round
    starts, so a lost probe cannot wedge it. While open, late results of calls admitted
    earlier change nothing. While half-open, any reported result counts as the probe's.

    Attributes:
        policy: the thresholds. Default ``BreakerPolicy()``.
        status: the current state. Default closed.
        failures: while closed, the instants of the recent failures, oldest first (at most
            ``failure_threshold`` kept). Default empty.
        since: when the breaker opened (open) or the probe round began (half-open); None
            while closed. Default None.
        probes: probes admitted in the current half-open round. Default 0.
    """

    policy: BreakerPolicy = BreakerPolicy()
    status: BreakerStatus = BreakerStatus.CLOSED
    failures: tuple[float, ...] = ()
    since: float | None = None
    probes: int = 0

    def allow(self, now: float) -> tuple[bool, BreakerState, bool]:
        """Whether a call may go to the dependency at ``now``.

        Returns:
            ``(allowed, new_state, is_probe)``; ``is_probe`` is True for a half-open probe.

        Raises:
            ValueError: ``now`` is not finite or is before the latest event.
        """
        self._check_now(now)
        if self.status is BreakerStatus.CLOSED:
            return True, self, False
        assert self.since is not None
        round_over = now - self.since >= self.policy.open_for.total_seconds()
        if self.status is BreakerStatus.OPEN or round_over:
            if not round_over:
                return False, self, False
            return True, self._half_open(since=now, probes=1), True
        if self.probes < self.policy.half_open_probes:
            return True, self._half_open(since=self.since, probes=self.probes + 1), True
        return False, self, False

    def on_failure(self, now: float) -> BreakerState:
        """The state after a call failed at ``now``.

        Raises:
            ValueError: ``now`` is not finite or is before the latest event.
        """
        self._check_now(now)
        if self.status is BreakerStatus.OPEN:
            return self
        if self.status is BreakerStatus.HALF_OPEN:
            return BreakerState(policy=self.policy, status=BreakerStatus.OPEN, since=now)
        window = self.policy.failure_window.total_seconds()
        recent = (*(t for t in self.failures if now - t <= window), now)
        if len(recent) >= self.policy.failure_threshold:
            return BreakerState(policy=self.policy, status=BreakerStatus.OPEN, since=now)
        return BreakerState(policy=self.policy, failures=recent)

    def on_success(self, now: float) -> BreakerState:
        """The state after a call succeeded at ``now``.

        Raises:
            ValueError: ``now`` is not finite or is before the latest event.
        """
        self._check_now(now)
        if self.status is BreakerStatus.HALF_OPEN:
            return BreakerState(policy=self.policy)
        return self

    def refreshed(self, now: float) -> BreakerState:
        """The state at ``now`` as time alone makes it: an open breaker whose open period
        is over is half-open with no probe admitted yet, and so is a half-open one whose
        probe round is over. Whoever asks (a call, a retry, a status read) sees the same.

        Raises:
            ValueError: ``now`` is not finite or is before the latest event.
        """
        self._check_now(now)
        if self.since is None or self.status is BreakerStatus.CLOSED:
            return self
        open_for = self.policy.open_for.total_seconds()
        if now - self.since < open_for:
            return self
        if self.status is BreakerStatus.OPEN:
            return self._half_open(since=self.since + open_for, probes=0)
        return self._half_open(since=now, probes=0) if self.probes else self

    def next_probe_at(self) -> float | None:
        """When a refused caller may be admitted again: the end of the open period or of
        the probe round; None while closed or while half-open with probes left."""
        if self.since is None or (
            self.status is BreakerStatus.HALF_OPEN and self.probes < self.policy.half_open_probes
        ):
            return None
        return self.since + self.policy.open_for.total_seconds()

    def _half_open(self, *, since: float, probes: int) -> BreakerState:
        return BreakerState(
            policy=self.policy, status=BreakerStatus.HALF_OPEN, since=since, probes=probes
        )

    def _check_now(self, now: float) -> None:
        if not math.isfinite(now):
            raise ValueError(f"now must be finite, got {now!r}")
        latest = max((*self.failures, *(() if self.since is None else (self.since,))), default=None)
        if latest is not None and now < latest:
            raise ValueError(f"now {now} is before the latest event {latest}")


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX_LITERAL = re.compile(r"\b0x[0-9a-f]+\b", re.I)
_TOKEN = re.compile(r"[0-9A-Za-z_]+")
_HEX_TOKEN = re.compile(r"[0-9a-f]{8,}|[0-9A-F]{8,}")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalize_message(message: str) -> str:
    """An error message with its variable parts replaced by placeholders.

    UUIDs become ``<uuid>``; numbers become ``<n>``; ``0x...`` literals and words of 8 or
    more hex digits mixing letters and digits become ``<hex>``; other words of 8 or more
    characters mixing letters and digits (request ids, call ids) become ``<id>``; digit
    runs in shorter words become ``<n>``; whitespace is collapsed. So
    ``"timeout after 30.5s on req_8f2k1c9d"`` becomes ``"timeout after <n>.<n>s on <id>"``.
    """
    text = _UUID.sub("<uuid>", message)
    text = _HEX_LITERAL.sub("<hex>", text)
    text = _TOKEN.sub(lambda match: _normalize_token(match.group()), text)
    return _SPACE.sub(" ", text).strip()


def _normalize_token(token: str) -> str:
    if not any(char.isdigit() for char in token):
        return token
    if token.isdigit():
        return "<n>"
    if _HEX_TOKEN.fullmatch(token):
        return "<hex>"
    if len(token) >= 8 and any(char.isalpha() for char in token):
        return "<id>"
    return _DIGITS.sub("<n>", token)


def fingerprint(dependency: str, error_type: str, message: str) -> str:
    """A stable key for "the same failure", whichever agent saw it.

    Args:
        dependency: the model endpoint or tool that failed (``"model:gpt-4o"``).
        error_type: the name of the error's type.
        message: the error message; numbers, ids and hex in it are normalized away
            (see ``normalize_message``).

    Returns:
        16 hex digits of the SHA-256 of the dependency, the type and the normalized message.
    """
    key = "\x1f".join((dependency, error_type, normalize_message(message)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]
