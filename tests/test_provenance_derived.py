"""The per-task derivation: a handler's mark starts at its input and only falls with what
it reads; only a verifier's vouch raises it; outside a task the mark is the system's."""

from __future__ import annotations

import asyncio

import pytest

from actors import Agent
from actors._agent import derived
from policies import Provenance
from runtime import ConfigurationError, Envelope


def test_the_mark_falls_with_each_read_and_is_reset_after_the_task() -> None:
    assert derived.derived() is Provenance.SYSTEM
    envelope = Envelope(provenance=Provenance.HUMAN)
    token = derived.begin(envelope)
    derived.note(Provenance.TOOL, "resource:prices")
    derived.note(Provenance.VERIFIED, "resource:stats")  # a stronger read raises nothing
    assert derived.derived() is Provenance.TOOL
    derived.note(Provenance.UNVERIFIED_AGENT, "model:scripted")
    assert derived.derived() is Provenance.UNVERIFIED_AGENT
    assert derived.sources() == (
        f"task:{envelope.task_id}",
        "resource:prices",
        "resource:stats",
        "model:scripted",
    )
    derived.end(token)
    assert derived.derived() is Provenance.SYSTEM and derived.sources() == ()


def test_sources_are_bounded_and_the_mark_still_counts_every_read() -> None:
    token = derived.begin(Envelope())
    for i in range(derived.MAX_SOURCES * 2):
        derived.note(Provenance.SYSTEM, f"resource:r{i}")
    derived.note(Provenance.TOOL, "resource:last")
    assert len(derived.sources()) == derived.MAX_SOURCES
    assert derived.derived() is Provenance.TOOL
    derived.end(token)


def test_concurrent_tasks_keep_their_own_marks() -> None:
    async def run(mark: Provenance) -> Provenance:
        token = derived.begin(Envelope(provenance=Provenance.SYSTEM))
        await asyncio.sleep(0)
        derived.note(mark, "x")
        await asyncio.sleep(0)
        try:
            return derived.derived()
        finally:
            derived.end(token)

    async def both() -> list[Provenance]:
        return list(await asyncio.gather(run(Provenance.TOOL), run(Provenance.VERIFIED)))

    assert asyncio.run(both()) == [Provenance.TOOL, Provenance.VERIFIED]


class _Plain(Agent):
    pass


class _Verifier(Agent):
    verifier = True


def test_only_a_declared_verifier_vouches_and_only_inside_a_task() -> None:
    with pytest.raises(ConfigurationError, match="not a verifier"):
        _Plain().vouch("resource:stats")
    with pytest.raises(ConfigurationError, match="outside a handler"):
        _Verifier().vouch("resource:stats")
    token = derived.begin(Envelope())
    derived.note(Provenance.UNVERIFIED_AGENT, "model:scripted")
    _Verifier().vouch("resource:stats")
    assert derived.derived() is Provenance.VERIFIED
    assert derived.sources()[-1] == "resource:stats"
    derived.end(token)
