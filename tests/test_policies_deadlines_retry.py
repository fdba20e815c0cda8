"""Pure unit tests: deadlines, retry policy and backoff, restart intensity, failure decisions."""

from __future__ import annotations

from datetime import timedelta
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    Abandon,
    AbandonTask,
    Deadlines,
    Escalate,
    EscalateTo,
    Expiry,
    ExpiryReason,
    Reroute,
    RerouteTo,
    RestartIntensity,
    RestartTracker,
    Retry,
    RetryAfter,
    RetryPolicy,
    StopCause,
    backoff,
    decide,
    expired,
    next_expiry,
    should_retry,
)

EXAMPLES = settings(max_examples=200, deadline=None)

# ---------------------------------------------------------------------------------- backoff


@st.composite
def retry_policies(draw: st.DrawFn, jitter: float | None = None) -> RetryPolicy:
    initial = draw(st.integers(min_value=0, max_value=10_000))  # milliseconds
    cap = draw(st.integers(min_value=initial, max_value=600_000))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=20)),
        initial_backoff=timedelta(milliseconds=initial),
        max_backoff=timedelta(milliseconds=cap),
        backoff_multiplier=draw(st.floats(min_value=1.0, max_value=10.0)),
        jitter=draw(st.floats(min_value=0.0, max_value=1.0)) if jitter is None else jitter,
    )


def model_base(policy: RetryPolicy, attempt: int) -> float:
    """The un-jittered delay in seconds, by repeated multiplication capped at each step."""
    delay = policy.initial_backoff.total_seconds()
    cap = policy.max_backoff.total_seconds()
    for _ in range(attempt - 1):
        delay = min(cap, delay * policy.backoff_multiplier)
    return min(cap, delay)


rng_values = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
attempts = st.integers(min_value=1, max_value=2_000)


@EXAMPLES
@given(retry_policies(), attempts, rng_values)
def test_backoff_never_exceeds_max_backoff(policy: RetryPolicy, attempt: int, rng: float) -> None:
    assert timedelta(0) <= backoff(policy, attempt, rng) <= policy.max_backoff


@EXAMPLES
@given(retry_policies(), attempts, rng_values)
def test_backoff_stays_within_jitter_bounds(policy: RetryPolicy, attempt: int, rng: float) -> None:
    base = model_base(policy, attempt)
    cap = policy.max_backoff.total_seconds()
    low = base * (1 - policy.jitter)
    high = min(cap, base * (1 + policy.jitter))
    delay = backoff(policy, attempt, rng).total_seconds()
    slack = 1e-6 + 1e-9 * base  # rounding to microseconds, float products
    assert low - slack <= delay <= high + slack


@EXAMPLES
@given(retry_policies(jitter=0.0), attempts, rng_values)
def test_backoff_without_jitter_is_the_base_and_monotone(
    policy: RetryPolicy, attempt: int, rng: float
) -> None:
    delay = backoff(policy, attempt, rng)
    base = model_base(policy, attempt)
    assert abs(delay.total_seconds() - base) <= 1e-6 + 1e-9 * base
    assert delay <= backoff(policy, attempt + 1, rng)


@EXAMPLES
@given(retry_policies(), attempts, rng_values)
def test_backoff_is_monotone_for_a_fixed_draw(
    policy: RetryPolicy, attempt: int, rng: float
) -> None:
    assert backoff(policy, attempt, rng) <= backoff(policy, attempt + 1, rng)


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(
        initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=10), jitter=0.0
    )
    delays = [backoff(policy, n, 0.3).total_seconds() for n in range(1, 8)]
    assert delays == [1, 2, 4, 8, 10, 10, 10]


def test_backoff_jitter_spreads_both_ways() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=60))
    assert backoff(policy, 1, 0.0) == timedelta(seconds=9)
    assert backoff(policy, 1, 0.5) == timedelta(seconds=10)
    assert backoff(policy, 1, 0.75) == timedelta(seconds=10.5)


def test_backoff_of_huge_attempt_numbers_is_the_cap() -> None:
    policy = RetryPolicy(backoff_multiplier=10.0, jitter=0.0)
    assert backoff(policy, 10**9, 0.1) == policy.max_backoff


@pytest.mark.parametrize(("attempt", "rng"), [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.1)])
def test_backoff_rejects_bad_inputs(attempt: int, rng: float) -> None:
    with pytest.raises(ValueError):
        backoff(RetryPolicy(), attempt, rng)


# ---------------------------------------------------------------------------- should_retry


@EXAMPLES
@given(st.integers(min_value=1, max_value=30))
def test_a_retry_loop_makes_exactly_max_attempts(max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    attempt = 1
    while should_retry(policy, attempt, "exception", "TimeoutError"):
        attempt += 1
        assert attempt <= max_attempts
    assert attempt == max_attempts


@EXAMPLES
@given(st.integers(min_value=1, max_value=30), st.sampled_from(["schema", "ValueError"]))
def test_non_retryable_failures_are_never_retried(attempt: int, listed: str) -> None:
    policy = RetryPolicy(max_attempts=100, non_retryable=frozenset({"schema", "ValueError"}))
    as_reason = should_retry(policy, attempt, listed, None)
    as_type = should_retry(policy, attempt, "exception", listed)
    assert not as_reason and not as_type
    assert should_retry(policy, attempt, "exception", "KeyError")


def test_non_retryable_accepts_any_iterable_and_stores_it_frozen() -> None:
    policy = RetryPolicy(non_retryable=["schema"])  # type: ignore[arg-type]
    assert policy.non_retryable == frozenset({"schema"})
    assert hash(policy) == hash(RetryPolicy(non_retryable=frozenset({"schema"})))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"initial_backoff": timedelta(seconds=-1)},
        {"initial_backoff": timedelta(seconds=5), "max_backoff": timedelta(seconds=4)},
        {"max_backoff": timedelta(days=400)},
        {"backoff_multiplier": 0.5},
        {"backoff_multiplier": float("inf")},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- deadlines

PHASES = Deadlines(
    queued=timedelta(seconds=5), running=timedelta(seconds=30), heartbeat=timedelta(seconds=10)
)


def test_queue_timeout_at_the_exact_boundary() -> None:
    assert expired(PHASES, queued_at=10.0, now=14.999999) is None
    assert expired(PHASES, queued_at=10.0, now=15.0) is ExpiryReason.QUEUE_TIMEOUT
    assert next_expiry(PHASES, queued_at=10.0) == Expiry(at=15.0, reason=ExpiryReason.QUEUE_TIMEOUT)


def test_running_deadline_at_the_exact_boundary() -> None:
    deadlines = Deadlines(queued=timedelta(seconds=5), running=timedelta(seconds=30))
    times = {"queued_at": 10.0, "started_at": 12.0}
    assert expired(deadlines, **times, now=41.999999) is None
    assert expired(deadlines, **times, now=42.0) is ExpiryReason.DEADLINE
    # Once started, the queue bound no longer applies.
    assert expired(deadlines, **times, now=20.0) is None


def test_heartbeat_timeout_at_the_exact_boundary() -> None:
    times = {"queued_at": 10.0, "started_at": 12.0}
    assert expired(PHASES, **times, now=21.999999) is None
    assert expired(PHASES, **times, now=22.0) is ExpiryReason.HEARTBEAT_TIMEOUT
    beat = {**times, "last_heartbeat_at": 20.0}
    assert expired(PHASES, **beat, now=29.999999) is None
    assert expired(PHASES, **beat, now=30.0) is ExpiryReason.HEARTBEAT_TIMEOUT


def test_running_deadline_beats_a_late_heartbeat_and_wins_ties() -> None:
    beat = {"queued_at": 10.0, "started_at": 12.0, "last_heartbeat_at": 40.0}
    assert expired(PHASES, **beat, now=42.0) is ExpiryReason.DEADLINE
    tie = {"queued_at": 10.0, "started_at": 12.0, "last_heartbeat_at": 32.0}
    assert next_expiry(PHASES, **tie) == Expiry(at=42.0, reason=ExpiryReason.DEADLINE)


def test_no_queue_bound_means_no_timer_while_queued() -> None:
    unbounded = Deadlines(queued=None)
    assert next_expiry(unbounded, queued_at=0.0) is None
    assert expired(unbounded, queued_at=0.0, now=1e9) is None


def test_every_phase_has_a_finite_default() -> None:
    default = Deadlines()
    assert (default.queued, default.running, default.heartbeat, default.grace) == (
        timedelta(minutes=10),
        timedelta(minutes=5),
        None,
        timedelta(seconds=10),
    )
    assert next_expiry(default, queued_at=0.0) == Expiry(
        at=600.0, reason=ExpiryReason.QUEUE_TIMEOUT
    )


def model_expiry(
    deadlines: Deadlines, queued_at: float, started_at: float | None, beat: float | None
) -> tuple[float, ExpiryReason] | None:
    if started_at is None:
        if deadlines.queued is None:
            return None
        return queued_at + deadlines.queued.total_seconds(), ExpiryReason.QUEUE_TIMEOUT
    candidates = [(started_at + deadlines.running.total_seconds(), 0, ExpiryReason.DEADLINE)]
    if deadlines.heartbeat is not None:
        since = started_at if beat is None else beat
        candidates.append(
            (since + deadlines.heartbeat.total_seconds(), 1, ExpiryReason.HEARTBEAT_TIMEOUT)
        )
    at, _, reason = min(candidates)
    return at, reason


optional_seconds = st.none() | st.integers(min_value=1, max_value=100).map(
    lambda s: timedelta(seconds=s)
)


@EXAMPLES
@given(
    queued=optional_seconds,
    running=st.integers(min_value=1, max_value=100),
    heartbeat=optional_seconds,
    queued_at=st.integers(min_value=0, max_value=100),
    gaps=st.lists(st.integers(min_value=0, max_value=60), min_size=2, max_size=2),
    phase=st.sampled_from(["queued", "running", "beating"]),
    now_offset=st.integers(min_value=0, max_value=300),
)
def test_expiry_matches_a_model_and_is_sticky(
    queued: timedelta | None,
    running: int,
    heartbeat: timedelta | None,
    queued_at: int,
    gaps: list[int],
    phase: str,
    now_offset: int,
) -> None:
    deadlines = Deadlines(queued=queued, running=timedelta(seconds=running), heartbeat=heartbeat)
    started = None if phase == "queued" else float(queued_at + gaps[0])
    beat = float(queued_at + gaps[0] + gaps[1]) if phase == "beating" else None
    times = {"queued_at": float(queued_at), "started_at": started, "last_heartbeat_at": beat}
    model = model_expiry(deadlines, float(queued_at), started, beat)
    expiry = next_expiry(deadlines, **times)
    assert (None if expiry is None else (expiry.at, expiry.reason)) == model
    now = float(queued_at + now_offset)
    verdict = expired(deadlines, **times, now=now)
    assert verdict == (model[1] if model is not None and now >= model[0] else None)
    if verdict is not None:
        assert expired(deadlines, **times, now=now + 1000.0) == verdict


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queued": timedelta(seconds=-1)},
        {"queued": timedelta(0)},
        {"running": timedelta(seconds=-5)},
        {"running": timedelta(0)},
        {"heartbeat": timedelta(microseconds=-1)},
    ],
)
def test_deadlines_reject_non_positive_durations(kwargs: dict[str, timedelta]) -> None:
    with pytest.raises(ValueError):
        Deadlines(**kwargs)


@pytest.mark.parametrize(
    "times",
    [
        {"queued_at": 10.0, "started_at": 9.0},
        {"queued_at": 10.0, "started_at": 11.0, "last_heartbeat_at": 10.5},
        {"queued_at": 10.0, "last_heartbeat_at": 11.0},
        {"queued_at": float("nan")},
    ],
)
def test_expiry_rejects_inconsistent_instants(times: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        next_expiry(PHASES, **times)


# --------------------------------------------------------------------- restart intensity


@EXAMPLES
@given(
    max_restarts=st.integers(min_value=0, max_value=5),
    within=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=40),
    probe_gap=st.integers(min_value=0, max_value=30),
)
def test_restart_intensity_matches_a_sliding_window_model(
    max_restarts: int, within: int, gaps: list[int], probe_gap: int
) -> None:
    intensity = RestartIntensity(max_restarts=max_restarts, within=timedelta(seconds=within))
    tracker = RestartTracker(intensity=intensity)
    history: list[float] = []
    for now in accumulate(float(gap) for gap in gaps):
        tracker = tracker.record(now)
        history.append(now)
        in_window = sum(1 for t in history if now - t <= within)
        assert tracker.exceeded(now) == (in_window > max_restarts)
        assert len(tracker.restarts) <= max_restarts + 1
    later = history[-1] + probe_gap
    assert tracker.exceeded(later) == (
        sum(1 for t in history if later - t <= within) > max_restarts
    )


@EXAMPLES
@given(
    max_restarts=st.integers(min_value=1, max_value=5),
    within=st.integers(min_value=1, max_value=100),
    start=st.floats(min_value=0.0, max_value=1e6),
)
def test_r_plus_one_restarts_within_t_exceed_and_spread_over_more_do_not(
    max_restarts: int, within: int, start: float
) -> None:
    intensity = RestartIntensity(max_restarts=max_restarts, within=timedelta(seconds=within))
    crowded = RestartTracker(intensity=intensity)
    spread = RestartTracker(intensity=intensity)
    step = within / max_restarts
    for i in range(max_restarts + 1):
        crowded = crowded.record(start + i * step * 0.5)
        spread = spread.record(start + i * step * 1.01)
    assert crowded.exceeded(start + max_restarts * step * 0.5)
    assert not spread.exceeded(start + max_restarts * step * 1.01)
    # R restarts alone never exceed.
    assert not RestartTracker(intensity=intensity, restarts=crowded.restarts[1:]).exceeded(
        crowded.restarts[-1]
    )


def test_restart_window_is_inclusive() -> None:
    tracker = RestartTracker(
        intensity=RestartIntensity(max_restarts=1, within=timedelta(seconds=5))
    )
    tracker = tracker.record(10.0).record(15.0)
    assert tracker.exceeded(15.0)  # 15 - 10 == within: still counted
    assert not tracker.exceeded(15.5)  # the restart at 10 has left the window


def test_restart_tracker_refuses_time_going_backwards() -> None:
    tracker = RestartTracker().record(10.0)
    with pytest.raises(ValueError):
        tracker.record(9.0)
    with pytest.raises(ValueError):
        tracker.exceeded(9.0)


@pytest.mark.parametrize(
    "kwargs", [{"max_restarts": -1}, {"within": timedelta(0)}, {"within": timedelta(seconds=-1)}]
)
def test_restart_intensity_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RestartIntensity(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- failure decisions

FAST = RetryPolicy(max_attempts=3, jitter=0.0, non_retryable=frozenset({"schema"}))


def test_retry_retries_with_backoff_then_abandons() -> None:
    plan = Retry(policy=FAST)
    common = {"reason": "exception", "intensity_exceeded": False, "budget_allows": True}
    assert decide(plan, attempts=1, **common) == RetryAfter(delay=timedelta(seconds=1))
    assert decide(plan, attempts=2, **common) == RetryAfter(delay=timedelta(seconds=2))
    assert decide(plan, attempts=3, **common) == AbandonTask(because=StopCause.ATTEMPTS_EXHAUSTED)


@pytest.mark.parametrize(
    ("reason", "error_type", "intensity_exceeded", "budget_allows", "cause"),
    [
        ("schema", None, False, True, StopCause.NON_RETRYABLE),
        ("exception", "schema", True, False, StopCause.NON_RETRYABLE),
        ("exception", None, True, False, StopCause.RESTART_INTENSITY_EXCEEDED),
        ("exception", None, False, False, StopCause.RETRY_BUDGET_EXHAUSTED),
    ],
)
def test_retry_refusals_escalate_with_their_cause(
    reason: str,
    error_type: str | None,
    intensity_exceeded: bool,
    budget_allows: bool,
    cause: StopCause,
) -> None:
    action = decide(
        Retry(policy=FAST, then=Escalate(to="human")),
        attempts=1,
        reason=reason,
        error_type=error_type,
        intensity_exceeded=intensity_exceeded,
        budget_allows=budget_allows,
    )
    assert action == EscalateTo(to="human", because=cause)


def test_reroute_after_retries_counts_attempts_across_the_plan() -> None:
    plan = Retry(
        policy=FAST,
        then=Reroute(to="fallback", policy=RetryPolicy(max_attempts=5, jitter=0.0)),
    )
    common = {"reason": "deadline", "intensity_exceeded": False, "budget_allows": True}
    kinds = [type(decide(plan, attempts=n, **common)) for n in range(1, 6)]
    assert kinds == [RetryAfter, RetryAfter, RerouteTo, RerouteTo, AbandonTask]
    assert decide(plan, attempts=3, **common) == RerouteTo(
        to="fallback", delay=timedelta(seconds=4)
    )


def test_reroute_ignores_the_failing_groups_intensity_but_not_the_budget() -> None:
    plan = Reroute(to="b", policy=FAST, then=Escalate(to="ops"))
    assert isinstance(
        decide(plan, attempts=1, reason="dead_agent", intensity_exceeded=True, budget_allows=True),
        RerouteTo,
    )
    assert decide(
        plan, attempts=1, reason="dead_agent", intensity_exceeded=True, budget_allows=False
    ) == EscalateTo(to="ops", because=StopCause.RETRY_BUDGET_EXHAUSTED)


def test_abandon_and_escalate_plans_act_at_once() -> None:
    common = {"attempts": 1, "reason": "x", "intensity_exceeded": False, "budget_allows": True}
    assert decide(Abandon(), **common) == AbandonTask(because=StopCause.PLAN)
    assert decide(Escalate(), **common) == EscalateTo(to="human", because=StopCause.PLAN)


@EXAMPLES
@given(
    attempts=st.integers(min_value=1, max_value=10),
    intensity_exceeded=st.booleans(),
    budget_allows=st.booleans(),
    reason=st.sampled_from(["exception", "schema", "deadline"]),
)
def test_decide_retries_only_when_every_limit_allows(
    attempts: int, intensity_exceeded: bool, budget_allows: bool, reason: str
) -> None:
    action = decide(
        Retry(policy=FAST),
        attempts=attempts,
        reason=reason,
        intensity_exceeded=intensity_exceeded,
        budget_allows=budget_allows,
    )
    allowed = should_retry(FAST, attempts, reason) and budget_allows and not intensity_exceeded
    assert isinstance(action, RetryAfter) == allowed
    if isinstance(action, RetryAfter):
        assert action.delay <= FAST.max_backoff


def test_plans_reject_empty_targets_and_decide_rejects_bad_attempts() -> None:
    with pytest.raises(ValueError):
        Reroute(to="")
    with pytest.raises(ValueError):
        Escalate(to="")
    with pytest.raises(ValueError):
        decide(Retry(), attempts=0, reason="x", intensity_exceeded=False, budget_allows=True)
