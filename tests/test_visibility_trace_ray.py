"""Validators under the write's trace, on a real Ray with the real OpenTelemetry SDK
exporting to a real OTLP/HTTP receiver: each validator's run is a child span of the
write's span, with its verdict; ``agentcast trace`` shows each verdict."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from otlp_receiver import ReceivedSpan, otlp_receiver
from visibility_for_tests import Pricing, Shop
from waiting import wait_until

from actors import System, Visibility
from actors._cli.main import main
from policies import Latency, VisibilityPolicy, VisibilityRule
from runtime import Envelope, VetoedError, flush_spans, span
from runtime.testing import reset_tracing

pytestmark = pytest.mark.ray
WRITE, VALIDATE = "agentcast.write shop", "agentcast.validate PromiseMade"


def spans_named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


def complete(spans: list[ReceivedSpan]) -> list[ReceivedSpan] | None:
    """``spans`` once both validator runs and the writes they name as parents came."""
    writes = {s.span_id for s in spans_named(spans, WRITE)}
    runs = spans_named(spans, VALIDATE)
    return spans if len(runs) == 2 and all(r.parent_span_id in writes for r in runs) else None


@pytest.mark.timeout(300)
def test_each_validator_run_is_a_child_of_the_write_with_its_verdict(
    ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rule = VisibilityRule(
        notify=("pricing",), latency=Latency.WITHIN_TRANSACTION, deadline=timedelta(seconds=20)
    )
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after
        reset_tracing()  # this process decides again, with the receiver's variables
        system = System.start(tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}")
        try:
            shop = system.resource(Shop, name="shop")
            system.agent(Pricing, name="pricing")
            Visibility.enforce(system, VisibilityPolicy(rules={"PromiseMade": rule}))
            trace = system.trace_id
            with span("checkout", envelope=Envelope(trace_id=trace)):  # the writes: its children
                shop.set_price("A", 10)
                assert shop.promise("A", 10) == 1
                shop.set_price("A", 12)
                with pytest.raises(VetoedError):
                    shop.promise("A", 10)
            flush_spans()  # the driver's write spans
            found = wait_until(lambda: complete(receiver.in_trace(trace)), "the spans", limit=120)
        finally:
            system.shutdown()
            reset_tracing()
    writes = {s.span_id: s for s in spans_named(found, WRITE)}
    validated = sorted(spans_named(found, VALIDATE), key=lambda s: str(s.attributes))
    assert [s.attributes["agentcast.verdict"] for s in validated] == [
        "allowed",
        "vetoed: quoted 10, price is 12",
    ]
    for run in validated:
        assert run.parent_span_id in writes  # a child of the write that waited on it
        assert writes[run.parent_span_id].attributes["agentcast.write.operations"] == "promise"
    assert main(["trace", trace, "--storage", str(tmp_path / "storage")]) == 0
    text = capfd.readouterr().out
    line = "validated PromiseMade of shop promise by pricing: "
    assert f"{line}allowed (" in text
    assert f"{line}vetoed: quoted 10, price is 12 (" in text
