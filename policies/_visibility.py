"""Decision visibility: per event type, which agents must hear of it and how fast.

In a policy file (``load_policies``)::

    visibility:
      PriceChanged: {notify: [fulfillment, support], latency: immediate}
      CustomerException: {notify: [billing], latency: within_transaction,
                          deadline: 200ms, on_timeout: veto}

``immediate``: the named agents get the committed event pushed (their ``@subscribe``
handlers, as consumer groups of the events dispatcher). ``within_transaction``: before
the write that emits it commits, the resource asks each named agent's
``@validate(EventType)`` handler for a verdict, under ``deadline``; one veto refuses the
write. A validator that misses the deadline, raises or is dead is handled by
``on_timeout``. ``actors.Visibility.enforce`` checks the policy against the running
agents (docs/visibility.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any


class Latency(StrEnum):
    """How fast the named agents must hear of an event."""

    IMMEDIATE = "immediate"
    WITHIN_TRANSACTION = "within_transaction"


class OnTimeout(StrEnum):
    """What a validator that fails to answer in time (or at all) means for the write."""

    VETO = "veto"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True, kw_only=True)
class VisibilityRule:
    """Who must hear of one event type, and how fast.

    Attributes:
        notify: the agent names, at least one, no repeats (required).
        latency: ``IMMEDIATE`` or ``WITHIN_TRANSACTION`` (required).
        deadline: how long the write waits for every validator's verdict; required for
            ``WITHIN_TRANSACTION``, refused for ``IMMEDIATE``. Default None.
        on_timeout: what a validator that misses the deadline, raises or is dead
            means: ``VETO`` refuses the write (fail closed), ``ALLOW`` lets it commit and
            counts the miss. Default ``VETO``.
    """

    notify: tuple[str, ...]
    latency: Latency
    deadline: timedelta | None = None
    on_timeout: OnTimeout = OnTimeout.VETO

    def __post_init__(self) -> None:
        if not self.notify or not all(isinstance(n, str) and n for n in self.notify):
            raise ValueError("notify names at least one agent")
        if len(set(self.notify)) != len(self.notify):
            raise ValueError(f"notify names an agent twice: {list(self.notify)}")
        if not isinstance(self.latency, Latency):
            raise ValueError(f"latency must be a Latency, not {self.latency!r}")
        if not isinstance(self.on_timeout, OnTimeout):
            raise ValueError(f"on_timeout must be an OnTimeout, not {self.on_timeout!r}")
        if self.latency is Latency.WITHIN_TRANSACTION:
            if self.deadline is None:
                raise ValueError("within_transaction needs a deadline")
            if self.deadline <= timedelta(0):
                raise ValueError(f"deadline must be positive, not {self.deadline}")
        elif self.deadline is not None:
            raise ValueError("a deadline is for within_transaction only")


@dataclass(frozen=True, slots=True, kw_only=True)
class VisibilityPolicy:
    """The visibility rules of a system, by event type name (a pydantic class name).

    Attributes:
        rules: event type name -> its rule. Default none: nobody must be told anything.
    """

    rules: Mapping[str, VisibilityRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, rule in self.rules.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"an event type is a class name, not {name!r}")
            if not isinstance(rule, VisibilityRule):
                raise ValueError(f"the rule of {name} is not a VisibilityRule")

    def gated(self) -> dict[str, VisibilityRule]:
        """The ``within_transaction`` rules: the event types a write waits on."""
        return {n: r for n, r in self.rules.items() if r.latency is Latency.WITHIN_TRANSACTION}


_KEYS = {"notify", "latency", "deadline", "on_timeout"}


def visibility_section(value: object, path: str = "visibility") -> VisibilityPolicy:
    """The ``visibility:`` section of a policy file.

    Raises:
        PolicyTypeError, PolicyValueError, UnknownPolicyKeyError: as ``load_policies``
            (an unknown latency or rule, a missing deadline are ``PolicyValueError``).
    """
    from ._yaml import PolicyTypeError, PolicyValueError

    if not isinstance(value, dict):
        raise PolicyTypeError(path, f"expected a mapping, got {value!r}")
    rules = {}
    for name, given in value.items():
        rules[str(name)] = _rule(given, f"{path}.{name}")
    try:
        return VisibilityPolicy(rules=rules)
    except ValueError as exc:
        raise PolicyValueError(path, str(exc)) from exc


def _rule(given: object, path: str) -> VisibilityRule:
    from ._yaml import PolicyTypeError, PolicyValueError, UnknownPolicyKeyError, parse_duration

    if not isinstance(given, dict):
        raise PolicyTypeError(path, f"expected a mapping, got {given!r}")
    unknown = sorted(str(k) for k in given if k not in _KEYS)
    if unknown:
        raise UnknownPolicyKeyError(f"{path}.{unknown[0]}", f"unknown key ({sorted(_KEYS)})")
    for required in ("notify", "latency"):
        if required not in given:
            raise PolicyValueError(path, f"missing required key {required!r}")
    notify = given["notify"]
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        raise PolicyTypeError(f"{path}.notify", f"expected a list of names, got {notify!r}")
    values: dict[str, Any] = {
        "notify": tuple(notify),
        "latency": _choice(Latency, given["latency"], f"{path}.latency"),
        "on_timeout": _choice(OnTimeout, given.get("on_timeout", "veto"), f"{path}.on_timeout"),
    }
    if given.get("deadline") is not None:
        values["deadline"] = parse_duration(given["deadline"], f"{path}.deadline")
    try:
        return VisibilityRule(**values)
    except ValueError as exc:
        raise PolicyValueError(path, str(exc)) from exc


def _choice(kind: type[Latency] | type[OnTimeout], value: object, path: str) -> Any:
    from ._yaml import PolicyValueError

    choices = ", ".join(member.value for member in kind)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        raise PolicyValueError(path, f"expected one of {choices}, got {value!r}") from None
