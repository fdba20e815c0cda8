"""The public names of each package are pinned: changing them is a decision."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import actors
import actors.lowlevel
import policies
import runtime

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "runtime", "policies")

ACTORS = {
    "Agent", "AgentBudget", "AgentGroup", "AsyncResourceHandle", "AsyncSubtaskHandle",
    "AsyncSupervisor", "BreakerView", "BudgetHandle", "LogRecord", "Outcome", "ReadResult",
    "Reconnect", "Resource", "ResourceHandle", "ResourceLog", "RetryDecision", "SubtaskHandle",
    "SubtaskStatus", "Supervisor", "System", "ToolGuard", "Write", "WriteResult", "handler",
    "read", "write",
    # decision visibility: within-transaction validators
    "Veto", "Visibility", "validate",
    # provenance marks, for @write(requires=...) and stages; the verification step
    "Provenance", "Claim", "Verdict", "VerifyClaims", "check_claims",
    # the budget's books and log, read through BudgetHandle
    "BudgetEvent", "BudgetStatus",
    # ownership and the conflict ladder
    "OwnershipRecord", "ConflictSummary", "Negotiate", "Position", "Arbitrate", "Ruling",
    # leases: taken with system.lease / self.lease, read through LocksHandle
    "AsyncLease", "Lease", "LockEvent", "LocksHandle", "LocksStatus",
    # context integrity: constraints a driver's writes carry, invariants of a resource
    "carrying", "invariant",
    # shared context: the decision log, contracts, derived reads (docs/context.md)
    "AsyncDecisions", "DecisionEntry", "Decisions", "check_contract", "check_contracts",
    "contract", "derived",
    # committed-state events: subscribing agents, consumer groups
    "Subscriptions", "subscribe",
}  # fmt: skip

LOWLEVEL = {
    "AgentHost", "AuditRecord", "BudgetCore", "BudgetHost", "Grant", "MeteredModel", "ResourceCore",
    "ResourceHost", "SpendContext", "SubtaskSpec", "SupervisorCore", "SupervisorHost",
    "WriteCall", "DecisionLog",
    "Acquire", "KeyStatus", "LeaseGrant", "LocksCore", "LocksHost", "WaitAlert",
    "DispatchCore", "EventLog", "EventRecord", "EventsHost", "DeadLetter",
}  # fmt: skip

RUNTIME = {
    # errors
    "AgentError", "AgentGoneError", "AgentcastError", "BudgetExceededError", "CircuitOpenError",
    "ConfigurationError", "ConflictError", "ConflictLostError", "FencedError", "HandlerOutputError",
    "IdempotencyKeyReusedError", "InvalidArgumentError",
    "ModelAuthError", "ModelError", "ModelOutputError",
    "ModelRateLimitedError", "ModelRequestError", "ModelResponseError", "ModelTimeoutError",
    "ModelUnavailableError", "NotOwnerError", "PayloadTooLargeError", "ProvenanceError",
    "ResourceError",
    "ResourceUnavailableError", "StorageError", "SubtaskFailedError",
    "UnauthorizedWriterError", "UnknownHandlerError", "UnknownOperationError",
    "WriteFailedError",
    "DeadlockError", "LeaseExpiredError", "LockError", "LockOrderError", "LockTimeoutError",
    "StaleLeaseError",
    "ConstraintLoosenedError", "ConstraintViolationError", "InvariantViolationError",
    "ContractMismatchError", "StaleContextError",
    "EventError", "EmitOutsideWriteError", "MalformedEventError", "UnknownEventTypeError",
    "UnknownDeadLetterError",
    "VisibilityError", "UnknownSubscriberError", "VetoedError", "ValidatorFailedError",
    # envelope, ids, codec, clock
    "Envelope", "new_span_id", "new_task_id", "new_trace_id", "decode", "encode",
    "MAX_BRIEFED_TOPICS", "checked_briefing",
    "Clock", "SystemClock",
    # model clients
    "Completion", "Message", "ModelClient", "OpenAICompatibleClient", "ScriptedModel",
    "ScriptedRule", "Usage", "check_max_tokens", "estimate_prompt_tokens",
    "estimate_text_tokens",
    # storage, the resource log, subtask records
    "check_name", "connect", "storage_root", "transaction", "truncate_wal", "AttemptRecord",
    "Connection", "DatabaseErrors", "Location", "PgLocation", "is_shared", "connect_read_only",
    "stores_in",
    "FailureReason",
    # what the actor families are built from: the applier, metrics, the Ray glue, malloc
    "SerialApplier", "apply_each", "GroupSync", "defer_sync", "counter", "gauge", "histogram",
    "KeptGauge", "RecordTimer", "STATE_RESOURCE",
    "agent_actor_name", "get_or_spawn", "lookup", "named_actors", "resource_actor_name", "spawn",
    "start_local_ray",
    "fix_mmap_threshold", "trim_after_call", "trim_malloc", "CallTrim",
    # OpenTelemetry spans
    "flush_spans", "on_tracing_change", "otel_environment", "record_span", "span",
    "tracing_enabled",
}  # fmt: skip

POLICIES = {
    # resources
    "Durability", "ResourcePolicy", "WriteAuthority",
    # provenance
    "Provenance", "ProvenanceTrust", "weakest",
    # the conflict ladder
    "ConflictAction", "ConflictLevel", "ConflictPolicy", "ConflictRule", "ConflictSide",
    "ConflictVerdict", "negotiation_verdict", "rule_verdicts",
    # retention of the stores
    "ResourceRetention", "SupervisorRetention", "TokenRetention",
    # delivery of committed events
    "EventsPolicy",
    # supervision: deadlines, retries, failure plans, restart intensity
    "Deadlines", "Expiry", "ExpiryReason", "expired", "next_expiry", "RetryPolicy", "backoff",
    "should_retry", "Abandon", "AbandonTask", "Escalate", "EscalateTo", "FailureAction",
    "OnFailure", "Reroute", "RerouteTo", "Retry", "RetryAfter", "StopCause", "decide",
    "RestartIntensity", "RestartTracker",
    # pooled agents: hosts
    "HostPolicy",
    # budgets, retry budgets, breakers
    "BudgetLimit", "BudgetPolicy", "BudgetRetention", "Dimension", "LeaseMode", "Ledger",
    "Metering",
    "ModelPrice", "PriceTable", "Scope", "ScopeKind", "UnknownModelError", "grant", "settle",
    "RetryBudget", "RetryBudgetState", "BreakerPolicy", "BreakerState", "BreakerStatus",
    "fingerprint", "normalize_message",
    # leases and the global lock order
    "LockPolicy", "breaks_order", "in_lock_order", "key_prefix", "order_rank", "prefix_label",
    # end-to-end sampling
    "SamplingPolicy",
    # constraints that travel with a task
    "AllowOnly", "CapArgument", "Constraint", "ConstraintSet", "ForbidEntities", "ForbidPath",
    "SpendCeiling", "describe_constraint",
    # decision visibility
    "Latency", "OnTimeout", "VisibilityPolicy", "VisibilityRule",
    # policy files
    "PolicyFileError", "PolicySet", "PolicyTypeError", "PolicyValueError",
    "UnknownPolicyKeyError", "load_policies", "load_policies_file", "parse_duration",
}  # fmt: skip

PINNED = [(actors, ACTORS), (actors.lowlevel, LOWLEVEL), (runtime, RUNTIME), (policies, POLICIES)]


@pytest.mark.parametrize(("package", "names"), PINNED, ids=lambda p: getattr(p, "__name__", ""))
def test_exports_are_exactly_the_pinned_names(package: ModuleType, names: set[str]) -> None:
    assert set(package.__all__) == names
    assert len(package.__all__) == len(names), "a name is listed twice"


@pytest.mark.parametrize("package", [p for p, _ in PINNED], ids=lambda p: p.__name__)
def test_every_export_exists_and_all_is_sorted(package: ModuleType) -> None:
    # ruff's order (RUF022): constants first, then the rest in plain string order.
    assert list(package.__all__) == sorted(package.__all__, key=lambda n: (not n.isupper(), n))
    for name in package.__all__:
        assert hasattr(package, name), f"{package.__name__}.{name}"


def test_the_user_api_is_small_and_holds_no_core_or_host() -> None:
    assert len(actors.__all__) == 58
    assert not [n for n in actors.__all__ if n.endswith(("Core", "Host"))]
    assert not set(actors.__all__) & set(actors.lowlevel.__all__)


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split(".")[1:])


def test_examples_use_only_public_names() -> None:
    """An example is what a user copies: it imports no package's private module."""
    for path in sorted((ROOT / "examples").glob("*.py")):
        ours = {m for m in _imported_modules(path) if m.split(".")[0] in PACKAGES}
        assert not [m for m in ours if _private(m)], path.name


def test_tests_reach_runtime_and_policies_only_through_their_public_names() -> None:
    """Tests may import the ``actors`` internals they test; the lower layers they use
    through the same public names as ``actors`` does (import-linter checks ``actors``)."""
    for path in sorted((ROOT / "tests").glob("*.py")):
        lower = {m for m in _imported_modules(path) if m.split(".")[0] in ("runtime", "policies")}
        assert not [m for m in lower if _private(m)], path.name
