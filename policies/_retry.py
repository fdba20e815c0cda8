"""Retry policy of a subtask: how many attempts, how far apart, and what is never retried."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

# timedelta's own ceiling is about 2.7 million years; keep backoffs far below it.
_LONGEST_BACKOFF = timedelta(days=365)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how soon a failed attempt is tried again.

    The delay before attempt ``n + 1`` is ``initial_backoff * backoff_multiplier ** (n - 1)``,
    capped at ``max_backoff``, then spread by ``jitter`` (and capped again).

    Attributes:
        max_attempts: most attempts in all, the first included; 1 never retries. Default 3.
        initial_backoff: delay before the second attempt. Default 1 second.
        backoff_multiplier: growth of the delay per attempt, at least 1. Default 2.0.
        max_backoff: longest delay between two attempts, at least ``initial_backoff`` and at
            most a year. Default 60 seconds.
        jitter: fraction in [0, 1] by which a delay is spread either way, so that agents
            failing together do not retry together. Default 0.1 (plus or minus 10%).
        non_retryable: failure reasons (``"schema"``, ``"deadline"``...) or error type names
            (``"ValueError"``) that are never retried. Default empty.
    """

    max_attempts: int = 3
    initial_backoff: timedelta = timedelta(seconds=1)
    backoff_multiplier: float = 2.0
    max_backoff: timedelta = timedelta(seconds=60)
    jitter: float = 0.1
    non_retryable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Accept any iterable of names (a list from YAML, a set) but store it frozen.
        object.__setattr__(self, "non_retryable", frozenset(self.non_retryable))
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        if self.initial_backoff < timedelta(0):
            raise ValueError("RetryPolicy.initial_backoff must not be negative")
        if not self.initial_backoff <= self.max_backoff <= _LONGEST_BACKOFF:
            raise ValueError(
                "RetryPolicy.max_backoff must be between initial_backoff and 365 days, "
                f"got {self.max_backoff!r}"
            )
        if not (math.isfinite(self.backoff_multiplier) and self.backoff_multiplier >= 1.0):
            raise ValueError(
                f"RetryPolicy.backoff_multiplier must be at least 1, got {self.backoff_multiplier}"
            )
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"RetryPolicy.jitter must be in [0, 1], got {self.jitter}")


def backoff(policy: RetryPolicy, attempt: int, rng_value: float) -> timedelta:
    """The delay before the attempt after ``attempt``.

    Deterministic: the randomness is ``rng_value``, drawn by the caller. With
    ``base = min(max_backoff, initial_backoff * backoff_multiplier ** (attempt - 1))`` the
    result is ``min(max_backoff, base * (1 + jitter * (2 * rng_value - 1)))``: within
    ``[base * (1 - jitter), base * (1 + jitter)]``, never above ``max_backoff``, and
    non-decreasing in ``attempt`` for a fixed ``rng_value``.

    Args:
        policy: the retry policy.
        attempt: the 1-based number of the attempt that failed.
        rng_value: a uniform draw in [0, 1).

    Returns:
        The delay, rounded to whole microseconds.

    Raises:
        ValueError: ``attempt`` is below 1 or ``rng_value`` is outside [0, 1).
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    if not 0.0 <= rng_value < 1.0:
        raise ValueError(f"rng_value must be in [0, 1), got {rng_value}")
    cap = policy.max_backoff.total_seconds()
    try:
        growth = policy.backoff_multiplier ** (attempt - 1)
    except OverflowError:
        growth = math.inf
    initial = policy.initial_backoff.total_seconds()
    base = 0.0 if initial == 0.0 else min(cap, initial * growth)  # 0 * inf would be nan
    spread = 1.0 + policy.jitter * (2.0 * rng_value - 1.0)
    return timedelta(seconds=min(cap, base * spread))


def should_retry(
    policy: RetryPolicy, attempt: int, reason: str, error_type: str | None = None
) -> bool:
    """Whether the failed ``attempt`` may be followed by another.

    Args:
        policy: the retry policy.
        attempt: the 1-based number of the attempt that failed.
        reason: its failure reason (``"exception"``, ``"schema"``, ``"deadline"``...).
        error_type: the name of the exception's type, when the failure is an exception.

    Returns:
        False when ``max_attempts`` are used up or when ``reason`` or ``error_type`` is
        listed in ``non_retryable``; True otherwise.

    Raises:
        ValueError: ``attempt`` is below 1.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    if attempt >= policy.max_attempts:
        return False
    if reason in policy.non_retryable:
        return False
    return error_type is None or error_type not in policy.non_retryable
