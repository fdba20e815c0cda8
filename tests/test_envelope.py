"""The envelope: W3C trace context, lineage, constraints that travel unchanged."""

from __future__ import annotations

import pickle

import pytest

from policies import CapArgument, ConstraintSet, ForbidPath, Provenance
from runtime import ConstraintLoosenedError, Envelope, InvalidArgumentError

PROD = ConstraintSet((ForbidPath(prefix="/prod"),))


def test_traceparent_round_trip_and_child_lineage() -> None:
    root = Envelope(sender="human", provenance=Provenance.HUMAN, constraints=PROD)
    header = root.traceparent()
    assert len(header.split("-")[1]) == 32 and len(header.split("-")[2]) == 16
    continued = Envelope.from_traceparent(header)
    assert continued.trace_id == root.trace_id and continued.parent_span_id == root.span_id
    child = root.child(sender="planner")
    assert child.trace_id == root.trace_id
    assert child.parent_span_id == root.span_id and child.span_id != root.span_id
    assert child.task_id != root.task_id
    assert child.constraints == PROD
    assert child.provenance is Provenance.UNVERIFIED_AGENT
    assert child.sources == (root.task_id,)
    assert pickle.loads(pickle.dumps(child)) == child


def test_malformed_traceparent_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        Envelope.from_traceparent("00-nothex-1234-01")


def test_a_child_may_tighten_but_never_drop_or_loosen_the_constraints() -> None:
    root = Envelope(sender="human", constraints=PROD)
    tighter = PROD.tighten(CapArgument(argument="amount", maximum=5))
    assert root.child(sender="a", constraints=tighter).constraints == tighter
    assert root.child(sender="a").constraints == PROD
    with pytest.raises(ConstraintLoosenedError) as dropped:
        root.child(sender="a", constraints=ConstraintSet())
    assert dropped.value.sender == "a"
    assert dropped.value.missing == ("forbid_path(path under /prod)",)
    with pytest.raises(ConstraintLoosenedError):
        root.child(sender="a", constraints=ConstraintSet((ForbidPath(prefix="/prod/db"),)))


def test_constraints_that_are_not_a_constraint_set_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        Envelope(constraints={"never": "/prod"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        Envelope().child(sender="a", constraints=[ForbidPath(prefix="/")])  # type: ignore[arg-type]
