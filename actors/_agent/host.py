"""The agent actor: hosts one replica of an ``Agent`` and runs its typed handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from pydantic import BaseModel, ValidationError
from ray import cloudpickle

from runtime import Envelope, HandlerOutputError, UnknownHandlerError, span, trim_after_call

from .._contracts import ContractId, check_contract, contract_of
from .._events.subscribe import calling, deliver, subscriptions, types_of
from .._events.validate import Veto, run_validator, validators
from .._resource.briefing import briefing
from .._resource.constraints import carrying
from . import derived
from .agent import Agent, AgentRuntime, HandlerSpec, TaskContext, current_task, handlers
from .ledger import AttemptLedger

CONTROL_GROUP = "control"
"""The concurrency group of calls that must never queue behind handlers."""


def _recipe(agent_cls: type[Agent], runtime: AgentRuntime) -> bytes | None:
    """How to start this replica again, pickled; None if it cannot be (nothing in
    ``__init__`` may raise: the supervisor then cannot restart it, and says so)."""
    try:
        return bytes(cloudpickle.dumps((agent_cls, runtime)))  # type: ignore[no-untyped-call]
    except Exception:
        return None


SETTLE_GRACE_S = 0.5
"""How long after the last handler of a run ends its allowances are settled, unless a
handler of the same run starts meanwhile."""


class AgentHost:
    """One replica of an agent, as a Ray actor named ``agent:<name>:<replica>``, or as one
    of the many agents of a pooled host (``pooled.PoolHost``, ``pooled=True``).

    The agent instance is a plain object inside it, so that one process can host many
    agents without changing the ``Agent`` API. When the last handler running in a run
    ends, the model allowances it drew are settled in the background, ``SETTLE_GRACE_S``
    later unless another handler of the run started meanwhile; ``settle`` settles
    everything before the actor is stopped.
    """

    def __init__(
        self, agent_cls: type[Agent], runtime: AgentRuntime, *, pooled: bool = False
    ) -> None:
        # An agent process keeps glibc's dynamic mmap threshold (a fixed one costs every
        # call a mapped fiber stack) and trims after calls instead (runtime._memory).
        self._handlers = handlers(agent_cls)
        self._agent = agent_cls()
        self._agent._bind(runtime)
        self._runtime = runtime
        self._recipe = None if pooled else _recipe(agent_cls, runtime)
        self._ledger = AttemptLedger()
        self._running: dict[str, int] = {}
        self._subscriptions = subscriptions(agent_cls)
        self._calling = calling(self._agent)

    def __repr__(self) -> str:
        # The dashboard's Actors page shows this: the user's class, agent and replica. Ray
        # also calls it on an actor whose __init__ failed: nothing here may be missing.
        runtime = getattr(self, "_runtime", None)
        if runtime is None:
            return "Agent(starting)"
        cls = type(getattr(self, "_agent", None)).__name__ if hasattr(self, "_agent") else "Agent"
        return f"{cls}(agent {runtime.name!r} replica {runtime.replica})"

    async def handle(
        self, message: BaseModel, envelope: Envelope, *, marked: bool = False
    ) -> BaseModel | derived.Produced:
        """Run the handler that takes ``type(message)`` under ``envelope``; ``marked``
        (the supervisor's calls): the output comes as ``Produced``, with the provenance
        mark the run derived.

        Raises:
            UnknownHandlerError: no handler takes this message type.
            ContractMismatchError: the message, or the handler's output, speaks another
                version of the handler's contract.
            HandlerOutputError: the handler's return value is not its output model.
            InvalidArgumentError: the envelope's constraints are not a ``ConstraintSet``,
                or its briefing not (topic, version) pairs (a forged or malformed envelope).
        """
        self._ledger.begin(envelope.span_id)
        try:
            produced = await self._run(message, envelope)
        except BaseException as error:
            self._ledger.end(envelope.span_id, error=error)
            raise
        finally:
            trim_after_call()  # the fiber stacks of a burst of calls go back
        self._ledger.end(envelope.span_id, produced)  # the supervisor follows it marked
        return produced if marked else produced.output

    async def _run(self, message: BaseModel, envelope: Envelope) -> derived.Produced:
        spec = self._find(message)
        token = current_task.set(TaskContext(envelope))
        tracking = derived.begin(envelope)
        run = envelope.trace_id
        self._running[run] = self._running.get(run, 0) + 1
        try:
            with carrying(envelope.constraints), briefing(envelope.briefed), span(
                f"invoke_agent {self._runtime.name}", envelope=envelope,
                attributes=self._span_attributes(spec, envelope),
            ):  # fmt: skip
                output = await spec.fn(self._agent, message)
            mark, sources = derived.derived(), derived.sources()
        finally:
            derived.end(tracking)
            current_task.reset(token)
            self._ended(run)
        return derived.Produced(self._checked(spec, output), mark, sources)

    def _span_attributes(self, spec: HandlerSpec, envelope: Envelope) -> dict[str, str | int]:
        """The handler run's span, after the GenAI conventions (the run is the
        conversation)."""
        return {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": self._runtime.name,
            "gen_ai.conversation.id": envelope.trace_id,
            "agentcast.handler": spec.name,
            "agentcast.replica": self._runtime.replica,
            "agentcast.task_id": envelope.task_id,
        }

    async def deliver(self, batch: Any) -> list[Any]:
        """Run committed events (an ``EventBatch`` on the wire), in order, through this
        agent's ``@subscribe`` handlers, as consumer group ``<agent name>`` (the
        dispatcher's call; docs/events.md). Returns the ``DeliveryReport``'s ``wire()``.

        Raises:
            InvalidArgumentError: ``batch`` is not an event batch.
            UnknownEventTypeError: an event type this agent does not subscribe to.
        """
        where, group = f"agent {self._runtime.name}", self._runtime.name
        try:
            report = await deliver(self._subscriptions, where, group, batch, self._calling)
        finally:
            trim_after_call()
        return report.wire()

    async def settle(self) -> None:
        """Settle every model allowance and reservation of this replica now (it is about
        to be stopped).

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        from .._budget.meter import settle_all

        await settle_all(self._runtime.namespace)

    def _ended(self, run: str) -> None:
        left = self._running[run] - 1
        if left:
            self._running[run] = left
            return
        del self._running[run]
        asyncio.get_running_loop().call_later(SETTLE_GRACE_S, self._settle_if_quiet, run)

    def _settle_if_quiet(self, run: str) -> None:
        """Settle the run's allowances unless a handler of the run started meanwhile (its
        end will): back-to-back handlers of one run keep their allowance."""
        if run not in self._running:
            from .._budget.meter import release_run

            release_run(self._runtime.namespace, run, self._runtime.name)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def ping(self) -> dict[str, Any]:
        """Who this replica is (and its epoch and capacity, for the supervisor), and how
        to start it again (its class and runtime, pickled); answers once the actor is up,
        even while its handlers are busy."""
        return {
            "name": self._runtime.name,
            "replica": self._runtime.replica,
            "epoch": self._runtime.epoch,
            "capacity": type(self._agent).max_concurrency,
            "recipe": self._recipe,
        }

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def outcome(self, span_id: str) -> Any:
        """The output of the attempt ``span_id``, once it ended (for a supervisor that
        restarted while it ran).

        Raises:
            ConfigurationError: this replica does not know the attempt.
        """
        return await self._ledger.outcome(span_id)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def validate_event(
        self, event_type: str, payload: bytes, trace: Any = None, deadline_s: Any = None
    ) -> Veto | None:
        """This agent's ``@validate`` answer (a ``Veto``, or None) on an event a write would
        emit (a resource's call, before the write commits, with the write's trace id and
        span id, and the rule's deadline, past which the run is cancelled;
        docs/visibility.md).

        Raises:
            UnknownEventTypeError: no validator of ``event_type``.
            MalformedEventError: ``payload`` is not that event as JSON.
            InvalidArgumentError: ``trace`` is not a (trace id, span id) pair, or
                ``deadline_s`` is not a positive number of seconds.
            ValidatorFailedError: no verdict within ``deadline_s`` (``timeout``).
        """
        where = f"agent {self._runtime.name}"
        return await run_validator(self._agent, where, event_type, payload, trace, deadline_s)

    @ray.method(concurrency_group=CONTROL_GROUP)
    async def event_types(self) -> dict[str, list[str]]:
        """The event types this agent validates and subscribes to (for the
        visibility policy's check at start)."""
        cls = type(self._agent)
        return {"validate": sorted(validators(cls)), "subscribe": types_of(cls)}

    def _find(self, message: BaseModel) -> HandlerSpec:
        spec = self._handlers.get(type(message))
        if spec is not None:
            return spec
        by_name = [s for m, s in self._handlers.items() if m.__name__ == type(message).__name__]
        spoken = contract_of(message)  # another version of a handler's contract: refused
        by_contract = [s for m, s in self._handlers.items() if _named(contract_of(m), spoken)]
        found = by_contract or by_name
        if len(found) == 1:  # same model, defined in another module copy (e.g. __main__)
            where = f"agent {self._runtime.name}, handler {found[0].name}: input"
            check_contract(found[0].input, message, where)
            return found[0]
        raise UnknownHandlerError(self._runtime.name, type(message).__name__)

    def _checked(self, spec: HandlerSpec, output: Any) -> BaseModel:
        check_contract(spec.output, output, f"agent {self._runtime.name}, {spec.name}: output")
        try:
            if isinstance(output, spec.output):
                return spec.output.model_validate(output.model_dump())
            return spec.output.model_validate(output)
        except ValidationError as error:
            raise HandlerOutputError(self._runtime.name, spec.name, str(error)) from error


def _named(declared: ContractId | None, spoken: ContractId | None) -> bool:
    """Whether a handler declares the contract a message speaks, in any version."""
    return declared is not None and spoken is not None and declared.name == spoken.name
