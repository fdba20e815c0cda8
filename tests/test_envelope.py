"""The envelope: W3C trace context, lineage, constraints that travel unchanged."""

from __future__ import annotations

import pickle

import pytest

from policies import Provenance
from runtime import Envelope, InvalidArgumentError


def test_traceparent_round_trip_and_child_lineage() -> None:
    root = Envelope(sender="human", provenance=Provenance.HUMAN, constraints={"never": "/prod"})
    header = root.traceparent()
    assert len(header.split("-")[1]) == 32 and len(header.split("-")[2]) == 16
    continued = Envelope.from_traceparent(header)
    assert continued.trace_id == root.trace_id and continued.parent_span_id == root.span_id
    child = root.child(sender="planner")
    assert child.trace_id == root.trace_id
    assert child.parent_span_id == root.span_id and child.span_id != root.span_id
    assert child.task_id != root.task_id
    assert child.constraints == {"never": "/prod"}
    assert child.provenance is Provenance.UNVERIFIED_AGENT
    assert child.sources == (root.task_id,)
    assert pickle.loads(pickle.dumps(child)) == child


def test_malformed_traceparent_is_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        Envelope.from_traceparent("00-nothex-1234-01")
