"""The ``Resource`` base class users subclass, and its ``@write`` / ``@read`` methods."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from policies import Provenance
from runtime import ConfigurationError, InvalidArgumentError

from .._events.emit import emit

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["write", "read"]
_KIND_ATTR = "__agentcast_kind__"
_CACHE_ATTR = "__agentcast_operations__"
_ENTITY_ATTR = "__agentcast_entity__"
_REQUIRES_ATTR = "__agentcast_requires__"
_FRESH_ATTR = "__agentcast_fresh_context__"
# Strict: no bool for an int, no bytes for a str, no "1" for a number. Floats are finite
# unless an annotation says otherwise (``Annotated[float, AllowInfNan(True)]``): NaN
# compares unequal to itself and breaks every invariant.
_STRICT = ConfigDict(allow_inf_nan=False, strict=True)
_LAX = ConfigDict(allow_inf_nan=False)
# Plain data has no tuples or sets (they arrive as lists): only for these a lax retry.
_CONTAINER_ERRORS = frozenset({"tuple_type", "set_type", "frozen_set_type"})


EntityOf = str | Callable[..., Any]
"""Which entity a write touches: the name of one of its parameters, or a callable taking
the write's arguments (without ``self`` and ``state``) and returning the entity."""


@overload
def write(fn: F, /) -> F: ...
@overload
def write(
    *,
    entity: EntityOf | None = None,
    requires: Provenance | None = None,
    fresh_context: str | None = None,
) -> Callable[[F], F]: ...
def write(
    fn: F | None = None,
    /,
    *,
    entity: EntityOf | None = None,
    requires: Provenance | None = None,
    fresh_context: str | None = None,
) -> F | Callable[[F], F]:
    """Mark a method as a write: ``(self, state, *args) -> result``.

    The resource's one applier runs it with the live state; the state changes it makes
    are committed with a new version, or undone if it raises. ``@write(entity="draft_id")``
    also declares the entity it touches (a str or int): a write to an owned entity from
    anyone but its owner is refused with ``NotOwnerError`` (see docs/ownership.md).
    ``@write(requires=Provenance.VERIFIED)`` refuses, with ``ProvenanceError``, a write
    whose provenance (as the resource believes it) is weaker (see docs/integrity.md).
    ``@write(fresh_context="pricing")`` refuses, with ``StaleContextError``, a write whose
    task was briefed on an older decision of ``pricing`` than the decision log's newest
    (see docs/context.md).

    Raises:
        ConfigurationError: ``requires`` is not a ``Provenance``, or ``fresh_context`` not
            a decision topic (a non-empty str of at most 200 characters).
    """
    if requires is not None and not isinstance(requires, Provenance):
        raise ConfigurationError(f"requires must be a Provenance, not {requires!r}")
    if fresh_context is not None and not (
        isinstance(fresh_context, str) and 0 < len(fresh_context) <= 200
    ):
        raise ConfigurationError(f"fresh_context must name a topic, not {fresh_context!r}")

    def mark(method: F) -> F:
        setattr(method, _KIND_ATTR, "write")
        setattr(method, _ENTITY_ATTR, entity)
        setattr(method, _REQUIRES_ATTR, requires)
        setattr(method, _FRESH_ATTR, fresh_context)
        return method

    return mark if fn is None else mark(fn)


def read(fn: F | None = None, *, keys: EntityOf | None = None) -> Any:
    """Mark a method as a read: ``(self, state, *args) -> value``, given a read-only view.

    A read sees every write acknowledged before it was sent. ``keys`` names the
    top-level state keys it reads: a parameter whose value is a key (or a list of
    keys), or a callable of the arguments returning them; its result's provenance is
    then the weakest of those keys', else of the whole state.
    """

    def mark(method: F) -> F:
        setattr(method, _KIND_ATTR, "read")
        setattr(method, _ENTITY_ATTR, keys)
        return method

    return mark if fn is None else mark(fn)


class Resource:
    """A shared resource: state with ``@write`` and ``@read`` methods.

    The state is a dict of plain data (str or int keys). It lives in one Ray actor that
    applies writes one at a time and logs each durably before acknowledging it.

    Attributes:
        vouchers: writer name -> the strongest provenance the resource believes that
            writer claims (``policies.ProvenanceTrust``): a declared verifier or
            publisher. Default none: agents' writes are recorded as unverified.
        emits: the event types its writes may emit; default empty: any pydantic model.
    """

    vouchers: ClassVar[Mapping[str, Provenance]] = {}
    emits: ClassVar[tuple[type[BaseModel], ...]] = ()

    def initial_state(self) -> dict[Any, Any]:
        """The state before the first write. Default: an empty dict."""
        return {}

    def emit(self, event: BaseModel) -> None:
        """Emit ``event`` from the ``@write`` being applied. It is stored in the same
        transaction as the write's log record, so it exists if and only if the write
        commits; a write that raises emits nothing (see docs/events.md).

        Raises:
            EmitOutsideWriteError: called outside a ``@write`` being applied.
            MalformedEventError: not a pydantic model, unserializable, or too large.
            UnknownEventTypeError: ``emits`` is declared and does not name its type.
        """
        emit(event)


@dataclass(frozen=True, slots=True)
class Operation:
    """A ``@write`` or ``@read`` method and what its arguments should be."""

    name: str
    kind: Kind
    fn: Callable[..., Any]
    signature: inspect.Signature
    hints: dict[str, Any]  # resolved annotations of the parameters (where they resolve)
    positional: tuple[int, int] | None  # (min, max) count when only positional args are taken
    entity: EntityOf | None = None  # a write's entity (``write``), a read's keys (``read``)
    requires: Provenance | None = None  # for a write: the least provenance it accepts
    fresh_context: str | None = None  # for a write: the decision topic it must be fresh on

    def entity_of(self, args: list[Any], kwargs: dict[str, Any]) -> str | None:
        """The entity these arguments touch, or None if the write declares none.

        Raises:
            InvalidArgumentError: the arguments do not name an entity that is a str or int.
        """
        if self.entity is None:
            return None
        try:
            if callable(self.entity):
                value = self.entity(*args, **kwargs)
            elif self.entity in kwargs:
                value = kwargs[self.entity]
            elif (index := _param_index(self, self.entity)) < len(args):
                value = args[index]  # the common case, without a Signature.bind
            else:
                bound = self.signature.bind(None, None, *args, **kwargs)
                bound.apply_defaults()
                value = bound.arguments[self.entity]
        except Exception as error:
            raise InvalidArgumentError(
                f"{self.name}: no entity in the arguments: {error}"
            ) from None
        if type(value) not in (str, int):
            raise InvalidArgumentError(
                f"{self.name}: the entity must be a str or int, not {value!r}"
            )
        return str(value)

    def call(self, resource: Resource, state: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call the method with decoded plain-data arguments, each validated against its
        annotation (pydantic models rebuilt, NaN and infinities refused unless allowed).

        Raises:
            InvalidArgumentError: the arguments do not fit the signature or the annotations.
            Exception: whatever the method raises.
        """
        checks = _checks(self)
        # Fast path: plain positional arguments of the right count need no Signature.bind,
        # which is a quarter of the applier's time per write.
        if self.positional and not kwargs:
            low, high = self.positional
            if low <= len(args) + 2 <= high:
                names = checks.positional_names
                checked = [checks.check(self.name, n, v) for n, v in zip(names, args, strict=False)]
                return self.fn(resource, state, *checked)
        if not isinstance(kwargs, dict) or not all(type(k) is str for k in kwargs):
            raise InvalidArgumentError(f"{self.name}: keyword argument names must be str")
        try:
            bound = self.signature.bind(resource, state, *args, **kwargs)
        except TypeError as error:
            raise InvalidArgumentError(f"{self.name}: {error}") from error
        for name in list(bound.arguments)[2:]:
            bound.arguments[name] = checks.check(self.name, name, bound.arguments[name])
        return self.fn(*bound.args, **bound.kwargs)


_NOT_POSITIONAL = 1 << 30
_PARAM_INDEX: dict[tuple[Callable[..., Any], str], int] = {}  # built on first use, like _CHECKS


def _param_index(op: Operation, name: str) -> int:
    """Where parameter ``name`` is among the positional arguments (after self and state);
    ``_NOT_POSITIONAL`` when it cannot be passed by position."""
    found = _PARAM_INDEX.get((op.fn, name))
    if found is None:
        params = list(op.signature.parameters.values())[2:]
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        found = next(
            (i for i, p in enumerate(params) if p.name == name and p.kind in kinds),
            _NOT_POSITIONAL,
        )
        _PARAM_INDEX[(op.fn, name)] = found
    return found


@dataclass(frozen=True, slots=True)
class _Checks:
    """One pydantic ``TypeAdapter`` per annotated parameter of an operation."""

    positional_names: tuple[str, ...]
    adapters: dict[str, tuple[TypeAdapter[Any], TypeAdapter[Any]]]  # strict, lax

    def check(self, op: str, name: str, value: Any) -> Any:
        adapters = self.adapters.get(name)
        if adapters is None:
            return value
        try:
            return adapters[0].validate_python(value)
        except ValidationError as error:
            failure = error
        if {e["type"] for e in failure.errors()} <= _CONTAINER_ERRORS:
            try:
                return adapters[1].validate_python(value)
            except ValidationError as error:
                failure = error
        problem = "; ".join(e["msg"] for e in failure.errors(include_url=False))
        raise InvalidArgumentError(f"{op}: argument {name!r}: {problem}") from None


# Built where the operation runs, on first use: adapters are not sent between processes.
_CHECKS: dict[Callable[..., Any], _Checks] = {}


def _checks(op: Operation) -> _Checks:
    found = _CHECKS.get(op.fn)
    if found is None:
        params = list(op.signature.parameters.values())[2:]  # after self and state
        adapters = {
            p.name: (_adapter(op.hints[p.name], _STRICT), _adapter(op.hints[p.name], _LAX))
            for p in params
            if p.name in op.hints
        }
        found = _CHECKS[op.fn] = _Checks(tuple(p.name for p in params), adapters)
    return found


def _adapter(hint: Any, config: ConfigDict) -> TypeAdapter[Any]:
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return TypeAdapter(hint)  # a model has its own config (and comes as a dict)
    try:
        return TypeAdapter(hint, config=config)
    except Exception:  # a type that carries its own config (a TypedDict, a dataclass)
        return TypeAdapter(hint)


def operations(cls: type[Resource]) -> dict[str, Operation]:
    """Every ``@write`` and ``@read`` method of a resource class, by name.

    Raises:
        ConfigurationError: ``cls`` is not a ``Resource`` subclass.
    """
    if not (isinstance(cls, type) and issubclass(cls, Resource)):
        raise ConfigurationError(f"{cls!r} is not a subclass of Resource")
    # Cached on the class where it is first declared (the driver): a class defined in a
    # script travels to workers by value, where its annotations can no longer resolve.
    cached: dict[str, Operation] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is not None:
        return cached
    found: dict[str, Operation] = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        kind = getattr(fn, _KIND_ATTR, None)
        if kind is not None:
            signature = inspect.signature(fn)
            entity = getattr(fn, _ENTITY_ATTR, None)
            if isinstance(entity, str) and entity not in list(signature.parameters)[2:]:
                raise ConfigurationError(f"{cls.__name__}.{name}: no parameter {entity!r}")
            found[name] = Operation(
                name, kind, fn, signature, _param_hints(fn), _positional_range(signature),
                entity, getattr(fn, _REQUIRES_ATTR, None), getattr(fn, _FRESH_ATTR, None),
            )  # fmt: skip
    setattr(cls, _CACHE_ATTR, found)
    return found


def _param_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # unresolvable annotations: arguments stay plain data
        return {}
    variadic = {
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    return {
        name: hint
        for name, hint in hints.items()
        if name != "return" and name not in variadic and hint is not Any
    }


def _positional_range(signature: inspect.Signature) -> tuple[int, int] | None:
    """How many positional arguments (self and state included) the method takes, if it
    takes only plain positional parameters."""
    params = list(signature.parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return None
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return required, len(params)
