"""A lease is one OpenTelemetry span from its request to its release, the wait included:
its keys, fencing tokens and whether it was lost, under the caller's span; a refused
lease is a failed span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors import System
from runtime import LockOrderError, span
from runtime.testing import trace_into

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    trace_into(exporter)
    yield exporter
    trace_into(None)


def test_a_lease_is_a_span_under_its_caller(system: System, exported: InMemorySpanExporter) -> None:
    with span("work"), system.lease("pricing:A", "inventory:A") as lease:
        tokens = lease.tokens
    leased, work = exported.get_finished_spans()
    # named as asked; its keys as held, in the global order
    assert (leased.name, work.name) == ("agentcast.lease pricing:A inventory:A", "work")
    assert leased.parent.span_id == work.context.span_id
    attributes = dict(leased.attributes or {})
    assert attributes == {
        "agentcast.lease.id": lease.lease_id,
        "agentcast.lease.keys": "inventory:A,pricing:A",
        "agentcast.lease.shared": False,
        "agentcast.lease.owner": attributes["agentcast.lease.owner"],
        "agentcast.lease.tokens": f"inventory:A={tokens['inventory:A']},"
        f"pricing:A={tokens['pricing:A']}",
        "agentcast.lease.lost": False,
    }
    assert str(attributes["agentcast.lease.owner"]).startswith("system:")


def test_a_refused_lease_is_a_failed_span(system: System, exported: InMemorySpanExporter) -> None:
    with system.lease("pricing:A"), pytest.raises(LockOrderError), system.lease("inventory:A"):
        pass
    refused, held = exported.get_finished_spans()
    assert (refused.name, held.name) == ("agentcast.lease inventory:A", "agentcast.lease pricing:A")
    assert refused.status.status_code.name == "ERROR"
    assert refused.attributes["error.type"] == "LockOrderError"
    assert held.status.status_code.name != "ERROR"
