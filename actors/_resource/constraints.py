"""The constraints a write carries, stamped by the handle and checked at the resource.

An agent's handler runs with its task's constraint set in a context variable (set by the
agent host with the task); the resource handle stamps its wire form (msgpack bytes, made
once per task) on every write, the way it stamps lease tokens. The resource checks each
write against the set before it applies it: a violation is ``ConstraintViolationError``
naming the constraint and the trace, logged as a rejection (reason ``constraint``). A
malformed set is refused as a malformed write. Parsed sets are cached by their bytes, so
a task's many writes pay for parsing once.

Constraints look at a write's top-level arguments by name (a positional argument is
named by its parameter); a field inside a pydantic argument is not looked at.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from policies import ConstraintSet, describe_constraint
from runtime import (
    ConstraintViolationError,
    InvalidArgumentError,
    Location,
    Message,
    decode,
    encode,
)

from .._budget import admission
from .batch import Refused
from .calls import WriteCall, decode_arguments
from .declare import Operation
from .freshness import DecisionCatchUp, stale_refusal

MAX_WIRE_BYTES = 16_384
"""Largest encoded constraint set a write may carry."""
_CACHED = 256

_PARAM_NAMES: dict[Any, tuple[str, ...]] = {}  # per write method, built on first use

CARRIED: ContextVar[bytes] = ContextVar("agentcast_constraints", default=b"")


def wire_of(constraints: ConstraintSet) -> bytes:
    """The bytes a write carries for ``constraints`` (empty for none)."""
    return encode(constraints.to_wire()) if constraints else b""


def carried() -> bytes:
    """The wire form of the constraints of the task running here (empty outside one)."""
    return CARRIED.get()


@contextmanager
def carrying(constraints: ConstraintSet) -> Iterator[None]:
    """Stamp ``constraints`` on every write made inside the block (a driver's writes, or
    an agent's task: the agent host enters it with the task's set).

    Raises:
        InvalidArgumentError: ``constraints`` is not a ``ConstraintSet``.
    """
    if not isinstance(constraints, ConstraintSet):
        raise InvalidArgumentError(
            f"constraints must be a ConstraintSet, not {type(constraints).__name__}"
        )
    token = CARRIED.set(wire_of(constraints))
    hidden = admission.hide()  # a call under other constraints is admitted afresh
    try:
        yield
    finally:
        admission.restore(hidden)
        CARRIED.reset(token)


MODEL_PREAMBLE = (
    "Constraints of this task, as data. They are enforced by the runtime: an action "
    "against one is refused. Carry them unchanged; do not restate them in prose.\n"
)


def for_model(messages: Sequence[Message]) -> list[Message]:
    """``messages`` with the running task's constraints first, as a JSON system message
    (for the model's benefit only: enforcement is at the resources); unchanged outside a
    task or without constraints."""
    wire = carried()
    if not wire:
        return list(messages)
    rendered = json.dumps(decode(wire), sort_keys=True, separators=(",", ":"))
    return [Message(role="system", content=MODEL_PREAMBLE + rendered), *messages]


class ConstraintChecks:
    """A resource's check of the constraints its writes carry."""

    def __init__(self, resource: str, root: Location | None = None) -> None:
        self._resource = resource
        self._catch_up = DecisionCatchUp(root)  # fresh-context writes (``freshness.py``)
        self._parsed: OrderedDict[bytes, ConstraintSet | str] = OrderedDict()

    def refusal(self, call: WriteCall, op: Operation) -> Refused | None:
        """Why ``call`` may not apply under the constraints or the briefing it carries
        (``freshness.py``), or None."""
        if (stale := stale_refusal(self._resource, call, op, self._catch_up)) is not None:
            return stale
        if not call.constraints:
            return None
        constraints = self._parse(call.constraints)
        if isinstance(constraints, str):
            invalid = InvalidArgumentError(f"{self._resource}: malformed write: {constraints}")
            return Refused(invalid, "malformed")
        arguments = _named(op, call.args, constraints.arguments())
        broken = constraints.violated_by(self._resource, call.op, arguments)
        if broken is None:
            return None
        violation = ConstraintViolationError(
            self._resource, call.op, describe_constraint(broken), call.trace_id
        )
        return Refused(violation, "constraint")

    def _parse(self, blob: bytes) -> ConstraintSet | str:
        found = self._parsed.get(blob)
        if found is None:
            found = _parsed(blob)
            self._parsed[blob] = found
            if len(self._parsed) > _CACHED:
                self._parsed.popitem(last=False)
        return found


def _parsed(blob: bytes) -> ConstraintSet | str:
    """The set ``blob`` encodes, or why it is malformed."""
    if len(blob) > MAX_WIRE_BYTES:
        return f"constraints over {MAX_WIRE_BYTES} bytes"
    try:
        return ConstraintSet.from_wire(decode(blob))
    except Exception as error:  # any undecodable or invalid form is a malformed write
        return f"constraints: {error}"[:300]


def _named(op: Operation, args: bytes, wanted: frozenset[str]) -> dict[str, Any]:
    """The write's arguments named in ``wanted``, by parameter name; none if the
    arguments do not decode (the write method's own check then refuses them)."""
    if not wanted:
        return {}
    try:
        positional, keywords = decode_arguments(args)
    except InvalidArgumentError:
        return {}
    names = _PARAM_NAMES.get(op.fn)
    if names is None:
        names = _PARAM_NAMES[op.fn] = tuple(op.signature.parameters)[2:]  # after self, state
    named = {n: v for n, v in zip(names, positional, strict=False) if n in wanted}
    named.update((k, v) for k, v in keywords.items() if k in wanted)
    return named
