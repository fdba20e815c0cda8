"""``system.conflicts``: how the conflicts of the running resources settled."""

from __future__ import annotations

from typing import Any

import ray

from runtime import lookup, named_actors, resource_actor_name

from .messages import ConflictRecord, ConflictSummary


class Conflicts:
    """The conflict records and the share settled per level, read from the resources
    (each keeps its own, ``ResourceRetention.audit`` long)."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace

    def summary(self, resource: str | None = None) -> ConflictSummary:
        """Conflicts per settling level and outcome, of ``resource`` or of every running
        resource: the figure ``agentcast status`` shows.

        Raises:
            ConfigurationError: no resource ``resource`` runs.
        """
        rows: list[Any] = []
        for actor in self._actors(resource):
            rows.extend(ray.get(actor.conflict_counts.remote()))
        return ConflictSummary.of([tuple(row) for row in rows])

    def records(self, resource: str, limit: int = 100) -> list[ConflictRecord]:
        """The newest conflicts of ``resource``, newest first.

        Raises:
            ConfigurationError: no resource ``resource`` runs.
            InvalidArgumentError: ``limit`` is not an int >= 1.
        """
        (actor,) = self._actors(resource)
        return ray.get(actor.conflicts.remote(limit))  # type: ignore[no-any-return]

    def _actors(self, resource: str | None) -> list[Any]:
        if resource is not None:
            return [lookup(resource_actor_name(resource), self._namespace)]
        return list(named_actors(self._namespace, resource_actor_name("")).values())
