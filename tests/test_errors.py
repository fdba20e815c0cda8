"""Every error survives a trip through pickling and through Ray, caught by its class."""

from __future__ import annotations

import inspect
import pickle
from datetime import timedelta

import pytest
import ray

import runtime
from runtime import errors

SAMPLES: list[errors.AgentcastError] = [
    errors.AgentcastError("root"),
    errors.ConfigurationError("bad"),
    errors.InvalidArgumentError("not plain"),
    errors.PayloadTooLargeError(10, 5),
    errors.StorageError("disk"),
    errors.ResourceError("inv", "generic"),
    errors.AgentError("agent"),
    errors.BudgetExceededError(
        scope="run:r1", dimension="cost", cap=1.0, requested=0.5, available=0.25
    ),
    errors.CircuitOpenError("tool:search", retry_after=timedelta(seconds=5)),
    errors.SubtaskFailedError(
        "t-1",
        "schema",
        "bad output",
        (runtime.AttemptRecord(attempt_id="t-1:1", number=1, replica="a:0", outcome="schema"),),
    ),
    errors.UnknownOperationError("inv", "nope"),
    errors.ConflictError("inv", 1, 2),
    errors.UnauthorizedWriterError("inv", "mallory"),
    errors.UnauthorizedWriterError("inv", "mallory", ("orders", "system"), "no valid token"),
    errors.IdempotencyKeyReusedError("inv", "order-42"),
    errors.FencedError("inv", "stale"),
    runtime.StaleLeaseError("inv", "inventory:A", 3, 5),
    runtime.LockError(("inventory:A",), "refused"),
    runtime.LockTimeoutError(("inventory:A", "pricing:A"), timedelta(seconds=2)),
    runtime.LockOrderError(("inventory:A",), "pricing:A"),
    runtime.DeadlockError(("pricing:A",), ("pricing:0:t1", "inventory:0:t2")),
    runtime.LeaseExpiredError(("inventory:A",), "lease-1"),
    errors.WriteFailedError("inv", "op", "Boom", "detail"),
    errors.NotOwnerError("drafts", "42", "editorial", "publishing"),
    errors.NotOwnerError("drafts", "42", "", "publishing"),
    errors.ConflictLostError("drafts", "t-1:0", 3, "the arbiter ruled for 'editorial'"),
    errors.ResourceUnavailableError("inv", "down"),
    runtime.ConstraintViolationError("files", "write_file", "forbid_path(path under /prod)", "ab"),
    runtime.InvariantViolationError("credit", "grant", "exposure_under_cap"),
    runtime.ConstraintLoosenedError("synthesis", ("forbid_path(path under /prod)",)),
    runtime.StaleContextError("catalog", "set_price", "pricing", 1, 2, "ab"),
    runtime.ContractMismatchError("agent stock, handler check: input", "available_item", 2, 1),
    runtime.ContractMismatchError("supervisor expect", "stock_answer", 2, None),
    runtime.EventError("events"),
    runtime.EmitOutsideWriteError("Restocked"),
    runtime.MalformedEventError("dict", "not a pydantic model"),
    runtime.UnknownEventTypeError("Repriced", "resource inventory"),
    runtime.UnknownDeadLetterError("pricing", "inventory:3:0"),
    runtime.VisibilityError("visibility"),
    runtime.UnknownSubscriberError("PriceChanged", "support", "is not a running agent"),
    runtime.VetoedError("promises", "PromiseMade", "pricing", "quoted 10, price is 12"),
    runtime.ValidatorFailedError("promises", "PromiseMade", "pricing", "timeout", "200ms"),
    errors.ProvenanceError("reports:publish", "verified", "unverified_agent"),
    errors.UnknownHandlerError("agent", "Msg"),
    errors.AgentGoneError("agent:a:0", "agent-host:1"),
    errors.HandlerOutputError("agent", "h", "detail"),
    errors.ModelError("model", endpoint="e"),
    errors.ModelUnavailableError("down", endpoint="e", status=503),
    errors.ModelTimeoutError(endpoint="e", timeout=timedelta(seconds=3)),
    errors.ModelRateLimitedError(endpoint="e", retry_after=timedelta(seconds=2)),
    errors.ModelAuthError(endpoint="e", status=401, detail="no key"),
    errors.ModelRequestError(endpoint="e", status=400, detail="bad"),
    errors.ModelResponseError("malformed", endpoint="e"),
    errors.ModelOutputError(endpoint="e", schema="Out", text="{", detail="bad json"),
]


def all_error_classes() -> list[type[BaseException]]:
    """Every error class of ``runtime.errors`` and every one ``runtime`` exports (the lock
    errors are defined in a module of their own)."""
    found = {
        obj
        for module in (errors, runtime)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, errors.AgentcastError)
    }
    return sorted(found, key=lambda cls: cls.__name__)


def test_every_error_class_is_exported_and_has_a_sample() -> None:
    sampled = {type(e) for e in SAMPLES}
    for cls in all_error_classes():
        assert cls in sampled, f"add a {cls.__name__} to SAMPLES"
        assert getattr(runtime, cls.__name__) is cls
        assert cls.__name__.endswith("Error")


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_type_message_and_fields(error: errors.AgentcastError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


@ray.remote(num_cpus=0)
def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.ray
def test_errors_are_caught_by_their_own_class_through_ray(ray_session: None) -> None:
    for error in SAMPLES:
        with pytest.raises(type(error)) as caught:
            ray.get(_raise.remote(error))
        for field, value in error.__dict__.items():
            assert getattr(caught.value, field) == value
