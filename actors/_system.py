"""``System``: starts or joins Ray, places agents and resources, runs the kill switch."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from datetime import timedelta
from typing import Any

import ray

from policies import (
    Durability,
    HostPolicy,
    LockPolicy,
    ResourcePolicy,
    RetryBudget,
    SupervisorRetention,
    TokenRetention,
    WriteAuthority,
)
from runtime import (
    Clock,
    ConfigurationError,
    Location,
    StorageError,
    SystemClock,
    check_name,
    lookup,
    new_trace_id,
    resource_actor_name,
    spawn,
    start_local_ray,
    storage_root,
)

from ._agent.agent import Agent, handlers
from ._agent.group import AgentGroup, live_replicas
from ._agent.pool_host import forget_hosts
from ._agent.pooled import HostPool
from ._agent.registry import AgentRegistry
from ._agent.start import AgentSetting, Placement, start_replicas
from ._budget.client import BudgetHandle, BudgetSpec, budget_policy, ensure_budget, stop_budget
from ._conflicts.face import Conflicts
from ._decisions.face import decisions_of
from ._events.face import register_subscriber
from ._kill import kill_agent
from ._locks.client import LocksHandle
from ._locks.lease import Lease
from ._locks.system import SystemLocks
from ._reconnect import Reconnect
from ._resource.declare import Resource, operations
from ._resource.handle import ResourceHandle, WriterIdentity
from ._resource.host import ResourceHost
from ._resource.owners import Ownership, OwnershipCalls
from ._resource.store import ResourceLog
from ._storage_claims import claim, release
from ._supervisor.handle import Supervisor
from ._supervisor.start import start_supervisor

DEFAULT_NAMESPACE = "agentcast"


class _DriverKeys:
    """Keys of the driver's writes: unique per call, under the system's trace id."""

    def __init__(self, trace_id: str) -> None:
        self._trace_id = trace_id

    def next_key(self) -> tuple[str, str]:
        return self._trace_id, f"system:{uuid.uuid4().hex}"


class System:
    """A running agentcast system: agents and resources as named actors on Ray.

    Use ``System.start()`` for the embedded default (a local Ray and SQLite under
    ``./.agentcast``) or ``System.connect(address)`` to join a running cluster.
    """

    def __init__(
        self,
        *,
        root: Location,
        namespace: str,
        owns_ray: bool,
        budgets: BudgetSpec = None,
        retry_budget: RetryBudget | None = None,
        tokens: TokenRetention | None = None,
    ) -> None:
        claim(root)
        self._running = True
        self.root = root
        self.namespace = check_name("namespace", namespace)
        self.trace_id = new_trace_id()
        self._owns_ray = owns_ray
        self._spawned: list[Any] = []
        self._agents: set[str] = set()
        self._registry = AgentRegistry(root, retention=tokens)
        self._driver_identity = WriterIdentity("system", 0, self._registry.issue_token("system", 0))
        self._budget_policy = budget_policy(budgets)
        self.retry_budget = retry_budget
        self._budget: BudgetHandle | None = None
        self._budget_from_agents = False
        self._supervisor: Supervisor | None = None
        self._locks = SystemLocks(str(root), self.namespace, self._spawned)
        self._hosts = HostPool(self.namespace, self._spawned)

    @classmethod
    def start(
        cls,
        storage: str | os.PathLike[str] | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        num_cpus: int | None = None,
        dashboard: bool = True,
        budgets: BudgetSpec = None,
        retry_budget: RetryBudget | None = None,
        tokens: TokenRetention | None = None,
    ) -> System:
        """Start the embedded default: a local Ray (``address="local"``) and SQLite storage.

        Inside ``ray job submit`` (``RAY_ADDRESS`` is set) it joins the job's cluster
        instead. If this process is already connected to Ray, that cluster is used and
        left running. ``budgets`` (a ``BudgetPolicy``, or caps for a default one) is the
        policy of the budget actor, started on first use of ``system.budget`` or of an
        agent with a model. ``retry_budget`` is the retry budget of every run of the
        supervisor this system starts (a run is a trace: all of this system's driver
        submissions, or one agent task's subtasks), winning over the budget actor's;
        ``submit(run=..., retry_budget=...)`` sets one run's. ``tokens`` says how long
        revoked writer tokens are kept (default ``TokenRetention()``).
        """
        if not ray.is_initialized() and os.environ.get("RAY_ADDRESS"):
            return cls.connect(
                os.environ["RAY_ADDRESS"], storage=storage, namespace=namespace, budgets=budgets,
                retry_budget=retry_budget, tokens=tokens,
            )  # fmt: skip
        owns = not ray.is_initialized()
        if owns:
            start_local_ray(namespace, num_cpus, dashboard)
        return cls(
            root=storage_root(storage), namespace=namespace, owns_ray=owns, budgets=budgets,
            retry_budget=retry_budget, tokens=tokens,
        )  # fmt: skip

    @classmethod
    def connect(
        cls,
        address: str = "auto",
        *,
        storage: str | os.PathLike[str] | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        budgets: BudgetSpec = None,
        retry_budget: RetryBudget | None = None,
        tokens: TokenRetention | None = None,
    ) -> System:
        """Join a running Ray cluster (e.g. inside ``ray job submit``); arguments as ``start``."""
        owns = not ray.is_initialized()
        if owns:
            ray.init(address=address, namespace=namespace, logging_level=logging.WARNING)
        return cls(
            root=storage_root(storage), namespace=namespace, owns_ray=owns, budgets=budgets,
            retry_budget=retry_budget, tokens=tokens,
        )  # fmt: skip

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    @property
    def dashboard_url(self) -> str | None:
        """The Ray dashboard's address, if it runs."""
        from ray._private.worker import get_dashboard_url

        url = get_dashboard_url()  # type: ignore[no-untyped-call]
        return f"http://{url}" if url else None

    def watch_commands(self) -> list[str]:
        """The commands that show this system from another terminal while it runs: status,
        the trace of its driver's work, a resource's log (docs/observability.md)."""
        address = ray.get_runtime_context().gcs_address
        return [
            f"agentcast status --address {address} --namespace {self.namespace}",
            f"agentcast trace {self.trace_id} --storage {self.root}",
            f"agentcast log <resource> --storage {self.root}",
        ]

    def resource(
        self,
        cls: type[Resource],
        *,
        name: str,
        writers: list[str] | None = None,
        policy: ResourcePolicy | None = None,
    ) -> ResourceHandle:
        """Start the resource ``name`` (or join it if running) and return a driver handle.

        Args:
            cls: the ``Resource`` subclass.
            name: the resource's name; its actor is ``resource:<name>``.
            writers: agent names allowed to write; None admits all. The driver writes as
                ``"system"``.
            policy: limits, batching, snapshots and durability.

        Raises:
            ConfigurationError: a bad name or class.
        """
        check_name("resource", name)
        operations(cls)
        policy = policy or ResourcePolicy()
        actor_name = resource_actor_name(name)
        try:
            lookup(actor_name, self.namespace)
        except ConfigurationError:
            actor = spawn(
                ResourceHost, cls, name, str(self.root), policy, WriteAuthority.of(writers),
                self.namespace,
                name=actor_name, namespace=self.namespace, storage=str(self.root),
            )  # fmt: skip
            self._spawned.append(actor)
        return self.get_resource(name)

    def get_resource(self, name: str) -> ResourceHandle:
        """A driver handle (writer ``"system"``) to the running resource ``name``.

        Raises:
            ConfigurationError: no such resource.
        """
        actor = lookup(resource_actor_name(name), self.namespace)
        handle = ResourceHandle(actor, name, self._driver_identity, _DriverKeys(self.trace_id))
        handle.operations()  # the resource has recovered and answers before this returns
        return handle

    decisions = property(decisions_of, doc="The decision log, started on first use.")

    @property
    def ownership(self) -> Ownership:
        """Owners of entities ``"<resource>:<entity>"``: ``own``, ``transfer``,
        ``release``, ``owner``, ``history`` (docs/ownership.md)."""
        calls = OwnershipCalls(
            lambda name: lookup(resource_actor_name(name), self.namespace),
            self._driver_identity, lambda: (self.trace_id, ""), Reconnect(), SystemClock(),
        )  # fmt: skip
        return Ownership(calls)

    @property
    def conflicts(self) -> Conflicts:
        """Conflict records and the share settled per ladder level (docs/ownership.md)."""
        return Conflicts(self.namespace)

    def log(self, name: str) -> ResourceLog:
        """The durable log of resource ``name``, opened from this machine's storage.

        Opening it does not bump the incarnation; use it to read records and rejections.

        Raises:
            ConfigurationError: no resource ``name`` has a log in this storage (no file
                is created).
        """
        path = self.root / "resources" / f"{check_name('resource', name)}.sqlite"
        if not path.exists():
            raise ConfigurationError(f"no resource {name!r} in {self.root}")
        return ResourceLog(self.root, name)

    def agent(
        self, cls: type[Agent], *, name: str, replicas: int = 1, model: Any = None,
        placement: Placement = "dedicated", hosts: HostPolicy | None = None,
    ) -> AgentGroup:  # fmt: skip
        """Start ``replicas`` agents ``agent:<name>:<i>`` running ``cls``: an actor each
        (``placement="dedicated"``) or many to a host actor (``"pooled"``, spread by
        ``hosts``, the pool's policy: default ``HostPolicy()``); see docs/agents.md.

        Raises:
            ConfigurationError: a bad name, class, handler signature or placement.
        """
        check_name("agent", name)
        handlers(cls)
        if model is not None:
            self.budget  # noqa: B018 -- metered models need the budget actor running
        register_subscriber(cls, name, str(self.root), self.namespace, self._spawned)
        setting = AgentSetting(
            name=name, namespace=self.namespace, storage=str(self.root), model=model,
            budget_policy=self._budget_policy,
        )  # fmt: skip
        actors = start_replicas(
            cls, setting, replicas=replicas, placement=placement, registry=self._registry,
            pool=self._hosts, hosts=hosts, spawned=self._spawned,
        )  # fmt: skip
        self._agents.add(name)
        return AgentGroup(name, actors, self.trace_id)

    @property
    def budget(self) -> BudgetHandle:
        """The budget actor ``budget`` (started on first use, with the ``budgets`` given
        to ``start``): caps, retry budgets, breakers. See the README, "Budgets"."""
        if self._budget is None:
            actor, started = ensure_budget(str(self.root), self.namespace, self._budget_policy)
            if started:
                self._spawned.append(actor)
            # Running before this system started any agent: someone else's, left running.
            self._budget_from_agents = not started and bool(self._agents)
            self._budget = BudgetHandle(actor)
        return self._budget

    @property
    def supervisor(self) -> Supervisor:
        """The supervisor actor ``supervisor`` (started on first use): every subtask held
        to a deadline and an output schema. See the README, "Supervisor"."""
        return self.supervise()

    def supervise(
        self,
        *,
        clock: Clock | None = None,
        durability: Durability = Durability.FULL,
        retention: SupervisorRetention | None = None,
    ) -> Supervisor:
        """The supervisor, started on ``clock`` if this call starts it (a ``FakeClock``
        for tests: ``supervisor.actor.advance_clock.remote(s)`` moves it), storing
        outcomes with ``durability`` (default ``FULL``: an fsync per group commit;
        ``PROCESS`` survives process deaths only, and commits faster) and keeping them
        for ``retention`` (default ``SupervisorRetention()``)."""
        if self._supervisor is None:
            self._supervisor, started = start_supervisor(
                str(self.root), self.namespace, self.trace_id,
                clock=clock, durability=durability, retry_budget=self.retry_budget,
                retention=retention,
            )  # fmt: skip
            if started is not None:
                self._spawned.append(started)
        return self._supervisor

    @property
    def locks(self) -> LocksHandle:
        """The locks actor ``locks`` (see ``use_locks``): status, alerts, events."""
        return self._locks.handle()

    def use_locks(
        self, policy: LockPolicy | None = None, *, clock: Clock | None = None
    ) -> LocksHandle:
        """The locks actor, started with ``policy`` (default ``LockPolicy()``) on ``clock``
        (a ``FakeClock`` for tests) if this call starts it; call it before agents lease."""
        return self._locks.handle(policy, clock)

    def lease(
        self, *keys: str, ttl: timedelta | None = None, expected: timedelta | None = None,
        shared: bool = False, timeout: timedelta | None = None,
    ) -> Lease:  # fmt: skip
        """``with system.lease("inventory:A", ttl=...) as lease:``: the keys, in the global
        order, held and renewed until the block ends; writes inside carry the lease."""
        return self._locks.lease(keys, ttl=ttl, expected=expected, shared=shared, timeout=timeout)

    def kill(self, agent: str) -> dict[str, Any]:
        """The kill switch: bump ``agent``'s epoch, fence it on every resource, fail its
        attempts with reason killed (rerouted or escalated by their plans), kill its
        replicas; audited. From its return, no write of the agent's commits anywhere."""
        return kill_agent(
            agent, namespace=self.namespace, registry=self._registry,
            resource=self.get_resource, supervisor=self.supervisor, budget=lambda: self.budget,
        )  # fmt: skip

    def shutdown(self) -> None:
        """Stop every actor this system started, and Ray if it started it. Agents settle
        their model allowances first (for at most ``_SETTLE_ON_SHUTDOWN_S``; what is not
        settled by then is charged in full when it expires)."""
        replicas = live_replicas(self.namespace, self._agents)
        if replicas:
            ray.wait(
                [a.settle.remote() for a in replicas],
                num_returns=len(replicas), timeout=_SETTLE_ON_SHUTDOWN_S,
            )  # fmt: skip
            if self._budget is None or self._budget_from_agents:
                # An agent started it (detached, so that it did not die with that agent).
                stop_budget(self.namespace)
            self._locks.stop_if_agents_started_it()
        for actor in replicas:  # replicas the supervisor restarted are detached
            ray.kill(actor, no_restart=True)
        forget_hosts(self.namespace)  # every host of the namespace is stopped: its entries go
        self._agents.clear()
        for actor in self._spawned:
            ray.kill(actor, no_restart=True)
        self._spawned.clear()
        with contextlib.suppress(StorageError):  # it expires with the registry's retention
            self._registry.revoke_token(self._driver_identity.token)
        self._registry.close()
        if self._running:
            self._running = False
            release(self.root)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


_SETTLE_ON_SHUTDOWN_S = 5.0
