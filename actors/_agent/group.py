"""``AgentGroup``: the driver's way to the replicas of one agent."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable
from typing import Any

import ray
from pydantic import BaseModel

from runtime import ConfigurationError, Envelope, agent_actor_name, named_actors

from .pooled import hosts, pooled_replicas, through_restart


class AgentGroup:
    """The replicas of one agent. ``call`` sends a message to the next replica.

    ``actors`` are the replicas' actors (dedicated) or ``PooledReplica``s (pooled): both
    take ``handle.remote(message, envelope)``."""

    def __init__(self, name: str, actors: list[Any], trace_id: str) -> None:
        self.name = name
        self.actors = actors
        self._trace_id = trace_id
        self._next = itertools.cycle(range(len(actors)))

    def call(
        self, message: BaseModel, *, envelope: Envelope | None = None, replica: int | None = None
    ) -> Any:
        """Send ``message`` to a replica (round robin unless given); returns an ObjectRef."""
        index = next(self._next) if replica is None else replica
        env = envelope or Envelope(trace_id=self._trace_id)
        return self.actors[index].handle.remote(message, env)

    def ask(self, message: BaseModel, *, timeout: float | None = None) -> Any:
        """Send ``message`` and wait for the output model."""
        return ray.get(self.call(message), timeout=timeout)


def live_replicas(namespace: str, agents: Iterable[str]) -> list[Any]:
    """The actors running every agent of ``agents``: each dedicated replica (restarted
    ones included; an agent gone meanwhile has none) and every pooled host (to settle
    and stop: a host runs the pooled agents of the namespace)."""
    found: list[Any] = []
    for agent in agents:
        with contextlib.suppress(ConfigurationError):
            found.extend(named_actors(namespace, agent_actor_name(agent, 0)[:-1]).values())
    return found + list(hosts(namespace).values())


def replicas_of(namespace: str, agent: str) -> dict[str, Any]:
    """The running replicas of ``agent``, by actor name ``agent:<name>:<i>``: dedicated
    ones as their actors, pooled ones as ``PooledReplica``s.

    Raises:
        ConfigurationError: a dedicated replica went away while they were looked up.
    """
    dedicated = named_actors(namespace, agent_actor_name(agent, 0)[:-1])
    return {**dedicated, **pooled_replicas(namespace, agent)}


def dedicated_replicas(namespace: str, group: str) -> dict[str, Any]:
    """The dedicated replicas of ``group`` by replica name ``<group>:<i>`` (one that went
    away while they were looked up is left out)."""
    prefix = agent_actor_name(group, 0)[:-1]
    found: dict[str, Any] = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace and entry["name"].startswith(prefix):
            with contextlib.suppress(ValueError):
                actor = ray.get_actor(entry["name"], namespace=namespace)
                found[entry["name"].removeprefix("agent:")] = actor
    return found


async def dedicated_pings(namespace: str, group: str) -> list[tuple[str, Any, dict[str, Any]]]:
    """Each dedicated replica of ``group`` by replica name, with its actor and what its
    ``ping`` says (for the supervisor, which awaits it). One that Ray is restarting (its
    process or node died) is waited for, as a pooled host is; a dead one is left out."""
    found = dedicated_replicas(namespace, group)
    answers = await asyncio.gather(*(through_restart(a.ping.remote) for a in found.values()))
    return [
        (name, actor, dict(info))
        for (name, actor), info in zip(found.items(), answers, strict=True)
        if info is not None
    ]


def find_replica(namespace: str, replica: str) -> Any:
    """The replica ``<name>:<i>``: its actor (dedicated), or a ``PooledReplica``.

    Raises:
        ValueError: no such replica runs (as ``ray.get_actor`` says of a dedicated one).
    """
    with contextlib.suppress(ValueError):
        return ray.get_actor(f"agent:{replica}", namespace=namespace)
    found = pooled_replicas(namespace, replica.rpartition(":")[0]).get(f"agent:{replica}")
    if found is None:
        raise ValueError(f"no replica {replica!r} runs in {namespace!r}")
    return found
