"""Loading policies from YAML.

A policy file holds any of these top-level keys; every one is optional and every key inside
them is optional unless marked required::

    lease_mode: strict                  # or loose
    budgets:
      - {scope: run, key: "*", dimension: cost, cap: 5.0}    # scope, dimension, cap required
      - {scope: cluster, dimension: prompt_tokens, cap: 2000000}
    prices:
      default: {prompt_per_1k: 0.001, completion_per_1k: 0.002}
      models:
        gpt-4o: {prompt_per_1k: 0.0025, completion_per_1k: 0.01}
    retry: {max_attempts: 3, initial_backoff: 1s, backoff_multiplier: 2, max_backoff: 1m,
            jitter: 0.1, non_retryable: [schema, ValueError]}
    retry_budget: {ratio: 0.2, min_retries_per_window: 10, window: 10s}
    breaker: {failure_threshold: 5, failure_window: 30s, open_for: 30s, half_open_probes: 1}
    restart_intensity: {max_restarts: 3, within: 5s}
    deadlines: {queued: null, running: 5m, heartbeat: 30s}
    conflicts:                          # the ConflictPolicy of each resource, by name
      drafts:
        rules: [{action: merge, op: edit, merge_op: merge_edit}, {action: priority}]
        priority: [editorial, research]
        negotiation_rounds: 2
        negotiation_deadline: 30s
        arbiter: chief
        arbitration_deadline: 1m
        escalate: true
    visibility: {PriceChanged: {notify: [fulfillment], latency: immediate}}  # _visibility.py

Durations are seconds (``30``, ``0.5``) or strings of number-unit pairs (``"250ms"``,
``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"1m30s"``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from ._breaker import BreakerPolicy
from ._budget import BudgetLimit, Dimension, LeaseMode, ModelPrice, PriceTable, Scope, ScopeKind
from ._conflict import ConflictAction, ConflictPolicy, ConflictRule
from ._deadlines import Deadlines
from ._restart_intensity import RestartIntensity
from ._retry import RetryPolicy
from ._retry_budget import RetryBudget
from ._visibility import VisibilityPolicy, visibility_section
from ._yaml_text import parse_yaml


class PolicyFileError(ValueError):
    """A policy file that cannot be loaded.

    Attributes:
        path: where in the file, dotted (``"retry.max_backoff"``, ``"budgets[2].cap"``);
            empty for the whole file.
        problem: what is wrong.
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class UnknownPolicyKeyError(PolicyFileError):
    """A key the policy file format does not define (often a typo)."""


class PolicyTypeError(PolicyFileError):
    """A value of the wrong type: a string for a number, a list for a mapping."""


class PolicyValueError(PolicyFileError):
    """A value of the right type that is out of range: a negative cap, a zero window."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySet:
    """Every policy a policy file can set.

    Attributes:
        budgets: the caps, at most one per scope and dimension. Default none.
        lease_mode: how allowances are handed out. Default ``LeaseMode.STRICT``.
        prices: model prices. Default an empty table with no default price.
        retry: default retry policy of subtasks. Default ``RetryPolicy()``.
        retry_budget: the retry budget of each run. Default ``RetryBudget()``.
        breaker: the breaker policy of each dependency. Default ``BreakerPolicy()``.
        restart_intensity: restart bound of each agent group. Default ``RestartIntensity()``.
        deadlines: default deadlines of subtasks. Default ``Deadlines()``.
        conflicts: the conflict ladder of each resource, by resource name. Default none.
        visibility: who must hear of each event type (``VisibilityPolicy``). Default none.
    """

    budgets: tuple[BudgetLimit, ...] = ()
    lease_mode: LeaseMode = LeaseMode.STRICT
    prices: PriceTable = field(default_factory=PriceTable)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_budget: RetryBudget = field(default_factory=RetryBudget)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    restart_intensity: RestartIntensity = field(default_factory=RestartIntensity)
    deadlines: Deadlines = field(default_factory=Deadlines)
    conflicts: Mapping[str, ConflictPolicy] = field(default_factory=dict)
    visibility: VisibilityPolicy = field(default_factory=VisibilityPolicy)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object, path: str = "") -> timedelta:
    """A duration from seconds (int or float) or a string such as ``"1m30s"``.

    Raises:
        PolicyTypeError: ``value`` is neither a number nor a string.
        PolicyValueError: the string is not a duration, or the duration is negative or too
            large.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PolicyTypeError(path, f"expected a duration, got {value!r}")
    if isinstance(value, str):
        text = value.replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not text or "".join(number + unit for number, unit in parts) != text:
            raise PolicyValueError(path, f"not a duration: {value!r} (use e.g. 30s, 5m, 1h)")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        seconds = float(value)
    if not 0.0 <= seconds <= timedelta.max.total_seconds() / 2:
        raise PolicyValueError(path, f"duration must be finite and not negative, got {value!r}")
    return timedelta(seconds=seconds)


def load_policies(text: str) -> PolicySet:
    """Policies from the text of a policy file (see the module docstring for the format).

    An empty document gives ``PolicySet()``.

    Raises:
        PolicyFileError: the text is not YAML, or (as its subclasses) holds an unknown key
            (``UnknownPolicyKeyError``), a value of the wrong type (``PolicyTypeError``) or
            an out-of-range value or a key given twice in one mapping
            (``PolicyValueError``).
    """
    document = parse_yaml(text)  # a key given twice is refused, not silently dropped
    if document is None:
        return PolicySet()
    top = _mapping(document, "")
    known = {"budgets", "prices", "lease_mode", "conflicts", "visibility"}
    _reject_unknown(top, _SECTIONS.keys() | known, "")
    values: dict[str, Any] = {
        name: _build(section, top[name], name) for name, section in _SECTIONS.items() if name in top
    }
    if "budgets" in top:
        values["budgets"] = _budgets(top["budgets"])
    if "prices" in top:
        values["prices"] = _prices(top["prices"])
    if "conflicts" in top:
        values["conflicts"] = _conflicts(top["conflicts"])
    if "visibility" in top:
        values["visibility"] = visibility_section(top["visibility"])
    if "lease_mode" in top:
        values["lease_mode"] = _enum(LeaseMode, top["lease_mode"], "lease_mode")
    return PolicySet(**values)


def load_policies_file(path: str | os.PathLike[str]) -> PolicySet:
    """Policies from a policy file on disk, read as UTF-8.

    Raises:
        OSError: the file cannot be read.
        PolicyFileError: as for ``load_policies``.
    """
    with open(path, encoding="utf-8") as file:
        return load_policies(file.read())


_Convert = Callable[[object, str], Any]


def _integer(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyTypeError(path, f"expected an integer, got {value!r}")
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyTypeError(path, f"expected a number, got {value!r}")
    return float(value)


def _optional_duration(value: object, path: str) -> timedelta | None:
    return None if value is None else parse_duration(value, path)


def _names(value: object, path: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyTypeError(path, f"expected a list of names, got {value!r}")
    return frozenset(value)


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PolicyTypeError(path, f"expected a string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Section:
    build: Callable[..., Any]
    fields: Mapping[str, _Convert]


_SECTIONS: Mapping[str, _Section] = {
    "retry": _Section(
        RetryPolicy,
        {
            "max_attempts": _integer,
            "initial_backoff": parse_duration,
            "backoff_multiplier": _number,
            "max_backoff": parse_duration,
            "jitter": _number,
            "non_retryable": _names,
        },
    ),
    "retry_budget": _Section(
        RetryBudget,
        {"ratio": _number, "min_retries_per_window": _integer, "window": parse_duration},
    ),
    "breaker": _Section(
        BreakerPolicy,
        {
            "failure_threshold": _integer,
            "failure_window": parse_duration,
            "open_for": parse_duration,
            "half_open_probes": _integer,
        },
    ),
    "restart_intensity": _Section(
        RestartIntensity, {"max_restarts": _integer, "within": parse_duration}
    ),
    "deadlines": _Section(
        Deadlines,
        {"queued": _optional_duration, "running": parse_duration, "heartbeat": _optional_duration},
    ),
}

_PRICE = _Section(ModelPrice, {"prompt_per_1k": _number, "completion_per_1k": _number})


def _build(section: _Section, value: object, path: str) -> Any:
    """One policy value from a mapping of its fields; the policy's own checks become
    ``PolicyValueError``."""
    given = _mapping(value, path)
    _reject_unknown(given, section.fields.keys(), path)
    kwargs = {
        key: convert(given[key], _join(path, key))
        for key, convert in section.fields.items()
        if key in given
    }
    try:
        return section.build(**kwargs)
    except ValueError as exc:
        raise PolicyValueError(path, str(exc)) from exc


def _budgets(value: object) -> tuple[BudgetLimit, ...]:
    if not isinstance(value, list):
        raise PolicyTypeError("budgets", f"expected a list, got {value!r}")
    limits = tuple(_budget(item, f"budgets[{index}]") for index, item in enumerate(value))
    seen: set[tuple[Scope, Dimension]] = set()
    for index, limit in enumerate(limits):
        if (limit.scope, limit.dimension) in seen:
            raise PolicyValueError(
                f"budgets[{index}]", f"a second cap on {limit.dimension} for the same scope"
            )
        seen.add((limit.scope, limit.dimension))
    return limits


def _budget(value: object, path: str) -> BudgetLimit:
    given = _mapping(value, path)
    _reject_unknown(given, {"scope", "key", "dimension", "cap"}, path)
    for required in ("scope", "dimension", "cap"):
        if required not in given:
            raise PolicyValueError(path, f"missing required key {required!r}")
    kind = _enum(ScopeKind, given["scope"], _join(path, "scope"))
    key = _string(given.get("key", "*"), _join(path, "key"))
    dimension = _enum(Dimension, given["dimension"], _join(path, "dimension"))
    cap = _number(given["cap"], _join(path, "cap"))
    try:
        return BudgetLimit(scope=Scope(kind=kind, key=key), dimension=dimension, cap=cap)
    except ValueError as exc:
        raise PolicyValueError(path, str(exc)) from exc


def _prices(value: object) -> PriceTable:
    given = _mapping(value, "prices")
    _reject_unknown(given, {"default", "models"}, "prices")
    default = given.get("default")
    models = _mapping(given.get("models", {}), "prices.models")
    return PriceTable(
        models={
            _string(name, "prices.models"): _build(_PRICE, price, f"prices.models.{name}")
            for name, price in models.items()
        },
        default=None if default is None else _build(_PRICE, default, "prices.default"),
    )


def _conflicts(value: object) -> dict[str, ConflictPolicy]:
    given = _mapping(value, "conflicts")
    return {
        _string(name, "conflicts"): _build(_CONFLICT, policy, f"conflicts.{name}")
        for name, policy in given.items()
    }


def _rules(value: object, path: str) -> tuple[ConflictRule, ...]:
    if not isinstance(value, list):
        raise PolicyTypeError(path, f"expected a list of rules, got {value!r}")
    return tuple(_build(_RULE, rule, f"{path}[{i}]") for i, rule in enumerate(value))


def _ordered_names(value: object, path: str) -> tuple[str, ...]:
    _names(value, path)
    assert isinstance(value, list)
    return tuple(value)


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyTypeError(path, f"expected true or false, got {value!r}")
    return value


_RULE = _Section(
    ConflictRule,
    {
        "action": lambda value, path: _enum(ConflictAction, value, path),
        "op": _string,
        "merge_op": _string,
    },
)
_CONFLICT = _Section(
    ConflictPolicy,
    {
        "rules": _rules,
        "priority": _ordered_names,
        "negotiation_rounds": _integer,
        "negotiation_deadline": parse_duration,
        "arbiter": _string,
        "arbitration_deadline": parse_duration,
        "escalate": _flag,
    },
)

_E = TypeVar("_E", LeaseMode, ScopeKind, Dimension, ConflictAction)


def _enum(kind: type[_E], value: object, path: str) -> _E:
    choices = ", ".join(member.value for member in kind)
    if not isinstance(value, str):
        raise PolicyTypeError(path, f"expected one of {choices}, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise PolicyValueError(path, f"expected one of {choices}, got {value!r}") from None


def _mapping(value: object, path: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise PolicyTypeError(path, f"expected a mapping, got {value!r}")
    return value


def _reject_unknown(given: Mapping[Any, Any], known: Any, path: str) -> None:
    unknown = sorted(str(key) for key in given if key not in known)
    if unknown:
        raise UnknownPolicyKeyError(
            _join(path, unknown[0]), f"unknown key (expected one of {', '.join(sorted(known))})"
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
