"""The field report's production checklist, as small functions over what a live system
says about itself (``Facts``, gathered by ``actors._cli.check``).

Each check takes the facts and returns one ``Finding``: its name, severity, PASS / FAIL /
WARN and the evidence. ``CHECKS`` lists them in the order they print; a new part of the
system (a locks actor's lease policy, the ownership ladder) adds its check as one more
function there. A part that is not running is a FAIL that names what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOCKS_ACTOR = "locks"
"""The name the locks actor (leases, lock order, deadlock detection) runs under."""
EVENTS_ACTOR = "events"
"""The name the events actor (committed-state events, subscriptions) runs under."""
SEVERITIES = ("critical", "high", "medium", "low")


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the checklist."""

    name: str
    severity: str
    status: str  # PASS, FAIL or WARN
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "severity": self.severity,
            "status": self.status,
            "evidence": self.evidence,
        }


@dataclass(slots=True)
class Facts:
    """What the actors of one namespace said (an ``error`` key: they did not answer).

    Attributes:
        namespace: the Ray namespace of the system.
        actors: every named actor of the namespace.
        resources: each resource's ``audit()``, by name.
        agents: each agent group's replicas' ``ping()``, by group.
        supervisor: the supervisor's ``audit()``, None if it does not run.
        budget: the budget's ``{"policy", "status"}``, None if it does not run.
        described: what other actors (locks, events) said of themselves, by actor name.
    """

    namespace: str
    actors: frozenset[str] = frozenset()
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    supervisor: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    described: dict[str, dict[str, Any]] = field(default_factory=dict)


Check = Callable[[Facts], Finding]


def _failed(facts: dict[str, dict[str, Any]]) -> list[str]:
    return [f"{name}: {info['error']}" for name, info in facts.items() if "error" in info]


def resources_mapped(facts: Facts) -> Finding:
    name, severity = "shared resources mapped", "high"
    if not facts.resources:
        return Finding(name, severity, "WARN", f"no resource in namespace {facts.namespace!r}")
    writers = {w for r in facts.resources.values() for w in r.get("writers") or ()}
    mapped = "; ".join(
        f"{n} <- {', '.join(r['writers']) if r.get('writers') is not None else 'ANYONE'}"
        for n, r in sorted(facts.resources.items())
        if "error" not in r
    )
    head = f"{len(facts.resources)} resources, {len(writers)} writers with write access: "
    open_to_all = [n for n, r in facts.resources.items() if "error" not in r and not r["writers"]]
    if problems := _failed(facts.resources):
        return Finding(name, severity, "FAIL", head + "; ".join(problems))
    if open_to_all:
        return Finding(
            name,
            severity,
            "FAIL",
            f"{head}{mapped} ({', '.join(open_to_all)} declares no writers: any agent may write)",
        )
    return Finding(name, severity, "PASS", head + mapped)


def single_writer(facts: Facts) -> Finding:
    name, severity = "single writer per resource", "critical"
    if not facts.resources:
        return Finding(name, severity, "WARN", "no resource to check")
    if problems := _failed(facts.resources):
        return Finding(name, severity, "FAIL", "unreachable: " + "; ".join(problems))
    each = ", ".join(f"{n} v{r['version']}" for n, r in sorted(facts.resources.items()))
    return Finding(
        name,
        severity,
        "PASS",
        f"each resource is one actor applying writes in order, one version at a time: {each}",
    )


def idempotent_writes(facts: Facts) -> Finding:
    name, severity = "idempotent writes", "critical"
    live = {n: r for n, r in facts.resources.items() if "error" not in r}
    total = sum(sum(r["keys"].values()) for r in live.values())
    if not total:
        return Finding(name, severity, "WARN", "no write yet to check")
    risky = {n: r["keys"].get("random", 0) for n, r in live.items() if r["keys"].get("random")}
    if risky:
        where = ", ".join(f"{n}: {k}" for n, k in sorted(risky.items()))
        return Finding(
            name,
            severity,
            "WARN",
            f"every write carries a key, but {sum(risky.values())} "
            f"of the last {total} were made outside a task with a one-off key ({where}): "
            "a caller that retries one after an error may apply it twice; "
            "pass Write(key=...) there",
        )
    return Finding(
        name,
        severity,
        "PASS",
        f"every one of the last {total} writes carries a key "
        "derived from its task or given by the caller: a retry applies it once",
    )


def _locks_item(facts: Facts, name: str, severity: str, key: str, missing: str) -> Finding:
    if LOCKS_ACTOR not in facts.actors:
        return Finding(
            name,
            severity,
            "FAIL",
            f"no {LOCKS_ACTOR} actor in namespace {facts.namespace!r}: {missing}",
        )
    said = facts.described.get(LOCKS_ACTOR, {})
    if key not in said:
        return Finding(
            name, severity, "WARN", f"the {LOCKS_ACTOR} actor runs but does not describe its {key}"
        )
    if said[key] is None:
        return Finding(name, severity, "FAIL", f"the {LOCKS_ACTOR} actor does not enforce it")
    return Finding(name, severity, "PASS", str(said[key]))


def leases(facts: Facts) -> Finding:
    return _locks_item(
        facts, "leases with TTL", "high", "leases", "work that spans resources holds no lease"
    )


def lock_order(facts: Facts) -> Finding:
    return _locks_item(
        facts, "global lock order enforced", "high", "order", "nothing orders the keys agents take"
    )


def deadlocks(facts: Facts) -> Finding:
    return _locks_item(
        facts,
        "deadlock detection and wait alerting",
        "critical",
        "deadlocks",
        "no deadlock detection alerting configured",
    )


def declared_events(facts: Facts) -> dict[str, list[str]]:
    """Each declared event type and its subscribers: the events actor's ``describe()``
    ``subscribers`` (``{type: [agent, ...]}``, every declared type, an empty list for one
    nobody subscribes to), and the types a resource's ``audit()`` lists as ``emits``."""
    said = facts.described.get(EVENTS_ACTOR, {}).get("subscribers") or {}
    types = {str(t): sorted(str(a) for a in agents) for t, agents in said.items()}
    for audit in facts.resources.values():
        for emitted in audit.get("emits") or ():
            types.setdefault(str(emitted), [])
    return types


def event_sync(facts: Facts) -> Finding:
    """Every declared event type reaches a subscriber. A system that declares no event
    type passes with that said: its agents share state only through resources they read,
    which is what the single-writer items check. Declared types with no events actor, or
    with nobody subscribed, fail."""
    name, severity = "event-driven sync", "medium"
    types = declared_events(facts)
    running = EVENTS_ACTOR in facts.actors
    if running and "subscribers" not in facts.described.get(EVENTS_ACTOR, {}):
        return Finding(name, severity, "WARN", "the events actor does not list its subscribers")
    if not types:
        return Finding(
            name, severity, "PASS",
            "no events declared: no event type to subscribe to; agents share state only "
            "through the resources they read and write",
        )  # fmt: skip
    listed = "; ".join(f"{t} -> {', '.join(a) or 'nobody'}" for t, a in sorted(types.items()))
    if not running:
        return Finding(
            name, severity, "FAIL",
            f"event types declared ({', '.join(sorted(types))}) but no {EVENTS_ACTOR} actor in "
            f"namespace {facts.namespace!r}: nobody hears of them",
        )  # fmt: skip
    unheard = sorted(t for t, agents in types.items() if not agents)
    if unheard:
        return Finding(
            name, severity, "FAIL", f"event types with no subscriber: {', '.join(unheard)} "
            f"(subscribers per event type: {listed})",
        )  # fmt: skip
    return Finding(name, severity, "PASS", f"subscribers per event type: {listed}")


def kill_switch(facts: Facts) -> Finding:
    name, severity = "kill switch per agent", "high"
    if not facts.agents:
        return Finding(name, severity, "WARN", f"no agent in namespace {facts.namespace!r}")
    down = [
        f"{group}: {r['error']}" for group, rs in facts.agents.items() for r in rs if "error" in r
    ]
    if down:
        return Finding(name, severity, "FAIL", "replicas that do not answer: " + "; ".join(down))
    replicas = sum(len(rs) for rs in facts.agents.values())
    return Finding(
        name,
        severity,
        "PASS",
        f"{len(facts.agents)} agents, {replicas} replicas, "
        "each with a writer epoch and token that `agentcast kill <agent>` fences "
        "at every resource",
    )


def contention_metrics(facts: Facts) -> Finding:
    name, severity = "lock-contention and conflict metrics", "medium"
    conflicts = (
        'conflicts are counted (ray_agentcast_resource_writes_total{outcome="ConflictError"})'
    )
    if LOCKS_ACTOR not in facts.actors:
        return Finding(
            name,
            severity,
            "FAIL",
            f"{conflicts}; lock contention is not: "
            f"no {LOCKS_ACTOR} actor in namespace {facts.namespace!r}",
        )
    return Finding(name, severity, "PASS", f"{conflicts}; lock waits by the {LOCKS_ACTOR} actor")


def _budget_of(facts: Facts, name: str, severity: str) -> Finding | dict[str, Any]:
    """The budget's facts, or the FAIL of a budget that is missing or silent."""
    if facts.budget is None:
        return Finding(
            name,
            severity,
            "FAIL",
            f"no budget actor in namespace "
            f"{facts.namespace!r}: token spend and retries are not metered",
        )
    if "error" in facts.budget:
        return Finding(
            name, severity, "FAIL", f"the budget actor does not answer: {facts.budget['error']}"
        )
    return facts.budget


def budgets(facts: Facts) -> Finding:
    name, severity = "token and cost budgets declared", "critical"
    budget = _budget_of(facts, name, severity)
    if isinstance(budget, Finding):
        return budget
    caps = {
        f"{row.scope} {row.key} {row.dimension} {row.cap:g}" for row in budget["status"].ledgers
    } | {
        f"{c.scope.kind.value} {c.scope.key} {c.dimension.value} {c.cap:g}"
        for c in budget["policy"].limits
    }
    if not caps:
        return Finding(
            name,
            severity,
            "FAIL",
            "the budget actor runs with no cap: spend is metered but unbounded",
        )
    return Finding(name, severity, "PASS", "caps: " + "; ".join(sorted(caps)))


def retries_and_breakers(facts: Facts) -> Finding:
    name, severity = "retry budget and breakers", "high"
    budget = _budget_of(facts, name, severity)
    if isinstance(budget, Finding):
        return budget
    policy, status = budget["policy"], budget["status"]
    retry, breaker = policy.retry_budget, policy.breaker
    known = ", ".join(f"{d} {v.status.value}" for d, v in sorted(status.breakers.items()))
    return Finding(
        name,
        severity,
        "PASS",
        f"retries per run: {retry.ratio:g} per first attempt "
        f"+ {retry.min_retries_per_window} per {retry.window.total_seconds():g} s; "
        f"breakers open after {breaker.failure_threshold} failures in "
        f"{breaker.failure_window.total_seconds():g} s; known: {known or 'none yet'}",
    )


def deadlines_and_schemas(facts: Facts) -> Finding:
    name, severity = "deadlines and schemas on every subtask", "critical"
    if facts.supervisor is None or "error" in facts.supervisor:
        why = "no supervisor" if facts.supervisor is None else "the supervisor does not answer"
        return Finding(
            name,
            severity,
            "FAIL",
            f"{why} in namespace {facts.namespace!r}: "
            "delegated work is not held to a deadline or an output schema",
        )
    rows = facts.supervisor["submissions"]
    if not rows:
        return Finding(name, severity, "WARN", "no subtask submitted since the supervisor started")
    loose = {t: r["no_schema"] for t, r in rows.items() if r["no_schema"]}
    total = sum(r["subtasks"] for r in rows.values())
    if loose:
        where = ", ".join(f"{t}: {n} of {rows[t]['subtasks']}" for t, n in sorted(loose.items()))
        return Finding(
            name, severity, "FAIL", f"subtasks without an output schema (expect=None): {where}"
        )
    by_agent: dict[str, float] = {}  # a target is an agent or one replica, "name:i"
    for target, row in rows.items():
        agent = target.split(":")[0]
        by_agent[agent] = max(by_agent.get(agent, 0), row["running_s"])
    longest = ", ".join(f"{a} {s:g} s" for a, s in sorted(by_agent.items()))
    return Finding(
        name,
        severity,
        "PASS",
        f"{total} subtasks to {len(by_agent)} agents, each with "
        f"a schema and a running deadline (longest: {longest})",
    )


def sampling(facts: Facts) -> Finding:
    name, severity = "end-to-end sampling against ground truth", "low"
    samplers = (facts.supervisor or {}).get("samplers") or {}
    if not samplers:
        return Finding(
            name,
            severity,
            "WARN",
            "no stage's outputs are sampled against ground truth (supervisor.sample)",
        )
    rates = ", ".join(f"{s} at {r:.0%}" for s, r in samplers.items())
    return Finding(name, severity, "PASS", f"sampled: {rates}")


CHECKS: list[Check] = [
    resources_mapped, single_writer, idempotent_writes, leases, lock_order, deadlocks,
    event_sync, kill_switch, contention_metrics, budgets, retries_and_breakers,
    deadlines_and_schemas, sampling,
]  # fmt: skip
"""The checklist, in print order: a new check is one more function here."""


def run_checks(facts: Facts, checks: list[Check] | None = None) -> list[Finding]:
    """Every check's finding; a check that raises is a FAIL naming the error."""
    found = []
    for check in checks or CHECKS:
        try:
            found.append(check(facts))
        except Exception as error:
            found.append(Finding(check.__name__, "high", "FAIL", f"the check failed: {error!r}"))
    return found


def summary(findings: list[Finding]) -> dict[str, Any]:
    """Counts by status, and failures by severity."""
    counts = {s: sum(f.status == s for f in findings) for s in ("PASS", "FAIL", "WARN")}
    failed = {s: sum(f.status == "FAIL" and f.severity == s for f in findings) for s in SEVERITIES}
    return {**counts, "failed_by_severity": {s: n for s, n in failed.items() if n}}
