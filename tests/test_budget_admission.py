"""Admission tokens (``actors._budget.admission``): a task's leased calls after its first
skip the breaker, run, constraints and tracing checks; whatever could change those ends
the token, and the next call takes the full path. One test per way a token ends. Against
the budget's real logic (``BudgetCore`` on a real SQLite file) in one process."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from actors._agent import derived
from actors._agent.agent import current_run
from actors._budget.admission import ADMITTED
from actors._budget.local_link import CoreLink
from actors._budget.meter import Meter
from actors._events.subscribe import Subscription, calling, deliver
from actors._events.wire import EventBatch
from actors.lowlevel import BudgetCore, EventRecord, MeteredModel
from policies import BreakerPolicy, BudgetPolicy, Provenance
from runtime import (
    CircuitOpenError,
    Envelope,
    Message,
    ModelUnavailableError,
    ScriptedRule,
    estimate_prompt_tokens,
    new_trace_id,
)
from runtime.testing import FakeClock, ScriptedModel, trace_into

HELLO = [Message(role="user", content="hello")]


def _setup(tmp_path: Path, **fields: Any) -> tuple[Meter, CoreLink, FakeClock]:
    clock = FakeClock()
    policy = BudgetPolicy(breaker_refresh=timedelta(hours=1), **fields)
    link = CoreLink(BudgetCore(tmp_path, policy, clock=clock))
    return Meter(link, holder="h:0", clock=clock), link, clock  # type: ignore[arg-type]


def _model(meter: Meter, agent: str, inner: ScriptedModel | None = None) -> MeteredModel:
    return MeteredModel(inner or ScriptedModel(), meter, agent=agent, run=current_run)


@pytest.mark.timeout(60)
def test_a_breaker_opened_by_another_agent_between_two_calls_refuses_the_next(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        meter, link, _ = _setup(tmp_path, breaker=BreakerPolicy(failure_threshold=1))
        inner = ScriptedModel()
        failing = ScriptedModel()
        failing.fail_next(error=ModelUnavailableError())
        mine, theirs = _model(meter, "a", inner), _model(meter, "b", failing)
        await mine.complete(HELLO, max_tokens=8)
        await mine.complete(HELLO, max_tokens=8)
        assert ADMITTED.get() is not None and link.calls == ["breaker", "renew"]  # on a token
        # The other agent's handler, a task of its own: one failure opens the breaker.
        with pytest.raises(ModelUnavailableError):
            await asyncio.create_task(theirs.complete(HELLO, max_tokens=8))
        token = ADMITTED.get()  # this task's token is still mine, still unrevoked by time
        assert token is not None and token.model is mine
        with pytest.raises(CircuitOpenError):
            await mine.complete(HELLO, max_tokens=8)
        assert inner.call_count == 2  # refused without calling

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_tracing_switched_on_between_two_calls_makes_the_next_one_a_span(tmp_path: Path) -> None:
    async def scenario() -> None:
        meter, _, _ = _setup(tmp_path)
        model = _model(meter, "a")
        trace_into(None)
        await model.complete(HELLO, max_tokens=8)
        await model.complete(HELLO, max_tokens=8)
        assert ADMITTED.get() is not None
        exporter = InMemorySpanExporter()
        trace_into(exporter)
        try:
            await model.complete(HELLO, max_tokens=8)
        finally:
            trace_into(None)
        assert [s.name for s in exporter.get_finished_spans()] == ["chat scripted"]

    asyncio.run(scenario())


class Tick(BaseModel):
    n: int


@pytest.mark.timeout(60)
def test_handlers_run_one_after_the_other_in_one_task_are_each_charged_to_their_own_run(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        meter, link, _ = _setup(tmp_path)
        model = _model(meter, "a")

        async def handle(agent: Any, event: Tick) -> None:
            for _ in range(event.n):
                await model.complete(HELLO, max_tokens=8)

        first, second = new_trace_id(), new_trace_id()
        events = [
            EventRecord("feed", seq, f"feed:{seq}:0", seq, "Tick", Tick(n=n).model_dump_json()
                        .encode(), trace, "system", "w", "2026-01-01T00:00:00+00:00")
            for seq, n, trace in ((1, 3, first), (2, 2, second))
        ]  # fmt: skip
        specs = {"Tick": Subscription("handle", handle, Tick, None)}
        batch = EventBatch.of("feed", events).wire()  # as a batch runs: in one task
        report = await deliver(specs, "agent a", "a", batch, calling(object()))
        assert (report.done_upto, report.handled, report.error) == (2, 2, None)
        await meter.flush()
        spent = link.core.book.spent
        assert spent[(first, "a", "scripted")]["calls"] == 3
        assert spent[(second, "a", "scripted")]["calls"] == 2

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_reply_after_a_vouch_lowers_the_raised_mark_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        meter, _, _ = _setup(tmp_path)
        model = _model(meter, "a")
        derived.begin(Envelope(provenance=Provenance.HUMAN))
        await model.complete(HELLO, max_tokens=8)
        await model.complete(HELLO, max_tokens=8)
        assert derived.derived() is Provenance.UNVERIFIED_AGENT
        assert ADMITTED.get() is not None
        derived.vouch(("resource:facts",))  # a verifier checked what it has so far
        assert derived.derived() is Provenance.VERIFIED
        await model.complete(HELLO, max_tokens=8)  # derived from a reply again
        assert derived.derived() is Provenance.UNVERIFIED_AGENT

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_cancelled_call_under_a_token_releases_its_slot_and_is_counted_in_full(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        meter, link, _ = _setup(tmp_path)
        slow = ScriptedRule(pattern="slow", reply="ok", latency=timedelta(seconds=30))
        inner = ScriptedModel(rules=(slow,), clock=FakeClock())
        model = _model(meter, "a", inner)
        await model.complete(HELLO, max_tokens=8)
        await model.complete(HELLO, max_tokens=8)
        token = ADMITTED.get()
        assert token is not None
        slow_call = [Message(role="user", content="slow")]
        hanging = asyncio.ensure_future(model.complete(slow_call, max_tokens=8))
        while inner.call_count < 3:  # the task's copy of this context holds the token
            await asyncio.sleep(0)
        assert token.allowance.active == 1
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        assert token.allowance.active == 0
        await asyncio.wait_for(meter.flush(), timeout=10)  # nothing waits for it
        spent = link.core.book.spent[(current_run(), "a", "scripted")]
        assert spent["calls"] == 3
        prompt = 2 * estimate_prompt_tokens(HELLO) + estimate_prompt_tokens(slow_call)
        assert (spent["prompt_tokens"], spent["completion_tokens"]) == (prompt, 2 * 1 + 8)

    asyncio.run(scenario())
