"""The decision-visibility policy: loading from YAML and every typed refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    Latency,
    OnTimeout,
    PolicyFileError,
    PolicyTypeError,
    PolicyValueError,
    UnknownPolicyKeyError,
    VisibilityPolicy,
    VisibilityRule,
    load_policies,
)

BRIEF = """
visibility:
  PriceChanged: {notify: [fulfillment, support], latency: immediate}
  CustomerException: {notify: [billing], latency: within_transaction, deadline: 200ms,
                      on_timeout: veto}
"""


def test_the_policy_of_the_issue_loads_as_written() -> None:
    loaded = load_policies(BRIEF).visibility
    assert loaded == VisibilityPolicy(
        rules={
            "PriceChanged": VisibilityRule(
                notify=("fulfillment", "support"), latency=Latency.IMMEDIATE
            ),
            "CustomerException": VisibilityRule(
                notify=("billing",), latency=Latency.WITHIN_TRANSACTION,
                deadline=timedelta(milliseconds=200), on_timeout=OnTimeout.VETO,
            ),
        }
    )  # fmt: skip
    assert list(loaded.gated()) == ["CustomerException"]


def test_no_section_means_no_rules() -> None:
    assert load_policies("retry: {max_attempts: 2}").visibility == VisibilityPolicy()


@pytest.mark.parametrize(
    ("rule", "error", "where"),
    [
        ("{notify: [a], latency: eventually}", PolicyValueError, "X.latency"),
        ("{notify: [a], latency: within_transaction}", PolicyValueError, "X"),
        ("{notify: [a], latency: immediate, deadline: 1s}", PolicyValueError, "X"),
        ("{notify: [a], latency: within_transaction, deadline: 0}", PolicyValueError, "X"),
        ("{notify: [a], latency: within_transaction, deadline: 1s, on_timeout: retry}",
         PolicyValueError, "X.on_timeout"),
        ("{notify: [], latency: immediate}", PolicyValueError, "X"),
        ("{notify: [a, a], latency: immediate}", PolicyValueError, "X"),
        ("{notify: a, latency: immediate}", PolicyTypeError, "X.notify"),
        ("{latency: immediate}", PolicyValueError, "X"),
        ("{notify: [a], latency: immediate, fast: yes}", UnknownPolicyKeyError, "X.fast"),
        ("{notify: [a], latency: 3}", PolicyValueError, "X.latency"),
        ("[a]", PolicyTypeError, "X"),
    ],
)  # fmt: skip
def test_a_bad_rule_is_a_typed_error_naming_where(rule: str, error: type, where: str) -> None:
    with pytest.raises(error) as raised:
        load_policies(f"visibility:\n  X: {rule}\n")
    assert raised.value.path == f"visibility.{where}"


GIVEN_TWICE = """
visibility:
  PromiseMade: {notify: [pricing], latency: within_transaction, deadline: 1s}
  PromiseMade: {notify: [support], latency: immediate}
"""


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "where", "line"),
    [
        (GIVEN_TWICE, "visibility.PromiseMade", 4),  # else the gated rule is silently lost
        ("visibility:\n  X: {notify: [a], latency: immediate, latency: within_transaction}\n",
         "visibility.X.latency", 2),
        ("visibility: {}\nretry: {max_attempts: 2}\nvisibility: {}\n", "visibility", 3),
        ("budgets:\n  - {scope: run, cap: 1, cap: 2}\n", "budgets[0].cap", 2),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused_naming_where(text: str, where: str, line: int) -> None:
    with pytest.raises(PolicyValueError) as raised:
        load_policies(text)
    problem = f"given twice (again on line {line})"
    assert (raised.value.path, raised.value.problem) == (where, problem)


@pytest.mark.timeout(30)
def test_a_huge_or_deeply_nested_file_is_a_typed_error() -> None:
    with pytest.raises(PolicyFileError) as deep:
        load_policies("visibility: " + "[" * 5000 + "]" * 5000)
    assert (type(deep.value), deep.value.path) == (PolicyFileError, "")
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]  # 10**30 names, once expanded
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 30)]
    with pytest.raises(PolicyTypeError) as bomb:  # checked once per node, not per alias
        load_policies("visibility:\n  " + "\n  ".join(laughs))
    assert bomb.value.path == "visibility.a0"


def test_an_event_type_must_be_a_class_name() -> None:
    with pytest.raises(PolicyValueError):
        load_policies("visibility:\n  'not a class': {notify: [a], latency: immediate}\n")


@given(
    latency=st.sampled_from(Latency),
    deadline_ms=st.one_of(st.none(), st.integers(min_value=-5, max_value=10_000)),
    on_timeout=st.sampled_from(OnTimeout),
    notify=st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
)
def test_a_rule_loads_exactly_when_it_is_valid(
    latency: Latency, deadline_ms: int | None, on_timeout: OnTimeout, notify: list[str]
) -> None:
    valid = (
        bool(notify) and len(set(notify)) == len(notify)
        and (
            (latency is Latency.IMMEDIATE and deadline_ms is None)
            or (latency is Latency.WITHIN_TRANSACTION and deadline_ms is not None
                and deadline_ms > 0)
        )
    )  # fmt: skip
    deadline = "" if deadline_ms is None else f", deadline: {deadline_ms}ms"
    text = (
        f"visibility:\n  E: {{notify: [{', '.join(notify)}], latency: {latency.value}"
        f"{deadline}, on_timeout: {on_timeout.value}}}\n"
    )
    if not valid:
        with pytest.raises((PolicyValueError, PolicyTypeError)):
            load_policies(text)
        return
    rule = load_policies(text).visibility.rules["E"]
    assert rule == VisibilityRule(
        notify=tuple(notify), latency=latency, on_timeout=on_timeout,
        deadline=None if deadline_ms is None else timedelta(milliseconds=deadline_ms),
    )  # fmt: skip
