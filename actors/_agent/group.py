"""``AgentGroup``: the driver's way to the replicas of one agent."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable
from typing import Any

import ray
from pydantic import BaseModel

from runtime import ConfigurationError, Envelope, agent_actor_name, named_actors


class AgentGroup:
    """The replicas of one agent. ``call`` sends a message to the next replica."""

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
    """The running replicas of every agent of ``agents``, restarted ones included (an
    agent gone meanwhile has none)."""
    found: list[Any] = []
    for agent in agents:
        with contextlib.suppress(ConfigurationError):
            found.extend(replicas_of(namespace, agent).values())
    return found


def replicas_of(namespace: str, agent: str) -> dict[str, Any]:
    """The running replicas of ``agent``, by actor name."""
    return named_actors(namespace, agent_actor_name(agent, 0)[:-1])
