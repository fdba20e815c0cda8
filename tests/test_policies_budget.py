"""Pure unit tests: retry budget, circuit breaker, fingerprints, budgets, leases, YAML."""

from __future__ import annotations

import math
import pickle
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from policies import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    BudgetLimit,
    Dimension,
    LeaseMode,
    Ledger,
    ModelPrice,
    PolicyFileError,
    PolicySet,
    PolicyTypeError,
    PolicyValueError,
    PriceTable,
    RetryBudget,
    RetryBudgetState,
    RetryPolicy,
    Scope,
    ScopeKind,
    UnknownModelError,
    UnknownPolicyKeyError,
    fingerprint,
    grant,
    load_policies,
    load_policies_file,
    normalize_message,
    parse_duration,
    settle,
)

EXAMPLES = settings(max_examples=200, deadline=None)

# ----------------------------------------------------------------------------- retry budget

budget_events = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=2.5), st.sampled_from(["call", "retry"])),
    max_size=120,
)


@EXAMPLES
@given(
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0, 1.5]),
    floor=st.integers(min_value=0, max_value=4),
    window=st.integers(min_value=1, max_value=6),
    events=budget_events,
)
def test_retry_budget_never_exceeds_ratio_of_calls_plus_floor(
    ratio: float, floor: int, window: int, events: list[tuple[float, str]]
) -> None:
    budget = RetryBudget(
        ratio=ratio, min_retries_per_window=floor, window=timedelta(seconds=window)
    )
    state = RetryBudgetState(budget=budget)
    log: list[tuple[int, str]] = []  # (second, "call" | "retry") of every counted event
    now = 0.0
    for gap, kind in events:
        now += gap
        second = math.floor(now)
        if kind == "call":
            state = state.deposit(now)
            log.append((second, "call"))
            continue
        in_window = [k for s, k in log if second - window < s <= second]
        model_allows = (
            in_window.count("retry") + 1 <= floor + ratio * in_window.count("call") + 1e-9
        )
        allowed, state = state.try_withdraw(now)
        assert allowed == model_allows
        if allowed:
            # The window ending at an allowed retry never holds more retries than it grants.
            log.append((second, "retry"))
            in_window.append("retry")
            assert in_window.count("retry") <= floor + ratio * in_window.count("call") + 1e-9
        assert len(state.buckets) <= window


def test_retry_budget_floor_then_ratio() -> None:
    state = RetryBudgetState(
        budget=RetryBudget(ratio=0.5, min_retries_per_window=1, window=timedelta(seconds=10))
    )
    allowed, state = state.try_withdraw(0.0)
    assert allowed  # the floor
    allowed, state = state.try_withdraw(0.1)
    assert not allowed
    for i in range(4):
        state = state.deposit(1.0 + i / 10)
    assert state.available(2.0) == 2
    results = []
    for _ in range(3):
        allowed, state = state.try_withdraw(2.0)
        results.append(allowed)
    assert results == [True, True, False]
    # Ten seconds on, everything has left the window: only the floor again.
    assert state.available(12.0) == 1


@given(
    counts=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=8),
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=8, max_size=8),
)
# Found by a run: nothing deposited once the only bucket has left the window.
@example(counts=[1, 0, 0], gaps=[0.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0])
def test_deposit_of_a_count_is_that_many_deposits(counts: list[int], gaps: list[float]) -> None:
    budget = RetryBudget(ratio=0.1, window=timedelta(seconds=4))
    at_once = one_by_one = RetryBudgetState(budget=budget)
    now = 0.0
    for count, gap in zip(counts, gaps, strict=False):
        now += gap
        at_once = at_once.deposit(now, count)
        for _ in range(count):
            one_by_one = one_by_one.deposit(now)
        assert at_once == one_by_one
    assert at_once.available(now + 1) == one_by_one.available(now + 1)
    with pytest.raises(ValueError, match="count"):
        at_once.deposit(now, -1)


def test_retry_budget_rejects_bad_values_and_time_going_backwards() -> None:
    for kwargs in (
        {"ratio": -0.1},
        {"ratio": float("nan")},
        {"min_retries_per_window": -1},
        {"window": timedelta(milliseconds=500)},
    ):
        with pytest.raises(ValueError):
            RetryBudget(**kwargs)  # type: ignore[arg-type]
    state = RetryBudgetState().deposit(5.0)
    with pytest.raises(ValueError):
        state.deposit(4.0)


# ----------------------------------------------------------------------------------- breaker


@dataclass
class BreakerModel:
    """A plain mutable breaker, written from the rules rather than from the code."""

    policy: BreakerPolicy
    status: str = "closed"
    failure_log: list[float] = field(default_factory=list)
    opened_or_round_at: float = 0.0
    probes: int = 0

    def allow(self, now: float) -> tuple[bool, bool]:
        if self.status == "closed":
            return True, False
        if now - self.opened_or_round_at >= self.policy.open_for.total_seconds():
            self.status, self.opened_or_round_at, self.probes = "half_open", now, 1
            return True, True
        if self.status == "half_open" and self.probes < self.policy.half_open_probes:
            self.probes += 1
            return True, True
        return False, False

    def failure(self, now: float) -> None:
        if self.status == "half_open":
            self.status, self.opened_or_round_at, self.probes = "open", now, 0
        elif self.status == "closed":
            self.failure_log.append(now)
            window = self.policy.failure_window.total_seconds()
            if sum(1 for t in self.failure_log if now - t <= window) >= (
                self.policy.failure_threshold
            ):
                self.status, self.opened_or_round_at, self.failure_log = "open", now, []

    def success(self, now: float) -> None:
        if self.status == "half_open":
            self.status, self.failure_log, self.probes = "closed", [], 0


breaker_policies = st.builds(
    BreakerPolicy,
    failure_threshold=st.integers(min_value=1, max_value=4),
    failure_window=st.integers(min_value=1, max_value=10).map(lambda s: timedelta(seconds=s)),
    open_for=st.integers(min_value=1, max_value=10).map(lambda s: timedelta(seconds=s)),
    half_open_probes=st.integers(min_value=1, max_value=3),
)
breaker_events = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=6.0)),
        st.tuples(st.sampled_from(["allow", "success", "failure"]), st.just(0.0)),
    ),
    max_size=80,
)


@EXAMPLES
@given(policy=breaker_policies, events=breaker_events)
def test_breaker_matches_a_reference_model(
    policy: BreakerPolicy, events: list[tuple[str, float]]
) -> None:
    state, model, now = BreakerState(policy=policy), BreakerModel(policy=policy), 0.0
    opened_at: float | None = None
    probes_by_round: dict[float, int] = {}
    for kind, gap in events:
        now += gap
        if kind == "allow":
            allowed, state, is_probe = state.allow(now)
            assert (allowed, is_probe) == model.allow(now)
            if opened_at is not None and now - opened_at < policy.open_for.total_seconds():
                assert not allowed, "a call went through an open breaker"
            if is_probe:
                assert state.since is not None
                probes_by_round[state.since] = probes_by_round.get(state.since, 0) + 1
                assert probes_by_round[state.since] <= policy.half_open_probes
        elif kind == "success":
            state = state.on_success(now)
            model.success(now)
        elif kind == "failure":
            before = state.status
            state = state.on_failure(now)
            model.failure(now)
            if before is not BreakerStatus.OPEN and state.status is BreakerStatus.OPEN:
                opened_at = now
        if state.status is not BreakerStatus.OPEN:
            opened_at = None
        assert state.status.value == model.status


def test_breaker_opens_after_threshold_failures_in_the_window_only() -> None:
    policy = BreakerPolicy(
        failure_threshold=3, failure_window=timedelta(seconds=10), open_for=timedelta(seconds=5)
    )
    spread = BreakerState(policy=policy).on_failure(0.0).on_failure(6.0).on_failure(10.5)
    assert spread.status is BreakerStatus.CLOSED  # the failure at 0 has left the window
    crowded = spread.on_failure(11.0)
    assert crowded.status is BreakerStatus.OPEN
    assert crowded.next_probe_at() == 16.0
    allowed, same, _ = crowded.allow(15.999)
    assert not allowed and same is crowded


def test_breaker_probe_success_closes_and_probe_failure_reopens() -> None:
    policy = BreakerPolicy(failure_threshold=1, open_for=timedelta(seconds=5), half_open_probes=2)
    opened = BreakerState(policy=policy).on_failure(0.0)
    first, half, probe = opened.allow(5.0)
    assert first and probe and half.status is BreakerStatus.HALF_OPEN
    second, half, probe = half.allow(5.1)
    assert second and probe
    third, half, _ = half.allow(5.2)
    assert not third  # both probes are out
    assert half.on_success(6.0).status is BreakerStatus.CLOSED
    reopened = half.on_failure(6.0)
    assert reopened.status is BreakerStatus.OPEN and reopened.since == 6.0
    assert not reopened.allow(10.9)[0]


def test_a_lost_probe_does_not_wedge_the_breaker() -> None:
    policy = BreakerPolicy(failure_threshold=1, open_for=timedelta(seconds=5))
    _, half, _ = BreakerState(policy=policy).on_failure(0.0).allow(5.0)
    assert not half.allow(9.0)[0]
    allowed, fresh, is_probe = half.allow(10.0)
    assert allowed and is_probe and fresh.since == 10.0


def test_breaker_rejects_bad_values() -> None:
    for kwargs in (
        {"failure_threshold": 0},
        {"half_open_probes": 0},
        {"open_for": timedelta(0)},
        {"failure_window": timedelta(seconds=-1)},
    ):
        with pytest.raises(ValueError):
            BreakerPolicy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BreakerState().on_failure(5.0).on_failure(4.0)


# ------------------------------------------------------------------------------ fingerprints


@EXAMPLES
@given(
    number=st.integers(min_value=0, max_value=10**12),
    seconds=st.floats(min_value=0, max_value=1e4, allow_nan=False).map(lambda x: round(x, 3)),
    request=st.uuids(),
    address=st.integers(min_value=0, max_value=2**64),
    call=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=7, max_size=19).map(
        lambda text: text + "7"
    ),
)
def test_fingerprint_ignores_numbers_ids_and_hex(
    number: int, seconds: float, request: uuid.UUID, address: int, call: str
) -> None:
    template = "HTTP 503 after {s}s for request {r} (call_{c}) at {a}, retry {n}"
    reference = template.format(s=1.5, r=uuid.UUID(int=0), c="x1" * 4, a="0x1", n=0)
    message = template.format(s=seconds, r=request, c=call, a=hex(address), n=number)
    assert fingerprint("model:gpt", "HTTPError", message) == fingerprint(
        "model:gpt", "HTTPError", reference
    )


def test_fingerprint_keeps_what_identifies_the_failure() -> None:
    base = fingerprint("model:gpt", "HTTPError", "rate limited: 429")
    assert base == fingerprint("model:gpt", "HTTPError", "rate   limited:  503 ")
    assert len(base) == 16 and int(base, 16) >= 0
    assert base != fingerprint("model:claude", "HTTPError", "rate limited: 429")
    assert base != fingerprint("model:gpt", "TimeoutError", "rate limited: 429")
    assert base != fingerprint("model:gpt", "HTTPError", "context length exceeded: 429")


def test_normalize_message_placeholders() -> None:
    assert normalize_message("timeout after 30.5s on req_8f2k1c9d") == (
        "timeout after <n>.<n>s on <id>"
    )
    assert normalize_message(f"job {uuid.UUID(int=7)} at 0xDEADBEEF sha a3f9c0d2e1") == (
        "job <uuid> at <hex> sha <hex>"
    )
    assert normalize_message("deadbeef facade gpt-4o") == "deadbeef facade gpt-<n>o"


# --------------------------------------------------------------------- scopes, limits, prices


def test_scopes_and_limits() -> None:
    each_run = Scope(kind=ScopeKind.RUN)
    assert each_run.covers(ScopeKind.RUN, "r-1") and each_run.covers(ScopeKind.RUN, "r-2")
    one_agent = Scope(kind=ScopeKind.AGENT, key="orders")
    assert one_agent.covers(ScopeKind.AGENT, "orders")
    assert not one_agent.covers(ScopeKind.AGENT, "pricing")
    assert not one_agent.covers(ScopeKind.MODEL, "orders")
    with pytest.raises(ValueError):
        Scope(kind=ScopeKind.CLUSTER, key="x")
    with pytest.raises(ValueError):
        Scope(kind=ScopeKind.TOOL, key="")
    with pytest.raises(ValueError):
        BudgetLimit(scope=each_run, dimension=Dimension.COST, cap=-1.0)
    with pytest.raises(ValueError):
        BudgetLimit(scope=each_run, dimension=Dimension.COST, cap=float("inf"))
    assert {d.value for d in Dimension} == {
        "prompt_tokens",
        "completion_tokens",
        "tokens",
        "cost",
        "calls",
        "retries",
    }


def test_price_table_costs_and_unknown_models() -> None:
    models = {"big": ModelPrice(prompt_per_1k=0.01, completion_per_1k=0.03)}
    table = PriceTable(models=models)
    assert table.cost("big", 2000, 500) == pytest.approx(0.02 + 0.015)
    assert table.cost("big", 0, 0) == 0.0
    with pytest.raises(UnknownModelError) as caught:
        table.cost("small", 1, 1)
    assert caught.value.model == "small" and "small" in str(caught.value)
    with_default = PriceTable(models=models, default=ModelPrice(prompt_per_1k=1.0))
    assert with_default.cost("small", 500, 1000) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        table.cost("big", -1, 0)
    with pytest.raises(ValueError):
        ModelPrice(prompt_per_1k=-0.1)
    models["big"] = ModelPrice()  # the table holds its own copy
    assert table.cost("big", 1000, 0) == pytest.approx(0.01)
    assert pickle.loads(pickle.dumps(table)) == table
    assert hash(table) == hash(PriceTable(models=dict(table.models)))


# ---------------------------------------------------------------------------------- leases

lease_ops = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(min_value=0, max_value=400), st.just(0.0)),
        st.tuples(
            st.just("settle"),
            st.integers(min_value=0, max_value=50),
            st.floats(min_value=0.0, max_value=1.0),
        ),
    ),
    max_size=80,
)


def run_ledger(
    ledger: Ledger, ops: list[tuple[str, int, float]], mode: LeaseMode, scale: float
) -> list[Ledger]:
    """Apply grants (amount * scale) and settlements (a fraction of an open lease used)."""
    open_leases: list[float] = []
    seen = [ledger]
    for kind, amount, fraction in ops:
        if kind == "grant":
            requested = amount * scale
            granted, ledger = ledger.grant(requested, mode)
            assert 0.0 <= granted <= requested
            if granted:
                open_leases.append(granted)
        elif open_leases:
            granted = open_leases.pop(amount % len(open_leases))
            used = granted * fraction if scale != 1.0 else float(math.floor(granted * fraction))
            unused, ledger = ledger.settle(granted, used)
            assert unused == pytest.approx(granted - used)
        seen.append(ledger)
    return seen


@EXAMPLES
@given(cap=st.integers(min_value=0, max_value=1000), ops=lease_ops)
def test_strict_leases_never_exceed_the_cap_integers(
    cap: int, ops: list[tuple[str, int, float]]
) -> None:
    for ledger in run_ledger(Ledger(cap=float(cap)), ops, LeaseMode.STRICT, 1.0):
        assert ledger.committed + ledger.outstanding <= ledger.cap


@EXAMPLES
@given(
    cap=st.floats(min_value=0.0, max_value=1e6),
    scale=st.floats(min_value=1e-6, max_value=10.0),
    ops=lease_ops,
)
def test_strict_leases_never_exceed_the_cap_floats(
    cap: float, scale: float, ops: list[tuple[str, int, float]]
) -> None:
    for ledger in run_ledger(Ledger(cap=cap), ops, LeaseMode.STRICT, scale):
        assert ledger.committed + ledger.outstanding <= ledger.cap


@EXAMPLES
@given(cap=st.integers(min_value=0, max_value=1000), ops=lease_ops)
def test_loose_leases_overshoot_by_less_than_one_request(
    cap: int, ops: list[tuple[str, int, float]]
) -> None:
    largest = max((amount for kind, amount, _ in ops if kind == "grant"), default=0)
    for ledger in run_ledger(Ledger(cap=float(cap)), ops, LeaseMode.LOOSE, 1.0):
        assert ledger.committed + ledger.outstanding <= cap + max(largest - 1, 0)


def test_strict_grant_absorbs_float_rounding() -> None:
    # cap - committed - outstanding rounds up here: granting it whole would cross the cap.
    granted = grant(cap=14.9, committed=4.3, outstanding=6.96, requested=100.0)
    assert granted > 0.0 and 4.3 + (6.96 + granted) <= 14.9


def test_strict_settle_absorbs_float_rounding() -> None:
    # Settling these leases in full, in this order, rounds committed + outstanding up by an
    # ulp unless the ledger takes the rounding off what is outstanding.
    ledger = Ledger(cap=50.597)
    leases = []
    for requested in (14.65, 29.865, 50.0):
        granted, ledger = ledger.grant(requested)
        leases.append(granted)
    for granted in leases:
        _, ledger = ledger.settle(granted, granted)
        assert ledger.committed + ledger.outstanding <= ledger.cap


def test_grant_strict_is_partial_loose_is_whole() -> None:
    strict = grant(cap=100, committed=60, outstanding=30, requested=25)
    assert strict == 10
    assert grant(cap=100, committed=60, outstanding=40, requested=25) == 0
    assert grant(cap=100, committed=60, outstanding=30, requested=25, mode=LeaseMode.LOOSE) == 25
    assert grant(cap=100, committed=60, outstanding=40, requested=25, mode=LeaseMode.LOOSE) == 0
    assert settle(granted=10, used=4) == 6
    assert settle(granted=10, used=12) == 0
    with pytest.raises(ValueError):
        grant(cap=100, committed=0, outstanding=0, requested=-1)
    with pytest.raises(ValueError):
        settle(granted=float("nan"), used=0)


def test_ledger_settles_real_spend_in_full() -> None:
    granted, ledger = Ledger(cap=100).grant(40)
    assert granted == 40 and ledger.remaining == 60
    unused, ledger = ledger.settle(40, 55)  # the call used more than it reserved
    assert unused == 0 and ledger.committed == 55 and ledger.outstanding == 0
    with pytest.raises(ValueError):
        ledger.settle(10, 0)  # nothing is outstanding


# ------------------------------------------------------------------------------------- YAML

FULL = """
lease_mode: loose
budgets:
  - {scope: run, dimension: cost, cap: 5.0}
  - {scope: agent, key: orders, dimension: calls, cap: 100}
  - {scope: cluster, dimension: prompt_tokens, cap: 2000000}
prices:
  default: {prompt_per_1k: 0.001}
  models:
    big: {prompt_per_1k: 0.01, completion_per_1k: 0.03}
retry:
  max_attempts: 4
  initial_backoff: 250ms
  max_backoff: 1m30s
  backoff_multiplier: 3
  jitter: 0
  non_retryable: [schema, ValueError]
retry_budget: {ratio: 0.1, min_retries_per_window: 3, window: 30}
breaker: {failure_threshold: 2, failure_window: 1m, open_for: 10s, half_open_probes: 2}
restart_intensity: {max_restarts: 5, within: 1h}
deadlines: {queued: null, running: 5m, heartbeat: 0.5}
"""


def test_load_policies_reads_every_section() -> None:
    policies = load_policies(FULL)
    assert policies.lease_mode is LeaseMode.LOOSE
    assert policies.budgets == (
        BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.COST, cap=5.0),
        BudgetLimit(
            scope=Scope(kind=ScopeKind.AGENT, key="orders"), dimension=Dimension.CALLS, cap=100
        ),
        BudgetLimit(
            scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.PROMPT_TOKENS, cap=2e6
        ),
    )
    assert policies.prices.cost("big", 1000, 1000) == pytest.approx(0.04)
    assert policies.prices.cost("other", 1000, 1000) == pytest.approx(0.001)
    assert policies.retry == RetryPolicy(
        max_attempts=4,
        initial_backoff=timedelta(milliseconds=250),
        max_backoff=timedelta(seconds=90),
        backoff_multiplier=3.0,
        jitter=0.0,
        non_retryable=frozenset({"schema", "ValueError"}),
    )
    assert policies.retry_budget == RetryBudget(
        ratio=0.1, min_retries_per_window=3, window=timedelta(seconds=30)
    )
    assert policies.breaker.failure_window == timedelta(minutes=1)
    assert policies.breaker.half_open_probes == 2
    assert policies.restart_intensity.within == timedelta(hours=1)
    assert policies.deadlines.queued is None
    assert policies.deadlines.heartbeat == timedelta(milliseconds=500)
    assert pickle.loads(pickle.dumps(policies)) == policies


def test_load_policies_defaults_and_file(tmp_path: Path) -> None:
    assert load_policies("") == PolicySet()
    assert load_policies("retry: {}") == PolicySet()
    path = tmp_path / "policies.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert load_policies_file(path) == load_policies(FULL)


@pytest.mark.parametrize(
    ("text", "error", "path"),
    [
        ("retries: {max_attempts: 3}", UnknownPolicyKeyError, "retries"),
        ("retry: {max_attempt: 3}", UnknownPolicyKeyError, "retry.max_attempt"),
        (
            "budgets: [{scope: run, dimension: cost, cap: 1, kee: x}]",
            UnknownPolicyKeyError,
            "budgets[0].kee",
        ),
        ("prices: {models: {m: {prompt: 1}}}", UnknownPolicyKeyError, "prices.models.m.prompt"),
        ("retry: {max_attempts: three}", PolicyTypeError, "retry.max_attempts"),
        ("retry: {max_attempts: true}", PolicyTypeError, "retry.max_attempts"),
        ("retry: {max_attempts: 2.5}", PolicyTypeError, "retry.max_attempts"),
        ("retry: {non_retryable: schema}", PolicyTypeError, "retry.non_retryable"),
        ("retry: [1, 2]", PolicyTypeError, "retry"),
        ("- just a list", PolicyTypeError, ""),
        ("budgets: {scope: run}", PolicyTypeError, "budgets"),
        ("budgets: [{scope: run, dimension: cost, cap: -1}]", PolicyValueError, "budgets[0]"),
        ("budgets: [{scope: run, dimension: cost, cap: '5'}]", PolicyTypeError, "budgets[0].cap"),
        ("budgets: [{scope: run, dimension: cost}]", PolicyValueError, "budgets[0]"),
        (
            "budgets: [{scope: galaxy, dimension: cost, cap: 1}]",
            PolicyValueError,
            "budgets[0].scope",
        ),
        (
            "budgets: [{scope: cluster, key: a, dimension: cost, cap: 1}]",
            PolicyValueError,
            "budgets[0]",
        ),
        (
            "budgets: [{scope: run, dimension: cost, cap: 1},"
            " {scope: run, dimension: cost, cap: 2}]",
            PolicyValueError,
            "budgets[1]",
        ),
        ("prices: {models: {m: {prompt_per_1k: -1}}}", PolicyValueError, "prices.models.m"),
        ("retry: {initial_backoff: -1}", PolicyValueError, "retry.initial_backoff"),
        ("retry: {initial_backoff: 5 minutes}", PolicyValueError, "retry.initial_backoff"),
        ("retry: {initial_backoff: 10s, max_backoff: 5s}", PolicyValueError, "retry"),
        ("deadlines: {running: 0}", PolicyValueError, "deadlines"),
        ("breaker: {open_for: [1]}", PolicyTypeError, "breaker.open_for"),
        ("lease_mode: lax", PolicyValueError, "lease_mode"),
        ("retry: {max_attempts: 3", PolicyFileError, ""),
    ],
)
def test_load_policies_errors_are_typed_and_located(
    text: str, error: type[PolicyFileError], path: str
) -> None:
    with pytest.raises(error) as caught:
        load_policies(text)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == path
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is type(caught.value) and str(copy) == str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (30, timedelta(seconds=30)),
        (0.25, timedelta(milliseconds=250)),
        ("250ms", timedelta(milliseconds=250)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1m30s", timedelta(seconds=90)),
        ("1.5s", timedelta(seconds=1.5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "s", "5", "-5s", "5 parsecs", "1m-30s", float("nan"), -1])
def test_parse_duration_rejects_non_durations(text: object) -> None:
    with pytest.raises(PolicyValueError):
        parse_duration(text, "x")


@pytest.mark.parametrize("value", [None, True, [1], {"s": 1}])
def test_parse_duration_rejects_wrong_types(value: object) -> None:
    with pytest.raises(PolicyTypeError):
        parse_duration(value, "x")
