"""Provenance marks: a total order of trust; ``weakest`` is its meet; the trust rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import Provenance, ProvenanceTrust, weakest
from runtime import Envelope

marks = st.sampled_from(list(Provenance))


def test_the_order_of_trust_is_total_and_as_documented() -> None:
    ranked = sorted(Provenance, key=lambda mark: mark.rank, reverse=True)
    assert ranked == [
        Provenance.HUMAN,
        Provenance.SYSTEM,
        Provenance.VERIFIED,
        Provenance.TOOL,
        Provenance.UNVERIFIED_AGENT,
    ]
    assert len({mark.rank for mark in Provenance}) == len(Provenance)
    assert Provenance.VERIFIED.at_least(Provenance.TOOL)
    assert not Provenance.TOOL.at_least(Provenance.VERIFIED)


@given(marks, marks)
def test_weakest_is_commutative(a: Provenance, b: Provenance) -> None:
    assert weakest(a, b) == weakest(b, a)


@given(marks, marks, marks)
def test_weakest_is_associative(a: Provenance, b: Provenance, c: Provenance) -> None:
    assert weakest(weakest(a, b), c) == weakest(a, weakest(b, c)) == weakest(a, b, c)


@given(marks)
def test_weakest_is_idempotent_and_human_is_its_identity(a: Provenance) -> None:
    assert weakest(a, a) == a
    assert weakest(a, Provenance.HUMAN) == a
    assert weakest() == Provenance.HUMAN


@given(st.lists(marks, min_size=1))
def test_weakest_is_one_of_its_inputs_and_never_stronger_than_any(ms: list[Provenance]) -> None:
    low = weakest(ms)
    assert low in ms
    assert all(m.at_least(low) for m in ms)


def test_weakest_refuses_what_is_not_a_mark() -> None:
    with pytest.raises(ValueError):
        weakest(Provenance.HUMAN, "trusted-by-me")  # type: ignore[arg-type]


@given(marks, st.text(min_size=1, max_size=8))
def test_an_undeclared_writer_is_never_believed_above_its_ceiling(
    claimed: Provenance, writer: str
) -> None:
    trust = ProvenanceTrust(vouchers={"checker": Provenance.VERIFIED})
    believed = trust.believed(writer, claimed)
    assert claimed.at_least(believed)
    if writer == "system":
        assert believed == claimed
    elif writer == "checker":
        assert believed == weakest(claimed, Provenance.VERIFIED)
    else:
        assert believed == Provenance.UNVERIFIED_AGENT


@given(marks, st.lists(st.sampled_from(["system", "agent-a", "agent-b"]), max_size=5))
def test_a_chain_of_delegations_never_raises_trust(root: Provenance, senders: list[str]) -> None:
    envelope = Envelope(provenance=root)
    for sender in senders:
        child = envelope.child(sender=sender)
        assert envelope.provenance.at_least(child.provenance)
        assert child.sources == (envelope.task_id,)
        envelope = child
    if any(s != "system" for s in senders):
        assert envelope.provenance == Provenance.UNVERIFIED_AGENT
