"""Constraints as values: strictness order, tightening, the wire form, write checks."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    AllowOnly,
    CapArgument,
    Constraint,
    ConstraintSet,
    ForbidEntities,
    ForbidPath,
    SpendCeiling,
    describe_constraint,
)

PATHS = st.sampled_from(["/", "/prod", "/prod/db", "/prod/db/x", "/staging", "/tmp/a"])
NAMES = st.sampled_from(["files", "files.write_file", "files.delete", "ledger", "ledger.grant"])
CONSTRAINTS: st.SearchStrategy[Constraint] = st.one_of(
    st.builds(ForbidPath, prefix=PATHS, argument=st.sampled_from(["path", "target"])),
    st.builds(ForbidEntities, entities=st.frozensets(st.sampled_from("abcd"), min_size=1)),
    st.builds(CapArgument, argument=st.just("amount"), maximum=st.integers(0, 100)),
    st.builds(AllowOnly, targets=st.frozensets(NAMES, max_size=3)),
    st.builds(SpendCeiling, cost=st.floats(0, 10)),
)
SETS = st.lists(CONSTRAINTS, max_size=6).map(lambda items: ConstraintSet(tuple(items)))
WRITES = st.tuples(
    st.sampled_from(["files", "ledger"]),
    st.sampled_from(["write_file", "delete", "grant"]),
    st.fixed_dictionaries(
        {},
        optional={
            "path": PATHS,
            "target": PATHS,
            "entity": st.sampled_from("abcde"),
            "amount": st.integers(-5, 120),
        },
    ),
)


@given(SETS, SETS)
def test_tightening_is_monotone(base: ConstraintSet, added: ConstraintSet) -> None:
    tightened = base.tighten(added)
    assert tightened.is_at_least_as_strict_as(base)
    assert tightened.is_at_least_as_strict_as(added)


@given(SETS, st.lists(SETS, max_size=5), WRITES)
def test_no_sequence_of_tightenings_admits_a_write_the_start_refused(
    start: ConstraintSet, steps: list[ConstraintSet], write: tuple[str, str, dict[str, object]]
) -> None:
    current = start
    for step in steps:
        current = current.tighten(step)
        assert current.is_at_least_as_strict_as(start)
    resource, op, arguments = write
    if start.violated_by(resource, op, arguments) is not None:
        assert current.violated_by(resource, op, arguments) is not None


@given(SETS, SETS, WRITES)
def test_a_stricter_set_refuses_every_write_the_looser_refuses(
    a: ConstraintSet, b: ConstraintSet, write: tuple[str, str, dict[str, object]]
) -> None:
    if a.is_at_least_as_strict_as(b) and b.violated_by(*write) is not None:
        assert a.violated_by(*write) is not None


@given(SETS)
def test_the_wire_form_and_pickling_round_trip(constraints: ConstraintSet) -> None:
    assert ConstraintSet.from_wire(constraints.to_wire()) == constraints
    assert pickle.loads(pickle.dumps(constraints)) == constraints


def test_paths_compare_by_whole_segments_in_normal_form() -> None:
    prod = ConstraintSet((ForbidPath(prefix="/prod/"),))
    assert prod.violated_by("files", "write_file", {"path": "/prod"}) == ForbidPath(prefix="/prod")
    assert prod.violated_by("files", "write_file", {"path": "/tmp/../prod/x"}) is not None
    assert prod.violated_by("files", "write_file", {"path": "/production/x"}) is None
    assert prod.violated_by("files", "write_file", {"path": 7}) is not None  # fails closed
    assert prod.violated_by("files", "write_file", {"other": "/prod"}) is None


def test_each_kind_refuses_what_it_names() -> None:
    cap = CapArgument(argument="amount", maximum=10)
    allow = AllowOnly(targets=frozenset({"files.write_file", "ledger"}))
    entities = ForbidEntities(entities=frozenset({"acme"}), argument="customer")
    both = ConstraintSet((cap, allow, entities, SpendCeiling(cost=1.0)))
    assert both.violated_by("ledger", "grant", {"amount": 10, "customer": "zeta"}) is None
    assert both.violated_by("ledger", "grant", {"amount": 10.5}) == cap
    assert both.violated_by("ledger", "grant", {"amount": float("nan")}) == cap
    assert both.violated_by("files", "delete", {}) == allow
    assert both.violated_by("ledger", "grant", {"customer": "acme"}) == entities
    assert describe_constraint(cap) == "cap(amount <= 10)"
    assert both.arguments() == frozenset({"amount", "customer"})


def test_tighten_keeps_only_the_strictest_of_each_kind() -> None:
    loose = ConstraintSet((ForbidPath(prefix="/prod/db"), CapArgument(argument="n", maximum=9)))
    tight = loose.tighten(
        ConstraintSet((ForbidPath(prefix="/prod"), CapArgument(argument="n", maximum=3)))
    )
    assert tight.items == (CapArgument(argument="n", maximum=3), ForbidPath(prefix="/prod"))
    assert not loose.is_at_least_as_strict_as(tight)
    assert tight.tighten(loose) == tight


@pytest.mark.parametrize(
    "wire",
    [
        "forbid /prod", [{"kind": "nope"}], [{"kind": "forbid_path"}],
        [{"kind": "forbid_path", "prefix": "/p", "extra": 1}],
        [{"kind": "cap", "argument": "a", "maximum": "1"}],
        [{"kind": "cap", "argument": "a", "maximum": float("inf")}],
        [{"kind": "allow_only", "targets": "files"}], [{"kind": "forbid_path", "prefix": ""}],
        [{"kind": "spend_ceiling", "cost": -1}], [1],
        [{"kind": "forbid_path", "prefix": f"/p{i}"} for i in range(65)],
    ],
)  # fmt: skip
def test_a_malformed_wire_form_is_a_value_error(wire: object) -> None:
    with pytest.raises(ValueError):
        ConstraintSet.from_wire(wire)
