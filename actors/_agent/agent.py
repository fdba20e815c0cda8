"""The ``Agent`` base class users subclass, and its typed ``@handler`` methods."""

from __future__ import annotations

import inspect
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from runtime import ConfigurationError, Envelope

from .._decisions.face import agent_decisions
from .._reconnect import Reconnect
from .._resource.handle import AsyncResourceHandle, WriterIdentity
from .._resource.owners import OwnershipCalls, run_owned
from .._resource.ownership import OwnershipRecord
from . import derived
from .task import TaskContext as TaskContext
from .task import current_run as current_run
from .task import current_task as current_task

F = TypeVar("F", bound=Callable[..., Any])
_HANDLER_ATTR = "__agentcast_handler__"
_CACHE_ATTR = "__agentcast_handlers__"


def handler(fn: F) -> F:
    """Mark ``async def name(self, message: InModel) -> OutModel`` as a typed handler.

    The agent receives messages of ``InModel`` on it; the output is checked against
    ``OutModel`` before it leaves the agent.
    """
    setattr(fn, _HANDLER_ATTR, True)
    return fn


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler and its input and output models."""

    name: str
    fn: Callable[..., Any]
    input: type[BaseModel]
    output: type[BaseModel]


def handlers(cls: type[Agent]) -> dict[type[BaseModel], HandlerSpec]:
    """An agent class's handlers, by input model.

    Raises:
        ConfigurationError: a handler that is not ``async``, does not take exactly one
            pydantic model, does not return one, or shares its input model with another.
    """
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise ConfigurationError(f"{cls!r} is not a subclass of Agent")
    # Cached on the class in the driver: see actors._resource.declare.operations.
    cached: dict[type[BaseModel], HandlerSpec] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is not None:
        return cached
    found: dict[type[BaseModel], HandlerSpec] = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if getattr(fn, _HANDLER_ATTR, False):
            spec = _spec(cls, name, fn)
            if spec.input in found:
                raise ConfigurationError(
                    f"{cls.__name__}: {name} and {found[spec.input].name} both take "
                    f"{spec.input.__name__}"
                )
            found[spec.input] = spec
    setattr(cls, _CACHE_ATTR, found)
    return found


def _spec(cls: type, name: str, fn: Callable[..., Any]) -> HandlerSpec:
    where = f"{cls.__name__}.{name}"
    if not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(f"{where} must be 'async def'")
    hints = typing.get_type_hints(fn)
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    model_in = hints.get(params[0]) if len(params) == 1 else None
    model_out = hints.get("return")
    for what, model in (("input", model_in), ("output", model_out)):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"{where}: the {what} must be one pydantic model")
    assert model_in is not None and model_out is not None
    return HandlerSpec(name, fn, model_in, model_out)


class _TaskKeys:
    """Idempotency keys of an agent's writes: ``<task id>:<call index>``.

    A re-run of the same task (a retried attempt) derives the same keys in the same order,
    so a write it repeats is applied once.
    """

    def __init__(self, agent: str) -> None:
        self._agent = agent

    def next_key(self) -> tuple[str, str]:
        task = current_task.get()
        if task is None:  # outside a handler: no task to derive from
            return "0" * 32, f"{self._agent}:{uuid.uuid4().hex}"
        return task.envelope.trace_id, f"{task.envelope.task_id}:{task.next_call()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRuntime:
    """What the runtime gives an agent instance: who it is and where things are."""

    name: str
    replica: int
    epoch: int
    namespace: str
    model: Any = None
    reconnect: Reconnect = field(default_factory=Reconnect)
    storage: str = ""
    budget_policy: Any = None
    token: str = field(default="", repr=False)  # this incarnation's writer capability

    def start_budget(self) -> Any:
        """Start the budget actor (detached: it outlives this agent), or join it, with the
        system's storage and budget policy; returns its handle.

        Raises:
            ConfigurationError: the agent was started without a system's storage.
        """
        from .._budget.client import budget_policy, ensure_budget

        if not self.storage:
            raise ConfigurationError(f"agent {self.name!r} has no storage to start the budget")
        policy = budget_policy(self.budget_policy)
        return ensure_budget(self.storage, self.namespace, policy, detached=True)[0]


class Agent:
    """Base class of agents. Subclass it and mark async methods with ``@handler``.

    Inside a handler, ``self.resource(name)`` reaches a shared resource as this agent
    (identity, epoch, trace id and idempotency keys are stamped by the runtime) and
    ``self.model`` is the agent's model client.

    Attributes:
        max_concurrency: tasks one replica runs at once. Default 1.
        verifier: the agent checks claims against primary sources and may ``vouch``.
            Default False.
    """

    max_concurrency: ClassVar[int] = 1
    verifier: ClassVar[bool] = False
    _runtime: AgentRuntime
    _handles: dict[str, AsyncResourceHandle]
    _locks: Any = None

    def _bind(self, runtime: AgentRuntime) -> None:
        self._runtime = runtime
        self._handles = {}
        self._locks = None

    @property
    def name(self) -> str:
        """The agent's name (its kind, shared by its replicas)."""
        return self._runtime.name

    @property
    def replica(self) -> int:
        """Which replica this is, from 0."""
        return self._runtime.replica

    @property
    def namespace(self) -> str:
        """The Ray namespace of this system's actors, for looking up plain Ray actors."""
        return self._runtime.namespace

    @property
    def model(self) -> Any:
        """The agent's model client, metered by the budget actor: every call reserves its
        upper bound and settles its usage, and may raise ``BudgetExceededError`` or
        ``CircuitOpenError`` without calling (see ``actors._budget.metered_model``)."""
        if self._runtime.model is None:
            raise ConfigurationError(f"agent {self.name!r} was started without a model")
        from .._budget.metered_model import metered_model
        from .model_calls import recorded_model  # each call stored for `agentcast trace`

        rt = self._runtime
        metered = metered_model(
            rt.model, namespace=rt.namespace, agent=rt.name, replica=rt.replica,
            run=current_run, start=rt.start_budget,
        )  # fmt: skip
        return recorded_model(metered, rt.storage, rt.name, rt.replica)

    @property
    def budget(self) -> Any:
        """The run's retry budget and the breakers of tools (an ``AgentBudget``); the
        budget actor is started on first use if it is not running."""
        from .._budget.client import AgentBudget
        from .._budget.meter import process_meter

        rt = self._runtime
        meter = process_meter(rt.namespace, f"{rt.name}:{rt.replica}", rt.start_budget)
        return AgentBudget(meter.link, rt.name, current_run, holder=meter.holder)

    @property
    def task(self) -> Envelope:
        """The envelope of the task being handled.

        Raises:
            ConfigurationError: called outside a handler.
        """
        task = current_task.get()
        if task is None:
            raise ConfigurationError("there is no current task outside a handler")
        return task.envelope

    def vouch(self, *sources: str) -> None:
        """Mark what this task makes from now on VERIFIED: this verifier has checked it
        against the primary ``sources`` (ids, e.g. ``"resource:stats"``). Resources
        believe it only from writers they declare among their ``vouchers``.

        Raises:
            ConfigurationError: the class does not declare ``verifier = True``, or
                called outside a handler.
        """
        if not type(self).verifier:
            raise ConfigurationError(f"{type(self).__name__} is not a verifier: it cannot vouch")
        if not derived.vouch(sources):
            raise ConfigurationError("there is no current task outside a handler")

    async def heartbeat(self) -> None:
        """Tell the supervisor that the current task is alive: a supervised subtask with a
        ``Deadlines.heartbeat`` fails once it stays silent longer. Sends without waiting;
        does nothing outside a handler or without a supervisor."""
        from .._supervisor.handle import send_heartbeat

        task = current_task.get()
        if task is not None:
            send_heartbeat(self._runtime.namespace, task.envelope)

    @property
    def supervisor(self) -> Any:
        """The supervisor (an ``AsyncSupervisor``): ``self.supervisor.submit(...)``
        delegates a subtask, a child of the current task under the same trace id."""
        from .._supervisor.delegate import AsyncSupervisor
        from .._supervisor.handle import supervisor_actor

        task = current_task.get()
        parent = None if task is None else task.envelope
        return AsyncSupervisor(supervisor_actor(self._runtime.namespace), self.name, parent)

    def lease(
        self,
        *keys: str,
        ttl: timedelta | None = None,
        expected: timedelta | None = None,
        shared: bool = False,
        timeout: timedelta | None = None,
    ) -> Any:
        """``async with self.lease("inventory:A", "pricing:A", ttl=..., expected=...) as
        lease:``: an ``AsyncLease`` on ``keys``, taken in the global order whatever order
        they are named in, renewed by the runtime while the block runs, released when it
        ends; every resource write inside carries its fencing tokens.

        Args:
            keys: the keys (``"inventory:sku-42"``).
            ttl: time to live between renewals. Default ``LockPolicy.default_ttl``.
            expected: the hold time this agent expects; a wait for these keys longer
                than twice it raises the ``lock_wait_exceeded`` alert. Default ``ttl``.
            shared: a shared (reader) lease: advisory, held alongside other readers.
            timeout: how long to wait for the keys. Default ``LockPolicy.default_wait``.
        """
        from .._locks.lease import AsyncLease, lease_request

        task = current_task.get()
        owner = f"{self.name}:{self.replica}:{'-' if task is None else task.envelope.task_id}"
        request = lease_request(
            keys, owner=owner, agent=self.name, ttl=ttl, expected=expected, shared=shared,
            timeout=timeout,
        )  # fmt: skip
        return AsyncLease(self._locks_calls(), request)

    @property
    def locks(self) -> Any:
        """The locks actor (an ``AsyncLocksHandle``): ``await self.locks.status()``."""
        from .._locks.client import AsyncLocksHandle

        return AsyncLocksHandle(self._locks_calls())

    def _locks_calls(self) -> Any:
        """The calls to the locks actor, started (detached) on first use if not running."""
        from .._locks.client import LocksCalls, ensure_locks

        if getattr(self, "_locks", None) is None:
            rt = self._runtime
            if not rt.storage:
                raise ConfigurationError(f"agent {self.name!r} has no storage for the locks")
            start = partial(ensure_locks, rt.storage, rt.namespace, detached=True)
            self._locks = LocksCalls(lambda: start()[0], rt.reconnect)
        return self._locks

    decisions = property(agent_decisions, doc="The decision log (docs/context.md).")

    def resource(self, name: str) -> AsyncResourceHandle:
        """The shared resource ``name``, reached as this agent."""
        from runtime import lookup, resource_actor_name

        if name not in self._handles:
            actor = lookup(resource_actor_name(name), self._runtime.namespace)
            runtime = self._runtime
            identity = WriterIdentity(runtime.name, runtime.epoch, runtime.token)
            self._handles[name] = AsyncResourceHandle(
                actor, name, identity, _TaskKeys(self.name), self._runtime.reconnect
            )
        return self._handles[name]

    async def own(self, entity: str) -> OwnershipRecord:
        """Claim the unowned entity ``"<resource>:<entity>"`` for this agent: from then on
        only its replicas write to it (docs/ownership.md).

        Raises:
            NotOwnerError: another agent owns it.
            UnauthorizedWriterError: this agent is not a declared writer of the resource.
            InvalidArgumentError: a bad address. ConfigurationError: no such resource.
        """
        return await self._owning("own", entity, self.name, "")

    async def transfer(self, entity: str, *, to: str, handoff: str = "") -> OwnershipRecord:
        """Hand an entity this agent owns to agent ``to``, recording ``handoff`` (what is
        handed over) and the current task (join it with the supervisor's handoffs).

        Raises:
            NotOwnerError: this agent does not own it.
            UnauthorizedWriterError, InvalidArgumentError, ConfigurationError: as ``own``.
        """
        return await self._owning("transfer", entity, to, handoff)

    async def release(self, entity: str) -> OwnershipRecord:
        """Leave an entity this agent owns without an owner.

        Raises:
            NotOwnerError: this agent does not own it.
            InvalidArgumentError, ConfigurationError: as ``own``.
        """
        return await self._owning("release", entity, "", "")

    async def owner(self, entity: str) -> str | None:
        """The owner of ``"<resource>:<entity>"``, or None.

        Raises:
            InvalidArgumentError, ConfigurationError: as ``own``.
        """
        owner: str | None = await run_owned(self._ownership().owner(entity))
        return owner

    async def _owning(self, action: str, entity: str, to: str, handoff: str) -> OwnershipRecord:
        record: OwnershipRecord = await run_owned(
            self._ownership().change(action, entity, to, handoff)
        )
        return record

    def _ownership(self) -> OwnershipCalls:
        from runtime import SystemClock, lookup, resource_actor_name

        rt = self._runtime

        def context() -> tuple[str, str]:
            task = current_task.get()
            return (
                ("0" * 32, "") if task is None else (task.envelope.trace_id, task.envelope.task_id)
            )

        return OwnershipCalls(
            lambda name: lookup(resource_actor_name(name), rt.namespace),
            WriterIdentity(rt.name, rt.epoch, rt.token), context, rt.reconnect, SystemClock(),
        )  # fmt: skip
