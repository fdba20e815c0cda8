"""Pooled agents as the rest of the system sees them: placed on hosts by the driver's
``HostPool``, and reached through a ``PooledReplica``, which answers the calls of a
dedicated replica's actor handle (``handle``, ``ping``, ``outcome``, ``settle``, and the
events' ``deliver``, ``validate_event``, ``event_types``) by calling its host with the
agent's key. So the supervisor, the kill switch, ``AgentGroup``
and the budget treat both placements alike, by the names ``agent:<name>:<i>``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError

from policies import HostPolicy
from runtime import ConfigurationError, named_actors, spawn

from .host import CONTROL_GROUP
from .pool_host import HOST_PREFIX, PoolHost, Recipe, agent_key, forget_dead_hosts

_CONTROL_CALLS = 16
_ASK_S = 30.0
_RESTART_S = 120.0
_PAUSE_S = 0.2


class _Bound:
    """``replica.handle.remote(message, envelope)`` -> ``host.handle.remote(key, ...)``."""

    __slots__ = ("_key", "_method")

    def __init__(self, method: Any, key: str | None) -> None:
        self._method = method
        self._key = key

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return (
            self._method.remote(*args, **kwargs)
            if self._key is None
            else self._method.remote(self._key, *args, **kwargs)
        )


_KEYED = frozenset({"handle", "ping", "outcome", "deliver", "validate_event", "event_types"})
"""The host's methods that take the agent's key first."""


class PooledReplica:
    """One pooled agent, used where a dedicated replica's actor handle would be."""

    def __init__(self, host: Any, host_name: str, key: str) -> None:
        self.host = host
        self.host_name = host_name
        self.key = key

    def __repr__(self) -> str:
        return f"PooledReplica(agent:{self.key} on {self.host_name})"

    def __getattr__(self, name: str) -> _Bound:
        """The host's method ``name`` bound to this agent (``_KEYED``), called as the
        dedicated replica's method of that name would be."""
        if name not in _KEYED:
            raise AttributeError(name)
        return _Bound(getattr(self.host, name), self.key)

    @property
    def settle(self) -> _Bound:
        return _Bound(self.host.settle, None)  # the host's meter serves all its agents

    async def restart(self) -> dict[str, Any]:
        """Start this agent anew in its host (it wedged); its host-mates run on."""
        info: dict[str, Any] = await self.host.restart.remote(self.key)
        return info


def host_name(index: int) -> str:
    return f"{HOST_PREFIX}{index}"


def hosts(namespace: str) -> dict[str, Any]:
    """The running hosts of ``namespace``, by name (none if one vanished meanwhile: the
    caller asks again)."""
    with contextlib.suppress(ConfigurationError):
        return named_actors(namespace, HOST_PREFIX)
    return {}


def pooled_replicas(namespace: str, agent: str) -> dict[str, PooledReplica]:
    """The pooled replicas of ``agent`` on live hosts, by actor name ``agent:<name>:<i>``."""
    found = hosts(namespace)
    asked = {name: host.members.remote(agent) for name, host in found.items()}
    replicas: dict[str, PooledReplica] = {}
    for name, ref in asked.items():
        try:
            infos = ray.get(ref, timeout=_ASK_S)
        except Exception:  # a host that died or restarts: its agents are not reachable now
            continue
        for info in infos:
            key = agent_key(info["name"], info["replica"])
            replicas[f"agent:{key}"] = PooledReplica(found[name], name, key)
    return replicas


async def pooled_pings(namespace: str, group: str) -> list[tuple[PooledReplica, dict[str, Any]]]:
    """Each pooled replica of ``group`` on a live host, with what its ``ping`` says (for
    the supervisor, which awaits it)."""
    found = hosts(namespace)

    async def ask(name: str, host: Any) -> list[tuple[PooledReplica, dict[str, Any]]]:
        infos = await _members(host, group)
        return [(PooledReplica(host, name, agent_key(i["name"], i["replica"])), i) for i in infos]

    asked = await asyncio.gather(*(ask(n, h) for n, h in found.items()))
    return [pair for pairs in asked for pair in pairs]


async def _members(host: Any, group: str) -> list[dict[str, Any]]:
    """The agents of ``group`` on ``host`` (a host being restarted is waited for: its
    agents come back with it); a dead or silent one has none."""
    infos: list[dict[str, Any]] | None = await through_restart(lambda: host.members.remote(group))
    return infos or []


async def through_restart(call: Callable[[], Any]) -> Any:
    """What ``call()``'s ref answers; an actor that Ray is restarting (its process or node
    died) is asked again, up to ``_RESTART_S``, since it comes back; None from a dead actor
    or one silent past ``_ASK_S``."""
    for _ in range(int(_RESTART_S / _PAUSE_S)):
        try:
            return await asyncio.wait_for(call(), timeout=_ASK_S)
        except ActorUnavailableError:  # restarting
            await asyncio.sleep(_PAUSE_S)
        except Exception:  # dead, or silent past _ASK_S: not one to send work to
            return None
    return None


def stop_replicas(agent: str, replicas: Iterable[Any]) -> None:
    """Stop these replicas of ``agent`` for good: a dedicated one's actor is killed, the
    pooled ones are dropped by their hosts (which live on for their other agents)."""
    pooled: dict[str, Any] = {}
    for replica in replicas:
        if isinstance(replica, PooledReplica):
            pooled[replica.host_name] = replica.host
        else:
            ray.kill(replica, no_restart=True)
    refs = [host.remove.remote(agent) for host in pooled.values()]
    ray.wait(refs, num_returns=len(refs), timeout=_ASK_S)


class HostPool:
    """The driver's side of the hosts of one namespace: places new agents on them (by
    ``HostPolicy.place``), starting hosts as needed. Hosts started by another system in
    the namespace are joined, with the agents they hold. A new pool (a system starting)
    first deletes the stored membership of hosts Ray ended for good (``forget_dead_hosts``:
    a driver that died without ``shutdown`` leaves its hosts' entries behind)."""

    def __init__(self, namespace: str, spawned: list[Any]) -> None:
        forget_dead_hosts()
        self._namespace = namespace
        self._spawned = spawned
        self.policy: HostPolicy | None = None
        self._hosts: list[tuple[str, Any]] = []
        self._loads: list[int] = []

    def configure(self, policy: HostPolicy | None) -> HostPolicy:
        """The pool's policy: the first one given (default ``HostPolicy()``).

        Raises:
            ConfigurationError: another policy than the one the pool runs with.
        """
        if self.policy is None:
            self.policy = policy or HostPolicy()
            self._join()
        elif policy is not None and policy != self.policy:
            raise ConfigurationError(f"the agent hosts already run with {self.policy}")
        return self.policy

    def _join(self) -> None:
        found = hosts(self._namespace)
        for index in range(len(found)):  # hosts are numbered from 0, with no gap
            name = host_name(index)
            if name not in found:
                break
            members = ray.get(found[name].members.remote(), timeout=_ASK_S)
            self._hosts.append((name, found[name]))
            self._loads.append(len(members))

    def place(self, recipes: list[Recipe], policy: HostPolicy | None = None) -> list[Any]:
        """Start these agents on hosts; returns a ``PooledReplica`` for each, in order,
        once every one answers.

        Raises:
            ConfigurationError: another policy than the pool's.
        """
        chosen = self.configure(policy).place(self._loads, len(recipes))
        batches: dict[int, list[Recipe]] = {}
        for index, recipe in zip(chosen, recipes, strict=True):
            batches.setdefault(index, []).append(recipe)
        refs = []
        for index, batch in sorted(batches.items()):
            if index < len(self._hosts):
                refs.append(self._hosts[index][1].add.remote(batch))
            else:  # a new host starts with its first agents (its repr lists them)
                refs.append(self._start_host(batch).members.remote())
            self._loads[index] += len(batch)
        ray.get(refs)
        return [
            PooledReplica(self._hosts[i][1], self._hosts[i][0], agent_key(rt.name, rt.replica))
            for i, (_, rt) in zip(chosen, recipes, strict=True)
        ]

    def _start_host(self, first: list[Recipe]) -> Any:
        assert self.policy is not None
        name = host_name(len(self._hosts))
        actor = spawn(
            PoolHost, name, self._namespace, first,
            name=name, namespace=self._namespace, max_restarts=-1,
            max_concurrency=self.policy.calls_per_host,
            concurrency_groups={CONTROL_GROUP: _CONTROL_CALLS},
            scheduling_strategy="SPREAD" if self.policy.spread else None,
        )  # fmt: skip
        self._spawned.append(actor)
        self._hosts.append((name, actor))
        self._loads.append(0)
        return actor
