"""``Visibility``: checking a decision-visibility policy against the running agents and
handing its within-transaction rules to the resources (docs/visibility.md)."""

from __future__ import annotations

from typing import Any

import ray

from policies import Latency, VisibilityPolicy
from runtime import UnknownSubscriberError, named_actors, storage_root

_NEEDS = {Latency.IMMEDIATE: "subscribe", Latency.WITHIN_TRANSACTION: "validate"}


def check_subscribers(policy: VisibilityPolicy, namespace: str) -> dict[str, int]:
    """Check that every agent ``policy`` names runs and can hear its event type: a
    ``@subscribe`` handler for ``immediate``, a ``@validate`` one for
    ``within_transaction``. Returns each named agent's replica count.

    Raises:
        UnknownSubscriberError: the first rule (by event type name) naming an agent
            that is not running or has no such handler.
    """
    from .._agent.group import replicas_of

    replicas: dict[str, list[Any]] = {}
    handled: dict[str, dict[str, list[str]]] = {}
    for event_type, rule in sorted(policy.rules.items()):
        for agent in rule.notify:
            if agent not in replicas:  # dedicated and pooled: a pooled one through its host
                found = replicas_of(namespace, agent)
                replicas[agent] = [found[name] for name in sorted(found)]
            if not replicas[agent]:
                raise UnknownSubscriberError(event_type, agent, "is not a running agent")
            if agent not in handled:
                handled[agent] = ray.get(replicas[agent][0].event_types.remote())
            needed = _NEEDS[rule.latency]
            if event_type not in handled[agent][needed]:
                why = f"has no @{needed}({event_type}) handler ({rule.latency.value})"
                raise UnknownSubscriberError(event_type, agent, why)
    return {agent: len(replicas[agent]) for agent in handled}


class Visibility:
    """Decision visibility for a running system (``policies.VisibilityPolicy``)."""

    @staticmethod
    def enforce(system: Any, policy: VisibilityPolicy) -> None:
        """Check ``policy`` against the agents running now, then make every resource
        (running or started later, and after a restart) apply its within-transaction
        rules. Call it once the agents it names are started; a refused policy changes
        nothing.

        Raises:
            UnknownSubscriberError: a rule names an agent that is not running or cannot
                hear the event type (see ``check_subscribers``).
            StorageError: the rules could not be stored.
        """
        from .._resource.validation import save_rules

        replicas = check_subscribers(policy, system.namespace)
        save_rules(storage_root(system.root), policy, replicas)
        resources = named_actors(system.namespace, "resource:").values()
        ray.get([actor.reload_visibility.remote() for actor in resources])
