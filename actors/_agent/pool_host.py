"""The host of pooled agents: one Ray actor ``agent-host:<i>`` running many agents.

Each agent keeps what a dedicated replica has (``AgentHost``: its instance, handlers,
epoch, writer token and attempt ledger) plus a ``Mailbox`` of its own, so its calls run
at most ``max_concurrency`` at a time and a wedged one holds only its own slots. The host
is an async actor (one event loop for its agents' handlers, control calls on another):
a handler must not block the loop (a blocking call belongs in ``asyncio.to_thread`` or a
dedicated agent).

Ray restarts a host whose process died (``max_restarts=-1``); its agents come back with
it, from the membership the host keeps in Ray's key-value store (it lives as long as the
cluster, as the agents do), and their interrupted attempts fail as ``agent_died`` at the
supervisor, which drives them again. A killed agent is dropped from the membership first,
so a restart never brings it back.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import ray
from pydantic import BaseModel
from ray import cloudpickle

from runtime import AgentGoneError, Envelope

from .._events.validate import Veto
from .agent import Agent, AgentRuntime
from .derived import Produced
from .host import CONTROL_GROUP, AgentHost
from .mailbox import Mailbox, MailboxClosedError

HOST_PREFIX = "agent-host:"
"""Pooled hosts are the named actors ``agent-host:<i>`` of a namespace."""

KV_NAMESPACE = "agentcast_hosts"
"""Where hosts keep their membership in Ray's key-value store, as ``<namespace>:<actor id>``."""
_log = logging.getLogger(__name__)

Recipe = tuple[type[Agent], AgentRuntime]


def agent_key(name: str, replica: int) -> str:
    """An agent's key in its host: ``"<name>:<replica>"`` (its actor name without
    ``agent:``)."""
    return f"{name}:{replica}"


class PoolHost:
    """Many agents in one actor, each with its own mailbox, epoch, token and ledger.

    Args:
        name: the host's actor name (``agent-host:<i>``), for its repr and errors.
        namespace: the system's namespace.
        persist: keep the membership in Ray's key-value store, to come back with every
            agent after a crash (False: a plain object in a test).
    """

    def __init__(
        self, name: str, namespace: str, first: list[Recipe] | None = None, *, persist: bool = True
    ) -> None:
        self._name = name
        self._namespace = namespace
        self._cells: dict[str, AgentHost] = {}
        self._mailboxes: dict[str, Mailbox] = {}
        self._recipes: dict[str, Recipe] = {}
        self._kv_key = _kv_key(namespace) if persist else None
        # Started with its first agents, so that the dashboard's repr lists them; after a
        # crash, Ray passes them again, but the stored membership (kills applied) wins.
        if not self._restore() and first:
            self._begin(first)

    def __repr__(self) -> str:
        # The dashboard's Actors page shows this: the host and the agents it runs.
        return f"AgentHost({getattr(self, '_name', '?')}: {describe(getattr(self, '_cells', {}))})"

    def _restore(self) -> bool:
        """Bring back the agents of an earlier incarnation (after a crash), and say
        whether there was one; never raises: an exception in ``__init__`` would kill the
        host for good."""
        if self._kv_key is None:
            return False
        try:
            from ray.experimental import internal_kv

            stored = internal_kv._internal_kv_get(self._kv_key, namespace=KV_NAMESPACE)
            if stored is None:
                return False
            recipes: list[Recipe] = cloudpickle.loads(stored)
            self._begin(recipes, save=False)
        except Exception:
            _log.exception("host %s could not restore its agents", self._name)
        return True

    def _begin(self, recipes: list[Recipe], *, save: bool = True) -> list[dict[str, Any]]:
        infos = [self._start(cls, runtime) for cls, runtime in recipes]
        if recipes:
            _meter_as_host(self._name, recipes[0][1])
        if save:
            self._save()
        return infos

    def _save(self) -> None:
        if self._kv_key is None:
            return
        from ray.experimental import internal_kv

        recipes = list(self._recipes.values())  # one pickle: a shared class is stored once
        blob = cloudpickle.dumps(recipes)  # type: ignore[no-untyped-call]
        internal_kv._internal_kv_put(self._kv_key, blob, namespace=KV_NAMESPACE)

    def _start(self, cls: type[Agent], runtime: AgentRuntime) -> dict[str, Any]:
        key = agent_key(runtime.name, runtime.replica)
        old = self._mailboxes.get(key)
        if old is not None:
            old.close()
        self._cells[key] = AgentHost(cls, runtime, pooled=True)
        self._mailboxes[key] = Mailbox(cls.max_concurrency)
        self._recipes[key] = (cls, runtime)
        return self._info(key)

    def _info(self, key: str) -> dict[str, Any]:
        runtime = self._recipes[key][1]
        return {
            "name": runtime.name, "replica": runtime.replica, "epoch": runtime.epoch,
            "capacity": self._mailboxes[key].capacity, "recipe": None, "host": self._name,
        }  # fmt: skip

    async def add(self, recipes: list[Recipe]) -> list[dict[str, Any]]:
        """Start these agents here (an agent already here is started anew); returns what
        ``ping`` says of each."""
        return self._begin(recipes)

    async def handle(
        self, key: str, message: BaseModel, envelope: Envelope, *, marked: bool = False
    ) -> BaseModel | Produced:
        """Run the agent ``key``'s handler of ``type(message)``, once its mailbox has a
        free slot; ``marked`` as a dedicated replica's ``handle``.

        Raises:
            AgentGoneError: the agent is not (or no longer) on this host.
            UnknownHandlerError, HandlerOutputError, InvalidArgumentError: as a dedicated
                replica's ``handle``.
        """
        cell, mailbox = self._cells.get(key), self._mailboxes.get(key)
        if cell is None or mailbox is None:
            raise AgentGoneError(f"agent:{key}", self._name)
        try:
            return await mailbox.run(lambda: cell.handle(message, envelope, marked=marked))
        except MailboxClosedError:
            raise AgentGoneError(f"agent:{key}", self._name) from None

    async def deliver(self, key: str, batch: Any) -> list[Any]:
        """Run committed events through agent ``key``'s ``@subscribe`` handlers, in its
        mailbox (they are its work: a slot each delivery, in arrival order), as a
        dedicated replica's ``deliver`` (the dispatcher's call), with the same answer.

        Raises:
            AgentGoneError: the agent is not (or no longer) on this host.
            UnknownEventTypeError, InvalidArgumentError: as a dedicated replica's.
        """
        cell, mailbox = self._cell(key), self._mailboxes.get(key)
        if mailbox is None:
            raise AgentGoneError(f"agent:{key}", self._name)
        try:
            return await mailbox.run(lambda: cell.deliver(batch))
        except MailboxClosedError:
            raise AgentGoneError(f"agent:{key}", self._name) from None

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def validate_event(
        self, key: str, event_type: str, payload: bytes, trace: Any = None,
        deadline_s: Any = None,
    ) -> Veto | None:  # fmt: skip
        """Agent ``key``'s ``@validate`` answer, in the control group and outside its
        mailbox: a validator never waits behind the agent's own calls (one of which may be
        the write it validates). It is cancelled past ``deadline_s``: the host's control
        calls are shared by all its agents, and one agent's wedged validator must not
        hold them.

        Raises:
            AgentGoneError: the agent is not on this host.
            UnknownEventTypeError, MalformedEventError, InvalidArgumentError,
                ValidatorFailedError: as a dedicated replica's ``validate_event``.
        """
        validate: Any = self._cell(key).validate_event  # a plain method here, not a remote one
        verdict: Veto | None = await validate(event_type, payload, trace, deadline_s)
        return verdict

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def event_types(self, key: str) -> dict[str, list[str]]:
        """The event types agent ``key`` validates and subscribes to.

        Raises:
            AgentGoneError: the agent is not on this host.
        """
        event_types: Any = self._cell(key).event_types  # a plain method here
        found: dict[str, list[str]] = await event_types()
        return found

    def _cell(self, key: Any) -> AgentHost:
        cell = self._cells.get(key) if isinstance(key, str) else None
        if cell is None:
            raise AgentGoneError(f"agent:{str(key)[:200]}", self._name)
        return cell

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def ping(self, key: str) -> dict[str, Any]:
        """What a dedicated replica's ``ping`` says, and the host's name.

        Raises:
            AgentGoneError: the agent is not on this host.
        """
        if key not in self._recipes:
            raise AgentGoneError(f"agent:{key}", self._name)
        return self._info(key)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def members(self, agent: str | None = None) -> list[dict[str, Any]]:
        """What ``ping`` says of every agent here (of ``agent`` only, when given)."""
        keys = list(self._recipes)
        return [self._info(k) for k in keys if agent is None or k.rpartition(":")[0] == agent]

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def outcome(self, key: str, span_id: str) -> Any:
        """The output of attempt ``span_id`` of agent ``key``, once it ended.

        Raises:
            ConfigurationError: the agent does not know the attempt (or is not here).
        """
        cell = self._cells.get(key)
        if cell is None:
            from runtime import ConfigurationError

            raise ConfigurationError(f"no agent {key!r} on {self._name}")
        outcome: Any = cell.outcome  # a plain method here, not a remote one
        return await outcome(span_id)

    async def restart(self, key: str) -> dict[str, Any]:
        """Start agent ``key`` anew (it wedged): its running and waiting calls are
        cancelled, a new instance takes a new mailbox; its host-mates are not touched.

        Raises:
            AgentGoneError: the agent is not on this host.
        """
        if key not in self._recipes:
            raise AgentGoneError(f"agent:{key}", self._name)
        return self._start(*self._recipes[key])

    async def remove(self, agent: str) -> list[str]:
        """Drop every replica of ``agent`` (the kill switch): its calls are cancelled, its
        model allowances settled, and a restart of the host does not bring it back.
        Returns the keys dropped."""
        keys = [k for k in self._recipes if k.rpartition(":")[0] == agent]
        for key in keys:
            self._mailboxes.pop(key).close()
            del self._cells[key], self._recipes[key]
        if keys:
            self._save()
            _release_agent(self._namespace, agent)
        return keys

    async def settle(self) -> None:
        """Settle every model allowance of this host's agents now (it is about to stop).

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        from .._budget.meter import settle_all

        await settle_all(self._namespace)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def status(self) -> dict[str, Any]:
        """The host's process and its agents: calls running and waiting per agent."""
        mailboxes = list(self._mailboxes.items())
        return {
            "host": self._name, "pid": os.getpid(),
            "agents": {k: {"running": m.running, "waiting": m.waiting} for k, m in mailboxes},
        }  # fmt: skip


def describe(keys: Iterable[str]) -> str:
    """``"250 agents: orders 0-99, pricing 0-149"``: the agents of a host, in ranges."""
    by_name: dict[str, list[int]] = {}
    for key in keys:
        name, _, replica = key.rpartition(":")
        by_name.setdefault(name, []).append(int(replica))
    count = sum(len(r) for r in by_name.values())
    parts = [f"{name} {_ranges(sorted(r))}" for name, r in sorted(by_name.items())]
    return f"{count} agents" + (": " + ", ".join(parts) if parts else "")


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _kv_key(namespace: str) -> str | None:
    """This actor's key (its id, the same across Ray's restarts of it); None outside
    an actor."""
    actor_id = None
    with contextlib.suppress(Exception):  # no Ray here: a plain object
        actor_id = ray.get_runtime_context().get_actor_id()
    return None if actor_id is None else f"{namespace}:{actor_id}"


def forget_hosts(namespace: str) -> int:
    """Delete the membership of every host of ``namespace`` from Ray's key-value store,
    once its hosts are stopped for good (nothing is left to restore); returns how many
    entries went. Another namespace's entries stay (a key is ``<namespace>:<actor id>``)."""
    from ray.experimental import internal_kv

    gone: int = internal_kv._internal_kv_del(
        f"{namespace}:", del_by_prefix=True, namespace=KV_NAMESPACE
    )
    return gone


def forget_dead_hosts() -> list[str]:
    """Delete the membership of every host, of any namespace, that Ray's GCS says is dead
    for good (its driver died without ``System.shutdown``: Ray ended its hosts with it);
    returns the keys deleted. A host that runs, starts or restarts keeps its entry, so a
    system starting its first host meanwhile loses nothing (a host writes its entry
    itself, once the GCS knows it); so does a key that names no actor the GCS knows (not
    a host's entry, or one the GCS has forgotten: never deleted on a guess)."""
    from ray._private import state
    from ray.experimental import internal_kv

    gone = []
    for key in internal_kv._internal_kv_list("", namespace=KV_NAMESPACE):
        try:
            info = state.actors(actor_id=key.decode().rpartition(":")[2])
        except Exception:  # not an actor id: not a host's entry
            continue
        if info.get("State") == "DEAD":
            internal_kv._internal_kv_del(key, namespace=KV_NAMESPACE)
            gone.append(key.decode())
    return gone


def host_entries(namespace: str) -> dict[str, list[str]]:
    """The stored membership of ``namespace``'s hosts: each entry's key, and the agents
    (``<name>:<i>``) it would bring back after a crash."""
    from ray.experimental import internal_kv

    found: dict[str, list[str]] = {}
    for key in internal_kv._internal_kv_list(f"{namespace}:", namespace=KV_NAMESPACE):
        stored = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
        recipes: list[Recipe] = [] if stored is None else cloudpickle.loads(stored)
        found[key.decode()] = sorted(agent_key(rt.name, rt.replica) for _, rt in recipes)
    return found


def _meter_as_host(host: str, runtime: AgentRuntime) -> None:
    """Make the process's budget meter hold its grants as the host (a name no agent can
    have), so the kill switch's charge of one agent's grants is never another's."""
    from .._budget.meter import process_meter

    process_meter(runtime.namespace, f"@{host}", runtime.start_budget)


def _release_agent(namespace: str, agent: str) -> None:
    """Settle the killed agent's model allowances in the background (the host lives on)."""
    from .._budget.meter import release_agent

    release_agent(namespace, agent)
