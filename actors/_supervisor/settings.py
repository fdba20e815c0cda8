"""The supervisor's configuration, durable: what ``configure``, ``configure_group`` and
``declare_stage`` set survives a restart of the supervisor actor.

A restart by Ray re-runs the actor's constructor with the arguments of the spawn that
created it, so the constructor alone cannot tell a restart from a new ``System.start`` over
the same storage. Each start therefore names itself (``start_id``): the first open of a new
start replaces what an earlier start configured with the start's own arguments, and a
restart of the same start reloads what was configured since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policies import Provenance, RestartIntensity, RetryBudget
from runtime import Connection, transaction

from .spec import StageRule

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS settings(kind TEXT NOT NULL, name TEXT NOT NULL, "
    "value TEXT NOT NULL, PRIMARY KEY(kind, name))"
)
_START, _RETRY_BUDGET, _GROUP, _STAGE = "start", "retry_budget", "group", "stage"


@dataclass(slots=True, kw_only=True)
class Configuration:
    """What the supervisor was configured with.

    Attributes:
        retry_budget: the retry budget of runs whose subtasks name none; None leaves them
            to the budget actor or ``RetryBudget()``. Default None.
        groups: the restart intensity of each configured agent group. Default empty.
        stages: the window, in seconds, of each declared stage (None: not watched) and
            its rule. Default empty.
    """

    retry_budget: RetryBudget | None = None
    groups: dict[str, RestartIntensity] = field(default_factory=dict)
    stages: dict[str, tuple[float | None, StageRule | None]] = field(default_factory=dict)


class SettingsStore:
    """The ``settings`` table of ``supervisor.sqlite``; one row per configured item, so
    it is as small as the configuration (a new start clears it).

    Args:
        conn: the supervisor store's connection.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        conn.execute(_SCHEMA)

    def begin(self, start_id: str, retry_budget: RetryBudget | None) -> Configuration:
        """The configuration to run with: the stored one if ``start_id`` is the start
        that stored it (a restart), else a fresh one holding ``retry_budget``, stored.

        Raises:
            StorageError: the configuration could not be stored.
        """
        row = self._conn.execute(
            "SELECT value FROM settings WHERE kind = ? AND name = ''", (_START,)
        ).fetchone()
        if row is not None and json.loads(row[0]) == start_id:
            return self._load()
        with transaction(self._conn, "supervisor settings") as conn:
            conn.execute("DELETE FROM settings")
            _put(conn, _START, "", start_id)
            _put(conn, _RETRY_BUDGET, "", _retry_budget_value(retry_budget))
        return Configuration(retry_budget=retry_budget)

    def save_retry_budget(self, budget: RetryBudget | None) -> None:
        """Store the retry budget of runs whose subtasks name none."""
        self._save(_RETRY_BUDGET, "", _retry_budget_value(budget))

    def save_group(self, group: str, intensity: RestartIntensity) -> None:
        """Store the restart intensity of ``group``."""
        within_s = intensity.within.total_seconds()
        self._save(_GROUP, group, {"max_restarts": intensity.max_restarts, "within_s": within_s})

    def save_stage(self, stage: str, window: float | None, rule: StageRule | None) -> None:
        """Store the window and the rule of stage ``stage``."""
        self._save(_STAGE, stage, {"window_s": window, "rule": _rule_value(rule)})

    def _save(self, kind: str, name: str, value: object) -> None:
        with transaction(self._conn, "supervisor settings") as conn:
            _put(conn, kind, name, value)

    def _load(self) -> Configuration:
        loaded = Configuration()
        for kind, name, text in self._conn.execute("SELECT kind, name, value FROM settings"):
            value = json.loads(text)
            if kind == _RETRY_BUDGET:
                loaded.retry_budget = _retry_budget(value)
            elif kind == _GROUP:
                loaded.groups[name] = RestartIntensity(
                    max_restarts=value["max_restarts"], within=timedelta(seconds=value["within_s"])
                )
            elif kind == _STAGE:  # a bare number: stored before stages had rules
                loaded.stages[name] = _stage(value)
        return loaded


def _put(conn: Connection, kind: str, name: str, value: object) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO settings(kind, name, value) VALUES (?, ?, ?)",
        (kind, name, json.dumps(value)),
    )


def _rule_value(rule: StageRule | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    requires = None if rule.requires is None else rule.requires.value
    within = rule.verify_within.total_seconds()
    return {"requires": requires, "verifier": rule.verifier, "verify_within_s": within}


def _stage(value: Any) -> tuple[float | None, StageRule | None]:
    if not isinstance(value, dict):
        return float(value), None
    rule = value["rule"]
    if rule is None:
        return value["window_s"], None
    requires = None if rule["requires"] is None else Provenance(rule["requires"])
    within = timedelta(seconds=rule["verify_within_s"])
    return value["window_s"], StageRule(
        requires=requires, verifier=rule["verifier"], verify_within=within
    )


def _retry_budget_value(budget: RetryBudget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {
        "ratio": budget.ratio,
        "min_retries_per_window": budget.min_retries_per_window,
        "window_s": budget.window.total_seconds(),
    }


def _retry_budget(value: dict[str, Any] | None) -> RetryBudget | None:
    if value is None:
        return None
    return RetryBudget(
        ratio=value["ratio"],
        min_retries_per_window=value["min_retries_per_window"],
        window=timedelta(seconds=value["window_s"]),
    )
