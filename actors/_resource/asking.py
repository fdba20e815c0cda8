"""How a resource asks an agent's validators for a verdict over Ray: a dedicated
replica through its actor ``agent:<name>:<i>``, a pooled one through its host (which
runs the validator in its control group, beside the agent's mailbox, never behind it)."""

from __future__ import annotations

from typing import Any, TypeGuard

import ray

from runtime import ConfigurationError, ValidatorFailedError, agent_actor_name, lookup

from .._events.validate import Veto

Trace = tuple[str, str]


class RayValidators:
    """Asks an agent's replicas, in turn, for a verdict (the first that answers)."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._actors: dict[tuple[str, int], Any] = {}

    async def __call__(
        self, agent: str, replicas: int, event_type: str, payload: bytes, deadline_s: float,
        trace: Trace,
    ) -> Veto | None:  # fmt: skip
        failure = ("died", "no replica is running")
        for i in range(max(replicas, 1)):
            for fresh in (False, True):  # a replica restarted under its name: look it up again
                actor = await self._actor(agent, i, fresh)
                if actor is None:
                    break
                try:  # the gate bounds the question, the replica its run: both by the deadline
                    asked = actor.validate_event.remote(event_type, payload, trace, deadline_s)
                    verdict = await asked
                except ray.exceptions.RayActorError as error:
                    failure = ("died", str(error).splitlines()[0][:300])
                    continue
                except Exception as error:
                    raise _failed(event_type, agent, error) from error
                if verdict is None or _a_veto(verdict):
                    return verdict
                bad = type(verdict).__name__
                raise ValidatorFailedError("", event_type, agent, "bad_verdict", bad)
        raise ValidatorFailedError("", event_type, agent, *failure)

    async def _actor(self, agent: str, replica: int, fresh: bool) -> Any:
        key = (agent, replica)
        if fresh:
            self._actors.pop(key, None)
        if key not in self._actors:
            found = await _replica(self._namespace, agent, replica)
            if found is None:
                return None
            self._actors[key] = found
        return self._actors[key]


def _a_veto(verdict: Any) -> TypeGuard[Veto]:
    """A ``Veto`` with a reason: one built without validation (``model_construct``)
    may lack it, and the gate, reading it, would fail the whole submit untyped."""
    return isinstance(verdict, Veto) and isinstance(getattr(verdict, "reason", None), str)


def _failed(event_type: str, agent: str, error: Exception) -> ValidatorFailedError:
    """The failure of a validator's run that ended in ``error``: ``timeout`` if the
    replica cancelled it at the deadline (the gate's own bound is usually first),
    else ``raised``."""
    cause = getattr(error, "cause", error)  # a ``RayTaskError`` carries the run's error
    if isinstance(cause, ValidatorFailedError) and cause.failure == "timeout":
        return ValidatorFailedError("", event_type, agent, "timeout", cause.detail)
    detail = f"{type(error).__name__}: {str(error).splitlines()[-1][:300]}"
    return ValidatorFailedError("", event_type, agent, "raised", detail)


async def _replica(namespace: str, agent: str, replica: int) -> Any:
    """Replica ``replica`` of ``agent``: its actor (dedicated) or its ``PooledReplica``
    (a host Ray is restarting is waited for: it comes back with its agents); None if it
    does not run."""
    from .._agent.pooled import pooled_pings

    try:
        return lookup(agent_actor_name(agent, replica), namespace)
    except ConfigurationError:
        pass
    wanted = f"{agent}:{replica}"
    return next((r for r, _ in await pooled_pings(namespace, agent) if r.key == wanted), None)
