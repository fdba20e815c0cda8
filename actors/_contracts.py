"""Contracts: versioned definitions of shared concepts, as pydantic models registered by
name and version (``@contract("available_item", version=2)``).

A message speaks the contract of its model class. Where a receiver declares a contract
(a handler's input or output model, a supervisor's ``expect``, an event type), a message
of another class must speak the same name and version, or it is refused at the boundary
with ``ContractMismatchError``: it is never coerced field by field into the receiver's
model. A message of the receiver's own class speaks its contract; a plain dict names
none and is validated as the receiver's model. The contract is a class's own: a subclass
of a contracted model speaks nothing until it is registered itself.

``check_contract`` is the one check, for every boundary (events included);
``check_contracts`` runs the consistency checks over a registry.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from runtime import ConfigurationError, ContractMismatchError, check_name

M = TypeVar("M", bound=type[BaseModel])
_ATTR = "__agentcast_contract__"


@dataclass(frozen=True, slots=True, order=True)
class ContractId:
    """A contract's name and version."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@v{self.version}"


_REGISTRY: dict[ContractId, type[BaseModel]] = {}
_EVENT_TYPES: dict[str, type[BaseModel]] = {}  # by _where: the types handlers take as events


def note_event_type(model: type[BaseModel]) -> None:
    """Remember that ``model`` is taken as an event (``@subscribe``, ``@validate``,
    ``Resource.emits``), for ``check_contracts``."""
    _EVENT_TYPES[_where(model)] = model


def contract(name: str, *, version: int) -> Callable[[M], M]:
    """Register a pydantic model as version ``version`` of the contract ``name``.

    Raises:
        ConfigurationError: a bad name or version (an int >= 1), a class that is not a
            pydantic model, or another class already registered as that name and version.
    """
    check_name("contract", name)
    if type(version) is not int or version < 1:
        raise ConfigurationError(f"contract {name!r}: version must be an int >= 1")
    key = ContractId(name, version)

    def register(model: M) -> M:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"contract {key}: {model!r} is not a pydantic model")
        known = _REGISTRY.get(key)
        if known is not None and _where(known) != _where(model):  # a re-import is the same
            raise ConfigurationError(f"contract {key} is already {_where(known)}")
        setattr(model, _ATTR, key)
        _REGISTRY[key] = model
        return model

    return register


def _where(model: type) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def contract_of(model: type[BaseModel] | BaseModel) -> ContractId | None:
    """The contract a model class (or a message's class) speaks, or None."""
    cls = model if isinstance(model, type) else type(model)
    found = cls.__dict__.get(_ATTR)
    return found if isinstance(found, ContractId) else None


def contract_mismatch(
    expected: type[BaseModel] | None, message: Any, where: str
) -> ContractMismatchError | None:
    """Why ``message`` may not cross to a receiver declaring ``expected``, or None (see
    the module docstring: only a model instance of another class can mismatch)."""
    want = None if expected is None else contract_of(expected)
    if want is None or not isinstance(message, BaseModel) or type(message) is expected:
        return None
    have = contract_of(message)
    if have == want:
        return None
    got = have.version if have is not None and have.name == want.name else None
    return ContractMismatchError(where, want.name, want.version, got)


def check_contract(expected: type[BaseModel] | None, message: Any, where: str) -> None:
    """Refuse ``message`` at a boundary whose receiver declares ``expected``.

    Raises:
        ContractMismatchError: ``message`` is a model of a class that speaks another
            contract or version than ``expected`` (or none, where ``expected`` has one).
    """
    if (mismatch := contract_mismatch(expected, message, where)) is not None:
        raise mismatch


def check_stored(expected: type[BaseModel], spoken: ContractId | None, where: str) -> None:
    """Refuse a stored message (an event) that names the contract ``spoken`` at a
    receiver declaring ``expected``. A stored message that names none (stored before
    events named their contract, or of a class that speaks none) is like plain data:
    validated as the receiver's model.

    Raises:
        ContractMismatchError: ``spoken`` is another contract or version than
            ``expected`` speaks.
    """
    want = contract_of(expected)
    if want is None or spoken is None or spoken == want:
        return
    got = spoken.version if spoken.name == want.name else None
    raise ContractMismatchError(where, want.name, want.version, got)


def contracts() -> dict[ContractId, type[BaseModel]]:
    """Every registered contract, by id (a copy)."""
    return dict(_REGISTRY)


@dataclass(frozen=True, slots=True)
class ContractChange:
    """What changed between two consecutive versions of a contract.

    Attributes:
        name: the contract.
        old: the older version; new: the next registered one.
        added, removed: field names only in ``new``, only in ``old``.
        retyped: fields in both whose annotation changed.
        newly_required: fields in both that became required.
    """

    name: str
    old: int
    new: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    retyped: tuple[str, ...]
    newly_required: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContractReport:
    """The consistency checks of a registry: ``problems`` (empty when it is consistent)
    and the field changes between consecutive versions of each contract."""

    problems: tuple[str, ...]
    changes: tuple[ContractChange, ...]


def check_contracts(
    registry: Mapping[ContractId, type[BaseModel]] | None = None,
    *,
    events: Iterable[type[BaseModel]] | None = None,
) -> ContractReport:
    """Check ``registry`` (default: every registered contract): each entry a pydantic
    model speaking its own id (no two versions of a name share a number), and report the
    field changes between consecutive versions of each name.

    Event types (default: every type a ``@subscribe`` or ``@validate`` handler names in
    this process, and every type a resource's ``emits`` names once it wrote here) are
    routed by class name, so for each that speaks a contract, every version of it must
    have its class name (else a subscriber of one version never hears another and no
    mismatch is reported), and no two contracts may share an event type name."""
    found = dict(_REGISTRY if registry is None else registry)
    taken = list(_EVENT_TYPES.values()) if events is None else list(events)
    problems, models = [], {}
    for key, model in sorted(found.items()):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            problems.append(f"{key}: {model!r} is not a pydantic model")
        elif contract_of(model) != key:
            problems.append(f"{key}: {_where(model)} speaks {contract_of(model)}")
        else:
            models[key] = model
    problems.extend(_event_problems(models, taken))
    return ContractReport(tuple(problems), tuple(_changes(models)))


def _event_problems(
    found: Mapping[ContractId, type[BaseModel]], events: list[type[BaseModel]]
) -> list[str]:
    problems: list[str] = []
    names: dict[str, str] = {}
    for event in events:
        spoken = contract_of(event)
        if spoken is None:
            continue
        other = names.setdefault(event.__name__, spoken.name)
        if other != spoken.name:
            problems.append(f"event type {event.__name__} is both {other!r} and {spoken.name!r}")
        for key, model in sorted(found.items()):
            if key.name == spoken.name and model.__name__ != event.__name__:
                problems.append(
                    f"event {spoken}: {key} is class {model.__name__}, not {event.__name__}"
                    " (events are routed by class name)"
                )
    return sorted(set(problems))


def _changes(found: Mapping[ContractId, type[BaseModel]]) -> list[ContractChange]:
    changes = []
    for old, new in itertools.pairwise(sorted(found)):
        if old.name != new.name:
            continue
        before, after = found[old].model_fields, found[new].model_fields
        both = sorted(before.keys() & after.keys())
        retyped = tuple(f for f in both if before[f].annotation != after[f].annotation)
        required = tuple(f for f in both if after[f].is_required() > before[f].is_required())
        added = tuple(sorted(after.keys() - before.keys()))
        removed = tuple(sorted(before.keys() - after.keys()))
        changes.append(
            ContractChange(old.name, old.version, new.version, added, removed, retyped, required)
        )
    return changes
