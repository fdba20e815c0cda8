"""Constraints: hard limits that travel with a task, as typed values, not prose.

A ``ConstraintSet`` rides on every envelope. Delegation copies it to each child; an agent
may add constraints or tighten them (``tighten``), never drop or loosen them: a set
handed on must be ``is_at_least_as_strict_as`` the one received (the runtime refuses a
looser one with ``ConstraintLoosenedError``; only the system or a human starts a root
envelope with any set it likes). Resources check every write against the set it carries
(``violated_by``), so a constraint holds however the prose around it was paraphrased.

Each kind has an order of strictness (``implies``): a constraint implies another when
every write it admits, the other admits too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_CONSTRAINTS = 64
"""Most constraints one set may hold (the wire form stays small)."""
_MAX_TEXT = 256
_MAX_ENTITIES = 256


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
        raise ValueError(f"{what} must be a str of 1 to {_MAX_TEXT} characters, not {value!r}")
    return value


@functools.lru_cache(maxsize=4096)  # a task writes the same few paths, checked by many
def _path(value: str) -> str:
    """A path in normal form, so ``/a/../prod`` is ``/prod`` and ``prod/`` is ``prod``."""
    return posixpath.normpath(value) if value else value


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, by whole segments."""
    return path == prefix or prefix == "/" or path.startswith(prefix.rstrip("/") + "/")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForbidPath:
    """No write whose argument ``argument`` is a path at or under ``prefix``.

    Attributes:
        prefix: the forbidden path, e.g. ``"/prod"`` (compared in normal form, by whole
            segments: ``/prod`` forbids ``/prod/x``, not ``/production``). Required.
        argument: the name of the write's parameter holding the path. Default ``"path"``.
    """

    prefix: str
    argument: str = "path"
    _below: str = field(init=False, compare=False, repr=False)  # what a path under it starts with

    def __post_init__(self) -> None:
        prefix = _path(_name(self.prefix, "ForbidPath.prefix"))
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "_below", "" if prefix == "/" else prefix.rstrip("/") + "/")
        _name(self.argument, "ForbidPath.argument")

    def implies(self, other: Constraint) -> bool:
        return (
            isinstance(other, ForbidPath)
            and other.argument == self.argument
            and _under(other.prefix, self.prefix)
        )

    def refuses(self, value: Any) -> bool:
        if not isinstance(value, str):
            return True
        path = _path(value)
        return path == self.prefix or path.startswith(self._below)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForbidEntities:
    """No write whose argument ``argument`` names one of ``entities``.

    Attributes:
        entities: the forbidden entities (compared as str). Required, at most 256.
        argument: the name of the write's parameter holding the entity. Default
            ``"entity"``.
    """

    entities: frozenset[str]
    argument: str = "entity"

    def __post_init__(self) -> None:
        entities = frozenset(_name(e, "an entity") for e in self.entities)
        if not 0 < len(entities) <= _MAX_ENTITIES:
            raise ValueError(f"ForbidEntities needs 1 to {_MAX_ENTITIES} entities")
        object.__setattr__(self, "entities", entities)
        _name(self.argument, "ForbidEntities.argument")

    def implies(self, other: Constraint) -> bool:
        return (
            isinstance(other, ForbidEntities)
            and other.argument == self.argument
            and other.entities <= self.entities
        )

    def refuses(self, value: Any) -> bool:
        return type(value) not in (str, int) or str(value) in self.entities


@dataclass(frozen=True, slots=True, kw_only=True)
class CapArgument:
    """No write whose numeric argument ``argument`` is above ``maximum``.

    Attributes:
        argument: the name of the write's parameter. Required.
        maximum: the largest value admitted (finite). Required.
    """

    argument: str
    maximum: float

    def __post_init__(self) -> None:
        _name(self.argument, "CapArgument.argument")
        if type(self.maximum) not in (int, float) or not math.isfinite(self.maximum):
            raise ValueError(f"CapArgument.maximum must be a finite number, not {self.maximum!r}")

    def implies(self, other: Constraint) -> bool:
        return (
            isinstance(other, CapArgument)
            and other.argument == self.argument
            and self.maximum <= other.maximum
        )

    def refuses(self, value: Any) -> bool:
        # Anything but a finite number fails closed: a cap cannot be checked on it.
        if type(value) not in (int, float) or not math.isfinite(value):
            return True
        return bool(value > self.maximum)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowOnly:
    """Writes only to the listed resources, or resource operations.

    Attributes:
        targets: resource names (``"files"``) or operations (``"files.write_file"``);
            a write is admitted if its resource or its ``resource.operation`` is listed.
            Required, at most 256; empty forbids every write.
    """

    targets: frozenset[str]

    def __post_init__(self) -> None:
        targets = frozenset(_name(t, "an allowed target") for t in self.targets)
        if len(targets) > _MAX_ENTITIES:
            raise ValueError(f"AllowOnly takes at most {_MAX_ENTITIES} targets")
        object.__setattr__(self, "targets", targets)

    def implies(self, other: Constraint) -> bool:
        if not isinstance(other, AllowOnly):
            return False
        return all(t in other.targets or t.split(".", 1)[0] in other.targets for t in self.targets)

    def admits(self, resource: str, op: str) -> bool:
        return resource in self.targets or f"{resource}.{op}" in self.targets


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendCeiling:
    """A ceiling on the cost the task and its subtasks may spend.

    Carried and rendered to the model; resources do not check it (a write has no cost):
    the budget actor's run caps are what stop spending.

    Attributes:
        cost: the ceiling, in the budget's cost unit (finite, >= 0). Required.
    """

    cost: float

    def __post_init__(self) -> None:
        if type(self.cost) not in (int, float) or not 0 <= self.cost < math.inf:
            raise ValueError(f"SpendCeiling.cost must be a finite number >= 0, not {self.cost!r}")

    def implies(self, other: Constraint) -> bool:
        return isinstance(other, SpendCeiling) and self.cost <= other.cost


Constraint = ForbidPath | ForbidEntities | CapArgument | AllowOnly | SpendCeiling
"""One constraint of any kind."""

_KINDS: dict[str, type[Any]] = {
    "forbid_path": ForbidPath, "forbid_entities": ForbidEntities, "cap": CapArgument,
    "allow_only": AllowOnly, "spend_ceiling": SpendCeiling,
}  # fmt: skip
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}


def describe_constraint(constraint: Constraint) -> str:
    """A short, stable text naming the constraint, for errors and audit records."""
    match constraint:
        case ForbidPath(prefix=prefix, argument=argument):
            return f"forbid_path({argument} under {prefix})"
        case ForbidEntities(entities=entities, argument=argument):
            return f"forbid_entities({argument} in {sorted(entities)})"
        case CapArgument(argument=argument, maximum=maximum):
            return f"cap({argument} <= {maximum:g})"
        case AllowOnly(targets=targets):
            return f"allow_only({sorted(targets)})"
        case SpendCeiling(cost=cost):
            return f"spend_ceiling({cost:g})"
    raise TypeError(f"not a constraint: {constraint!r}")


def _init_fields(cls: type[Any]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def _to_wire(constraint: Constraint) -> dict[str, Any]:
    kind = _KIND_OF[type(constraint)]
    values: dict[str, Any] = {"kind": kind}
    for name in _init_fields(type(constraint)):
        value = getattr(constraint, name)
        values[name] = sorted(value) if isinstance(value, frozenset) else value
    return values


def _from_wire(values: Any) -> Constraint:
    if not isinstance(values, Mapping) or values.get("kind") not in _KINDS:
        raise ValueError(f"a constraint must be a mapping with a known kind, not {values!r}")
    cls = _KINDS[values["kind"]]
    fields = {k: v for k, v in values.items() if k != "kind"}
    if set(fields) - _init_fields(cls):
        raise ValueError(f"{values['kind']}: unknown fields {sorted(set(fields))}")
    for name in ("entities", "targets"):
        if name in fields:
            if not isinstance(fields[name], list | tuple | frozenset | set):
                raise ValueError(f"{values['kind']}.{name} must be a list")
            fields[name] = frozenset(fields[name])
    try:
        constraint: Constraint = cls(**fields)
    except TypeError as error:
        raise ValueError(f"{values['kind']}: {error}") from None
    return constraint


@dataclass(frozen=True, slots=True)
class ConstraintSet:
    """The constraints a task carries; empty by default. Sets compare by their content.

    Attributes:
        items: the constraints, at most 64, none implied by another (``tighten`` keeps
            the strictest of each kind and argument).

    Raises:
        ValueError: an item is not a constraint, or there are too many.
    """

    items: tuple[Constraint, ...] = ()
    _wire: list[dict[str, Any]] = field(init=False, compare=False, repr=False)
    # Built once: the checks a write runs, as (argument or None, constraint); and the
    # arguments they look at. A set is checked on every write that carries it.
    _checks: tuple[tuple[str | None, Any], ...] = field(init=False, compare=False, repr=False)
    _arguments: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        kept: list[Constraint] = []
        for item in self.items:
            if type(item) not in _KIND_OF:
                raise ValueError(f"not a constraint: {item!r}")
            if any(k.implies(item) for k in kept):
                continue  # already as strict
            kept = [k for k in kept if not item.implies(k)] + [item]
        if len(kept) > MAX_CONSTRAINTS:
            raise ValueError(f"a constraint set holds at most {MAX_CONSTRAINTS} constraints")
        object.__setattr__(self, "items", tuple(sorted(kept, key=describe_constraint)))
        object.__setattr__(self, "_wire", [_to_wire(c) for c in self.items])
        checks = tuple(
            (None if isinstance(c, AllowOnly) else c.argument, c)
            for c in self.items
            if not isinstance(c, SpendCeiling)
        )
        object.__setattr__(self, "_checks", checks)
        object.__setattr__(self, "_arguments", frozenset(a for a, _ in checks if a is not None))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __reduce__(self) -> tuple[Any, ...]:
        # Through the wire form: a set rebuilt from bytes is validated again.
        return (ConstraintSet.from_wire, (self.to_wire(),))

    def tighten(self, other: ConstraintSet | Constraint) -> ConstraintSet:
        """This set with ``other``'s constraints added; never looser than either.

        Raises:
            ValueError: the result would hold more than 64 constraints.
        """
        added = other.items if isinstance(other, ConstraintSet) else (other,)
        return ConstraintSet(self.items + tuple(added))

    def is_at_least_as_strict_as(self, other: ConstraintSet) -> bool:
        """Whether every write this set admits, ``other`` admits too."""
        return all(any(mine.implies(theirs) for mine in self.items) for theirs in other.items)

    def violated_by(
        self, resource: str, op: str, arguments: Mapping[str, Any]
    ) -> Constraint | None:
        """The first constraint a write of ``op`` on ``resource`` with these named
        arguments breaks, or None. A constraint on an argument the write does not take
        does not apply to it."""
        for argument, constraint in self._checks:
            if argument is None:
                if not constraint.admits(resource, op):
                    return constraint  # type: ignore[no-any-return]
            elif argument in arguments and constraint.refuses(arguments[argument]):
                return constraint  # type: ignore[no-any-return]
        return None

    def arguments(self) -> frozenset[str]:
        """The argument names the set's constraints look at."""
        return self._arguments

    def to_wire(self) -> list[dict[str, Any]]:
        """The set as plain data (what travels on a write and renders to a model)."""
        return [dict(c) for c in self._wire]

    @classmethod
    def from_wire(cls, values: Any) -> ConstraintSet:
        """A set from its plain-data form.

        Raises:
            ValueError: not a list of at most 64 well-formed constraints.
        """
        if not isinstance(values, list | tuple) or len(values) > MAX_CONSTRAINTS:
            raise ValueError(f"constraints must be a list of at most {MAX_CONSTRAINTS}")
        return cls(tuple(_from_wire(v) for v in values))
