"""Decision visibility on a real Ray: validators asked by a resource actor, refused
policies, failures under each rule, and forged calls straight to the actors. The gate,
its stored rules and an immediate rule run on both storage backends (``any_system``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import ray
from backends import any_system as any_system
from visibility_for_tests import Crashy, Deaf, Liar, Listener, Pricing, Shop, Slow, Stuck

from actors import Subscriptions, System, Visibility
from policies import Latency, OnTimeout, VisibilityPolicy, VisibilityRule
from runtime import (
    MalformedEventError,
    UnknownEventTypeError,
    UnknownSubscriberError,
    ValidatorFailedError,
    VetoedError,
    agent_actor_name,
    lookup,
)

pytestmark = pytest.mark.timeout(240)


def gated(*agents: str, on_timeout: OnTimeout = OnTimeout.VETO) -> VisibilityPolicy:
    rule = VisibilityRule(
        notify=agents, latency=Latency.WITHIN_TRANSACTION,
        deadline=timedelta(seconds=3), on_timeout=on_timeout,
    )  # fmt: skip
    return VisibilityPolicy(rules={"PromiseMade": rule})


def test_a_validator_reading_the_same_resource_vetoes_a_stale_promise(any_system: System) -> None:
    shop = any_system.resource(Shop, name="shop")
    any_system.agent(Pricing, name="pricing")
    Visibility.enforce(any_system, gated("pricing"))
    shop.set_price("A", 10)
    assert shop.promise("A", 10) == 1  # the validator read the shop while the write waited
    shop.set_price("A", 12)
    with pytest.raises(VetoedError) as vetoed:
        shop.promise("A", 10)
    assert (vetoed.value.validator, vetoed.value.reason) == ("pricing", "quoted 10, price is 12")
    assert shop.promises() == 1
    [rejection] = any_system.log("shop").rejections()
    assert (rejection.reason, rejection.trace_id) == ("vetoed", any_system.trace_id)
    # the write method runs once per call, allowed or vetoed, in the actor too
    with pytest.raises(VetoedError):
        shop.counted_promise("A", 10)
    assert shop.counted_promise("A", 12) == 2


@pytest.mark.parametrize(
    ("cls", "failure"), [(Slow, "timeout"), (Crashy, "raised"), (Liar, "bad_verdict")]
)
def test_a_validator_without_a_verdict_follows_each_rule(
    system: System, cls: type, failure: str
) -> None:
    shop = system.resource(Shop, name="shop")
    system.agent(cls, name="judge")
    Visibility.enforce(system, gated("judge", on_timeout=OnTimeout.VETO))
    with pytest.raises(ValidatorFailedError) as failed:
        shop.promise("A", 10)
    assert (failed.value.failure, failed.value.validator) == (failure, "judge")
    Visibility.enforce(system, gated("judge", on_timeout=OnTimeout.ALLOW))
    assert shop.promise("A", 10) == 1
    assert [r.reason for r in system.log("shop").rejections()] == ["validator_failed"]


@pytest.mark.parametrize("placement", ["dedicated", "pooled"])
def test_validator_runs_past_their_deadline_end_and_leave_the_agent_answering(
    system: System, placement: str
) -> None:
    shop = system.resource(Shop, name="shop")
    system.agent(Stuck, name="judge", placement=placement)
    rule = VisibilityRule(
        notify=("judge",), latency=Latency.WITHIN_TRANSACTION,
        deadline=timedelta(milliseconds=300),
    )  # fmt: skip
    Visibility.enforce(system, VisibilityPolicy(rules={"PromiseMade": rule}))
    for _ in range(20):  # more runs than a replica has control calls (16)
        with pytest.raises(ValidatorFailedError) as failed:
            shop.promise("stuck", 1)
        assert (failed.value.failure, failed.value.validator) == ("timeout", "judge")
    assert shop.promise("A", 1) == 1  # its verdicts on other writes still come in time
    assert shop.promises() == 1


def test_a_killed_validator_is_a_typed_failure_and_the_rules_survive_a_restart(
    any_system: System,
) -> None:
    shop = any_system.resource(Shop, name="shop")
    any_system.agent(Pricing, name="pricing")
    Visibility.enforce(any_system, gated("pricing"))
    shop.set_price("A", 10)
    any_system.kill("pricing")
    with pytest.raises(ValidatorFailedError) as failed:
        shop.promise("A", 10)
    assert failed.value.failure == "died"
    ray.kill(lookup("resource:shop", any_system.namespace), no_restart=False)
    again = any_system.get_resource("shop")  # a new incarnation reads the stored rules
    with pytest.raises(ValidatorFailedError):
        again.promise("A", 10)
    assert again.promises() == 0


def test_a_policy_naming_a_missing_or_deaf_agent_is_refused(system: System) -> None:
    shop = system.resource(Shop, name="shop")
    system.agent(Deaf, name="deaf")
    with pytest.raises(UnknownSubscriberError) as missing:
        Visibility.enforce(system, gated("nobody"))
    assert (missing.value.agent, missing.value.event_type) == ("nobody", "PromiseMade")
    with pytest.raises(UnknownSubscriberError, match="no @validate"):
        Visibility.enforce(system, gated("deaf"))
    immediate = VisibilityRule(notify=("deaf",), latency=Latency.IMMEDIATE)
    with pytest.raises(UnknownSubscriberError, match="no @subscribe"):
        Visibility.enforce(system, VisibilityPolicy(rules={"PriceChanged": immediate}))
    assert shop.promise("A", 1) == 1  # a refused policy changed nothing


def test_forged_calls_to_a_validator_are_typed_errors(system: System) -> None:
    system.agent(Pricing, name="pricing")
    actor = lookup(agent_actor_name("pricing", 0), system.namespace)
    with pytest.raises(UnknownEventTypeError):
        ray.get(actor.validate_event.remote("PriceChanged", b"{}"))
    with pytest.raises(MalformedEventError):
        ray.get(actor.validate_event.remote("PromiseMade", b'{"sku": 1}'))
    with pytest.raises(MalformedEventError):
        ray.get(actor.validate_event.remote("PromiseMade", {"sku": "A"}))
    with pytest.raises(UnknownEventTypeError):
        ray.get(actor.validate_event.remote(["not", "a", "name"], b"{}"))


def test_an_immediate_rule_is_accepted_for_a_subscriber_and_pushes(any_system: System) -> None:
    shop = any_system.resource(Shop, name="shop")
    any_system.agent(Listener, name="listener")
    immediate = VisibilityRule(notify=("listener",), latency=Latency.IMMEDIATE)
    Visibility.enforce(any_system, VisibilityPolicy(rules={"PriceChanged": immediate}))
    shop.set_price("A", 7)
    Subscriptions(any_system.namespace).wait_caught_up(timedelta(seconds=120))
    assert shop.noted() == "A now 7"
