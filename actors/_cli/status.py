"""``agentcast status``: every agentcast system on a running cluster, one part at a time.

A system is a namespace holding agentcast's actors; the command finds them itself
(``--namespace`` narrows to one). Each part of a system is one section: a function that
collects it (None when the system has no such part: shown as absent, never an error) and
one that renders it as lines. An actor that is dead, restarting or silent is a line that
says so, not a traceback. Adding a part (leases, conflicts, ...) is adding one section.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime import ConfigurationError

from .._conflicts.messages import ConflictSummary
from .cluster import ActorRow, agentcast_actors, ask, live_namespaces
from .connect import connect
from .output import emit

Actors = dict[str, ActorRow]


@dataclass(frozen=True, slots=True)
class Section:
    """One part of a system: its key in the JSON, how to collect it from the system's
    actors (None: the system has none), and how to render what was collected."""

    key: str
    collect: Callable[[Actors], Any]
    render: Callable[[Any], list[str]]


def _unavailable(row: ActorRow, error: ConfigurationError | None = None) -> dict[str, Any]:
    """An actor that cannot answer: its state and, if it was asked, why it did not."""
    return {"state": row.state, "restarts": row.restarts, "error": str(error) if error else None}


def _asked(row: ActorRow, method: str) -> dict[str, Any]:
    if not row.alive:
        return _unavailable(row)
    try:
        return {"state": row.state, "restarts": row.restarts, **_plain(ask(row, method))}
    except ConfigurationError as error:
        return _unavailable(row, error)


def _plain(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    plain: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return plain


# -- resources --------------------------------------------------------------------------


def collect_resources(actors: Actors) -> list[dict[str, Any]] | None:
    rows = [row for name, row in actors.items() if name.startswith("resource:")]
    found = []
    for row in rows:
        status = _asked(row, "status")
        status.pop("queued", None)
        found.append({"name": row.name.removeprefix("resource:"), **status})
    return found or None


def render_resources(found: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in found:
        if r.get("error") is not None or "version" not in r:
            lines.append(f"resource {r['name']}: {_down(r)}")
            continue
        writers = ", ".join(r["writers"]) if r["writers"] is not None else "anyone"
        refused = ", ".join(f"{k} {v}" for k, v in sorted(r["rejections"].items())) or "none"
        lines.append(
            f"resource {r['name']}: version {r['version']} (= writes), incarnation "
            f"{r['incarnation']}, restarts {r['restarts']}; writers: {writers}; refused: {refused}"
        )
    return lines


def _down(found: dict[str, Any]) -> str:
    why = f": {found['error']}" if found.get("error") else ""
    return f"{found['state'].lower()} (restarts {found['restarts']}){why}"


# -- agents -----------------------------------------------------------------------------


def collect_agents(actors: Actors) -> list[dict[str, Any]] | None:
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for name, row in actors.items():
        if name.startswith("agent:"):
            agent, _, replica = name.removeprefix("agent:").rpartition(":")
            by_agent.setdefault(agent, []).append(
                {"replica": int(replica), "state": row.state, "restarts": row.restarts,
                 "repr": row.repr}
            )  # fmt: skip
    _collect_pooled(actors, by_agent)
    return [
        {"name": agent, "replicas": sorted(replicas, key=lambda r: r["replica"])}
        for agent, replicas in sorted(by_agent.items())
    ] or None


def _collect_pooled(actors: Actors, by_agent: dict[str, list[dict[str, Any]]]) -> None:
    """Add the pooled agents of every host, each with the host it runs on (a host that
    does not answer shows none of its agents)."""
    for name, row in sorted(actors.items()):
        if not name.startswith("agent-host:") or not row.alive:
            continue
        with contextlib.suppress(ConfigurationError):
            for info in ask(row, "members"):
                by_agent.setdefault(info["name"], []).append(
                    {"replica": info["replica"], "state": row.state, "restarts": row.restarts,
                     "host": name}
                )  # fmt: skip


def render_agents(found: list[dict[str, Any]]) -> list[str]:
    lines = []
    for agent in found:
        replicas = agent["replicas"]
        alive = sum(r["state"] == "ALIVE" for r in replicas)
        others = "".join(
            f"; replica {r['replica']} {r['state'].lower()}"
            for r in replicas
            if r["state"] != "ALIVE"
        )
        hosts = sorted({r["host"] for r in replicas if "host" in r})
        where = f"; pooled on {', '.join(hosts)}" if hosts else ""
        lines.append(
            f"agent {agent['name']}: {len(replicas)} replicas, {alive} alive{others}{where}"
        )
    return lines


# -- supervisor and budget --------------------------------------------------------------


def collect_supervisor(actors: Actors) -> dict[str, Any] | None:
    row = actors.get("supervisor")
    return None if row is None else _asked(row, "overview")


def render_supervisor(found: dict[str, Any]) -> list[str]:
    if "live" not in found:
        return [f"supervisor: {_down(found)}"]
    live = ", ".join(f"{k} {v}" for k, v in sorted(found["live"].items())) or "none"
    stored = ", ".join(f"{k} {v}" for k, v in sorted(found["stored"].items())) or "none"
    lines = [f"supervisor: subtasks in flight: {live}; stored: {stored}"]
    lines += [f"  replica {name}: {load} busy" for name, load in found["replicas"].items()]
    lines += [
        f"  agent group {g}: failed (restart intensity exceeded)" for g in found["failed_groups"]
    ]
    lines.append(f"  open escalations: {found['open_escalations']}")
    lines += [
        f"  stall: stage {s['stage']} silent for {s['silent_s']:.1f}s (window {s['window_s']:.1f}s)"
        for s in found["stalls"]
    ]
    return lines


def collect_budget(actors: Actors) -> dict[str, Any] | None:
    row = actors.get("budget")
    return None if row is None else _asked(row, "status")


def render_budget(found: dict[str, Any]) -> list[str]:
    if "incarnation" not in found:
        return [f"budget: {_down(found)}"]
    lines = [
        f"budget: incarnation {found['incarnation']}, {found['events']} events, "
        f"{found['open_grants']} open grants"
    ]
    for spend in found["spent"]:
        amounts = ", ".join(f"{k} {v:g}" for k, v in sorted(spend["amounts"].items()))
        lines.append(f"  spent by {spend['agent']} on {spend['target'] or '-'}: {amounts}")
    lines += [
        f"  breaker {dep}: {view['status']}" for dep, view in sorted(found["breakers"].items())
    ]
    return lines


# -- leases and conflicts ---------------------------------------------------------------


def collect_leases(actors: Actors) -> dict[str, Any] | None:
    row = actors.get("locks")
    if row is None:
        return None
    if not row.alive:
        return _unavailable(row)
    try:
        status = ask(row, "status")
    except ConfigurationError as error:
        return _unavailable(row, error)
    return {"state": row.state, "restarts": row.restarts, **_plain(status), "lines": status.lines()}


def render_leases(found: dict[str, Any]) -> list[str]:
    if "lines" not in found:
        return [f"locks: {_down(found)}"]
    head, *alerts = found["lines"]
    return [head, *(f"  {alert}" for alert in alerts)]


def collect_conflicts(actors: Actors) -> dict[str, Any] | None:
    """Conflicts of every resource that answers, by the level that settled them."""
    rows: list[tuple[int | None, str | None, int]] = []
    for name, row in actors.items():
        if name.startswith("resource:") and row.alive:
            with contextlib.suppress(ConfigurationError):  # its own line says why
                rows.extend(tuple(r) for r in ask(row, "conflict_counts"))
    summary = ConflictSummary.of(rows)
    return _plain(summary) if summary.total else None


def render_conflicts(found: dict[str, Any]) -> list[str]:
    shares = ", ".join(
        f"level {level} {n} ({found['share'][level]:.0%})" for level, n in found["by_level"].items()
    )
    return [f"conflicts: {found['total']}, {found['open']} open; settled at {shares or '-'}"]


# -- subscribers ------------------------------------------------------------------------


def collect_subscribers(actors: Actors) -> dict[str, Any] | None:
    """Each consumer group's checkpoint and lag per resource, from the dispatcher."""
    row = actors.get("events")
    if row is None:
        return None
    if not row.alive:
        return _unavailable(row)
    try:
        partitions = ask(row, "status")
    except ConfigurationError as error:
        return _unavailable(row, error)
    plain = json.loads(json.dumps(partitions, default=str))
    return {"state": row.state, "restarts": row.restarts, "partitions": plain}


def render_subscribers(found: dict[str, Any]) -> list[str]:
    if "partitions" not in found:
        return [f"events: {_down(found)}"]
    lines = [f"events: {len(found['partitions'])} partitions, restarts {found['restarts']}"]
    for p in found["partitions"]:
        error = f"; failing: {p['error']}" if p["error"] else ""
        dead = f", dead letters {p['dead_letters']}" if p.get("dead_letters") else ""
        lines.append(
            f"  subscriber {p['subscriber']} on {p['resource']}: checkpoint {p['checkpoint']} "
            f"of {p['last_seq']}, lag {p['lag']}{dead}{error}"
        )
    return lines


SECTIONS: tuple[Section, ...] = (
    Section("resources", collect_resources, render_resources),
    Section("agents", collect_agents, render_agents),
    Section("supervisor", collect_supervisor, render_supervisor),
    Section("budget", collect_budget, render_budget),
    Section("leases", collect_leases, render_leases),
    Section("conflicts", collect_conflicts, render_conflicts),
    Section("subscribers", collect_subscribers, render_subscribers),
)
"""The parts of a system, in the order they are shown."""


def system_status(namespace: str, actors: Actors) -> dict[str, Any]:
    """Every section of the system in ``namespace``: what it collected, or None."""
    return {"namespace": namespace, **{s.key: s.collect(actors) for s in SECTIONS}}


def render(status: dict[str, Any]) -> list[str]:
    """The lines of one system's status; a missing part is one line saying so."""
    lines = [f"namespace {status['namespace']}"]
    for section in SECTIONS:
        found = status[section.key]
        rendered = [f"no {section.key}"] if found is None else section.render(found)
        lines += [f"  {line}" for line in rendered]
    return lines


# -- the command ------------------------------------------------------------------------


def add_command(sub: Any) -> None:
    """Add ``status`` to the ``agentcast`` parser."""
    command = sub.add_parser("status", help="every agentcast system on the cluster, part by part")
    command.add_argument("--address", default="auto", help="Ray address (default: auto)")
    command.add_argument("--namespace", default=None, help="only this system (default: all)")
    command.add_argument("--json", action="store_true", help="print one JSON document")


def run_command(args: argparse.Namespace) -> int:
    """Print the status of every system (or of ``--namespace``).

    Raises:
        ConfigurationError: no cluster, or no agentcast system on it (or in the
            namespace asked for).
    """
    connect(args.address)
    actors = agentcast_actors()
    if args.namespace is not None:
        if args.namespace not in actors:
            known = ", ".join(live_namespaces(actors)) or "none"
            raise ConfigurationError(
                f"no agentcast actors in namespace {args.namespace!r} (agentcast namespaces "
                f"on this cluster: {known})"
            )
        namespaces = [args.namespace]
    else:
        namespaces = live_namespaces(actors)
        if not namespaces:
            raise ConfigurationError("no agentcast system runs on this cluster")
    systems = [system_status(ns, actors[ns]) for ns in namespaces]
    if args.json:
        emit(json.dumps({"systems": systems}, sort_keys=True))
    else:
        emit("\n".join(line for status in systems for line in render(status)))
    return 0
