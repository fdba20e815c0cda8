"""Within-transaction validators, at the resource (docs/visibility.md).

Where the visibility policy names validators for an event type, a write that would emit
it waits for their verdicts before it commits. The writer stays single:

- The host holds its applier (``SerialApplier.held``) for the whole check: no other
  write applies until the checked write is applied or refused, so the validators judge
  exactly the state the write then commits onto; writes that arrive meanwhile queue.
- The write method runs once: ``ResourceCore.stage`` runs it on a journaled view to
  learn its events, keeps what it did (result, events, changes) and takes the changes
  back out before anything awaits; once allowed, the applier commits that kept outcome
  without running the method again (``staging.py``). What the validators judged is
  exactly what commits, even for a method that reads the clock or draws a random id.
- Reads are not held: they run on the committed state (the checked write's changes are
  out of it while the validators deliberate), so a validator that reads the resource it
  validates is served, never deadlocked.
- A refused write leaves nothing behind: not its changes, version, idempotency key,
  provenance marks or lease fences (only its rejection, in the log), so the same key
  may be sent again.

Authority, idempotency and every other refusal are checked before any validator is
asked: a forged or duplicate call never reaches one. A veto, or a validator failure
under ``on_timeout: veto``, is a typed error logged as a rejection with the write's
trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from policies import OnTimeout, VisibilityPolicy
from runtime import (
    Clock,
    DatabaseErrors,
    FencedError,
    Location,
    StorageError,
    ValidatorFailedError,
    VetoedError,
    VisibilityError,
    connect,
    connect_read_only,
    counter,
    transaction,
)

from .._events.emit import type_name
from .._events.validate import Veto
from .._observations import ObservationLog
from .asking import RayValidators
from .batch import Refused, rejection_of
from .calls import WriteCall, WriteResult
from .core import ResourceCore
from .verdicts import verdict_log

_log = logging.getLogger(__name__)

VISIBILITY_STORE = "visibility.sqlite"
"""Where ``Visibility.enforce`` leaves the within-transaction rules for every resource
(a store under the system's storage root: a SQLite file or a PostgreSQL schema), so a
restarted resource applies them too. Retention: one row, replaced by each ``enforce``."""

LEGACY_RULES = "visibility.json"
"""Where ``Visibility.enforce`` left the rules before they moved to ``VISIBILITY_STORE``
(the same JSON document, in a SQLite storage folder). A root that holds only this file
keeps its rules: the first load copies them into the store (docs/visibility.md)."""

_RULES_SCHEMA = "CREATE TABLE IF NOT EXISTS rules(id INTEGER PRIMARY KEY, doc TEXT NOT NULL)"


@dataclass(frozen=True, slots=True)
class GateRule:
    """A within-transaction rule as a resource applies it."""

    notify: tuple[str, ...]
    deadline_s: float
    allow_on_failure: bool


def save_rules(root: Location, policy: VisibilityPolicy, replicas: dict[str, int]) -> None:
    """Store ``policy``'s within-transaction rules and each named agent's replica count
    (one row replaced in one transaction: a reader sees the old rules or the new ones).

    Raises:
        StorageError: nothing was stored.
    """
    rules = {
        name: {
            "notify": list(rule.notify),
            "deadline_s": rule.deadline.total_seconds() if rule.deadline else 0.0,
            "allow_on_failure": rule.on_timeout is OnTimeout.ALLOW,
        }
        for name, rule in policy.gated().items()
    }
    doc = json.dumps({"rules": rules, "replicas": replicas}, sort_keys=True)
    _store(root / VISIBILITY_STORE, doc, "INSERT OR REPLACE")


def load_rules(root: Location) -> tuple[dict[str, GateRule], dict[str, int]]:
    """The stored rules and replica counts; none if nothing was stored. Where the store
    holds none but the storage folder holds rules in the old form (``LEGACY_RULES``),
    those are copied into the store and applied.

    Raises:
        StorageError: the store (or the old file) exists and cannot be read: writes are
            refused rather than let through unchecked.
    """
    path = root / VISIBILITY_STORE
    doc = _stored(path)
    if doc is None:
        doc = _legacy(root)
    return ({}, {}) if doc is None else _parsed(doc, path)


def _parsed(doc: str, where: Location) -> tuple[dict[str, GateRule], dict[str, int]]:
    try:
        stored = json.loads(doc)
        rules = {
            str(name): GateRule(
                tuple(r["notify"]), float(r["deadline_s"]), bool(r["allow_on_failure"])
            )
            for name, r in stored["rules"].items()
        }
        return rules, {str(k): int(v) for k, v in stored["replicas"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StorageError(f"unreadable visibility rules {where}: {error}") from error


def _store(path: Location, doc: str, insert: str) -> None:
    try:
        conn = connect(path)
    except DatabaseErrors as error:
        raise StorageError(f"opening {path} failed: {error}") from error
    try:
        conn.executescript(_RULES_SCHEMA)
        with transaction(conn, f"storing the visibility rules in {path} failed"):
            conn.execute(f"{insert} INTO rules(id, doc) VALUES(1, ?)", (doc,))
    except DatabaseErrors as error:  # the schema statement
        raise StorageError(f"storing the visibility rules in {path} failed: {error}") from error
    finally:
        conn.close()


def _stored(path: Location) -> str | None:
    """The stored rules document; None if nothing was stored."""
    try:
        if not path.exists():
            return None
        conn = connect_read_only(path)
        try:
            row = conn.execute("SELECT doc FROM rules WHERE id = 1").fetchone()
        finally:
            conn.close()
    except DatabaseErrors as error:
        raise StorageError(f"unreadable visibility rules {path}: {error}") from error
    return None if row is None else str(row[0])


def _legacy(root: Location) -> str | None:
    """The rules document of the old file, copied into the store unless rules got there
    first (a concurrent ``enforce`` or another resource's copy: the store's then win);
    None without the old file. The old file is left as it is: every resource loading at
    once finds the rules in one place or the other, never in neither."""
    if not isinstance(root, Path):
        return None  # the old file only ever lived in a storage folder
    old = root / LEGACY_RULES
    try:
        doc = old.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise StorageError(f"unreadable visibility rules {old}: {error}") from error
    _parsed(doc, old)  # refused here: garbage is never copied into the store
    path = root / VISIBILITY_STORE
    try:
        _store(path, doc, "INSERT OR IGNORE")
    except StorageError as error:  # the old file's rules still apply, from the file
        _log.warning("visibility rules of %s not copied into %s: %s", old, path, error)
        return doc
    return _stored(path)


Trace = tuple[str, str]
"""The write's trace id and its span id (``""`` when the writer did not trace): a
validator's run is a child of that span."""

Ask = Callable[[str, int, str, bytes, float, Trace], Awaitable[Veto | None]]
"""``(agent, replicas, event_type, payload, deadline_s, trace) -> Veto | None``; raises
``ValidatorFailedError`` (its resource left empty) for no verdict."""


class Gate:
    """Holds a resource's writes to the verdicts of their within-transaction validators.

    Args:
        name: the resource. root: the storage root holding the rules.
        emits: the event types the resource declares (empty: any).
        namespace: the system's namespace, where the validators run (default: this
            actor's).
        ask: how a validator is asked (``RayValidators``; a fake in plain-class tests).
    """

    def __init__(
        self, name: str, root: Location, emits: Sequence[type[Any]], *, namespace: str = "",
        ask: Ask | None = None,
    ) -> None:  # fmt: skip
        self._name = name
        self._namespace = namespace  # where the agents run: not the actor's job namespace
        self._root = root
        self._emits = {type_name(t) for t in emits}
        self._ask = ask
        self._rules: dict[str, GateRule] | None = None
        self._replicas: dict[str, int] = {}
        self._verdicts_log: ObservationLog | None = None

    def reload(self) -> None:
        """Read the stored rules again (``Visibility.enforce`` stored new ones).

        Raises:
            StorageError: unreadable rules (see ``load_rules``).
        """
        rules, self._replicas = load_rules(self._root)
        self._rules = {n: r for n, r in rules.items() if not self._emits or n in self._emits}

    def rules(self) -> dict[str, GateRule]:
        """The rules of the event types this resource may emit (read on first use)."""
        if self._rules is None:
            self.reload()
        assert self._rules is not None
        return self._rules

    async def submit(
        self, calls: list[WriteCall], applier: Any, open_core: Callable[[], ResourceCore],
        pending: Callable[[list[WriteCall]], Any],
    ) -> list[WriteResult[Any]]:  # fmt: skip
        """Apply ``calls`` through ``applier``; those that would emit a gated event one
        at a time under the held applier, each after its validators' verdicts. A call
        whose checks could not be made (``ResourceCore.stage`` raised) gets that error
        and is not applied: the applier would otherwise run it unvalidated.

        Raises:
            StorageError: unreadable rules, or a refusal that could not be logged.
        """
        rules = self.rules()  # one set of rules for the whole submit, even if reloaded
        if not rules:
            return list(await applier.submit(pending(calls)))
        results: list[WriteResult[Any]] = []
        async with applier.held() as apply_alone:
            for call in calls:  # each judged on the state the one before it left
                core = open_core()  # a failed batch may have dropped the last one
                try:
                    staged = core.stage(call)
                except (StorageError, FencedError) as error:  # unchecked: not applied
                    results.append(WriteResult(core.version, error=error))
                    continue
                events = [(name, payload) for name, payload, *_ in staged if name in rules]
                refusal = await self._verdicts(rules, events, call, core._clock) if events else None
                if refusal is None:
                    results.extend(apply_alone(pending([call])))
                else:
                    results.append(self._refuse(core, call, refusal))
        return results

    async def _verdicts(
        self, rules: dict[str, GateRule], events: list[tuple[str, bytes]], call: WriteCall,
        clock: Clock,
    ) -> VisibilityError | None:  # fmt: skip
        """The error refusing the write (the first veto, else the first failure of a
        validator whose rule fails closed), or None: it may commit. Each answer is
        stored for ``agentcast trace`` (``verdicts.verdict_log``)."""
        asks, plan = [], []
        ask = self._ask or RayValidators(self._namespace or ray.get_runtime_context().namespace)
        self._ask = ask
        trace = (call.trace_id, call.parent_span)  # the validator's run: a child of the write
        for event_type, payload in events:
            rule = rules[event_type]
            for agent in rule.notify:
                replicas = self._replicas.get(agent, 1)
                question = ask(agent, replicas, event_type, payload, rule.deadline_s, trace)
                asks.append(_timed(clock, question, rule.deadline_s))
                plan.append((event_type, agent, rule))
        answers = await asyncio.gather(*asks)
        refusals: list[VisibilityError] = []
        rows = []
        for (event_type, agent, rule), (answer, ms) in zip(plan, answers, strict=True):
            outcome, detail, error = self._judge(event_type, agent, rule, answer)
            _count(self._name, event_type, outcome)
            rows.append(self._row(call, clock, (event_type, agent, outcome, detail, ms)))
            if error is not None:
                refusals.append(error)
        self._record(clock, rows)
        vetoes: list[VisibilityError] = [e for e in refusals if isinstance(e, VetoedError)]
        first = vetoes or refusals
        return first[0] if first else None

    def _row(self, call: WriteCall, clock: Clock, verdict: tuple[Any, ...]) -> tuple[Any, ...]:
        at = clock.now().timestamp()
        return (at, call.trace_id, call.idem_key, self._name, call.op, *verdict)

    def _record(self, clock: Clock, rows: list[tuple[Any, ...]]) -> None:
        if self._verdicts_log is None:
            self._verdicts_log = verdict_log(self._root, self._name, clock)
        try:
            self._verdicts_log.add(rows)
        except StorageError as error:  # observability: the write's fate does not hang on it
            _log.warning("resource %s: verdicts not stored: %s", self._name, error)

    def _judge(
        self, event_type: str, agent: str, rule: GateRule, answer: Any
    ) -> tuple[str, str, VisibilityError | None]:
        """(the outcome's metric label, its detail, the error refusing the write or None)."""
        if answer is None:
            return "allowed", "", None
        if isinstance(answer, Veto):
            reason = answer.reason[:2000]
            return "vetoed", reason, VetoedError(self._name, event_type, agent, reason)
        if isinstance(answer, ValidatorFailedError):
            failure, detail = answer.failure, answer.detail
        elif isinstance(answer, TimeoutError):
            failure, detail = "timeout", f"no verdict within {rule.deadline_s}s"
        else:  # not an answer of RayValidators: a bug of the fake or the transport
            failure, detail = "raised", f"{type(answer).__name__}: {answer}"[:300]
        failed = ValidatorFailedError(self._name, event_type, agent, failure, detail)
        return failure, detail, (None if rule.allow_on_failure else failed)

    def _refuse(
        self, core: ResourceCore, call: WriteCall, error: VisibilityError
    ) -> WriteResult[Any]:
        reason = "vetoed" if isinstance(error, VetoedError) else "validator_failed"
        at = core._clock.now().isoformat()
        core.log.commit(core.incarnation, [], [rejection_of(call, Refused(error, reason), at)])
        return WriteResult(core.version, error=error)


async def _timed(clock: Clock, question: Awaitable[Any], deadline_s: float) -> tuple[Any, float]:
    """The question's answer (or the exception it ended with) and how long it took, in
    ms, bounded by ``deadline_s``."""
    start = clock.monotonic()
    try:
        answer = await asyncio.wait_for(question, deadline_s)
    except Exception as error:
        answer = error
    return answer, (clock.monotonic() - start) * 1000


def _count(resource: str, event_type: str, outcome: str) -> None:
    counter(
        "visibility_verdicts_total", "Within-transaction validator answers by outcome",
        ("resource", "event_type", "outcome"),
    ).inc(1, tags={"resource": resource, "event_type": event_type, "outcome": outcome})  # fmt: skip
