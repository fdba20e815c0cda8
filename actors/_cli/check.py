"""``agentcast check``: the field report's production checklist against a live system.

It joins the running Ray cluster, finds the namespaces that hold agentcast actors (or
takes ``--namespace``), asks each actor what it is (``Facts``), runs the checks of
``actors._cli.checklist`` and prints one line per item with its evidence, then a severity
summary; ``--json`` prints one JSON document instead. The exit status is 1 if any item
failed, 2 if there was nothing to check.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import ray

from runtime import ConfigurationError

from .checklist import EVENTS_ACTOR, LOCKS_ACTOR, Facts, Finding, run_checks, summary
from .cluster import is_agentcast
from .connect import connect
from .output import emit

_ASK_S = 30.0  # how long one actor may take to answer before it counts as unreachable


def add_command(sub: Any) -> None:
    """Add ``check`` to the ``agentcast`` parser."""
    command = sub.add_parser("check", help="the production checklist against a live system")
    command.add_argument("--address", default="auto", help="Ray address (default auto)")
    command.add_argument("--namespace", default=None, help="default: every agentcast one")
    command.add_argument("--json", action="store_true", help="print one JSON document")
    command.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run ``agentcast check``; the exit status."""
    try:
        connect(args.address)
    except ConfigurationError as error:
        print(f"agentcast check: {error}", file=sys.stderr)
        return 2
    reports = [check_namespace(ns) for ns in _namespaces(args.namespace)]
    if args.json:
        emit(json.dumps({"systems": reports}, indent=2, sort_keys=True))
    else:
        for report in reports:
            _print_report(report)
    if not reports:
        if not args.json:
            where = f"in namespace {args.namespace!r}" if args.namespace else "found"
            print(f"no agentcast actor {where}" + ("" if args.namespace else " (start a system)"))
        return 2
    return 1 if any(r["summary"]["FAIL"] for r in reports) else 0


def check_namespace(namespace: str) -> dict[str, Any]:
    """The checklist of one namespace: its findings and their summary, as plain data."""
    findings = run_checks(gather(namespace))
    return {
        "namespace": namespace,
        "checks": [f.to_dict() for f in findings],
        "summary": summary(findings),
    }


def _namespaces(asked: str | None) -> list[str]:
    named = ray.util.list_named_actors(all_namespaces=True)
    found = {e["namespace"] for e in named if is_agentcast(e["name"])}
    return sorted(found if asked is None else found & {asked})


def _ask(namespace: str, actor: str, method: str, *args: Any) -> Any:
    """One call to a named actor; ``{"error": ...}`` if it does not answer."""
    try:
        handle = ray.get_actor(actor, namespace=namespace)
        return ray.get(getattr(handle, method).remote(*args), timeout=_ASK_S)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error)[:200]}"}


def gather(namespace: str) -> Facts:
    """What the actors of ``namespace`` say about themselves."""
    named = ray.util.list_named_actors(all_namespaces=True)
    actors = frozenset(e["name"] for e in named if e["namespace"] == namespace)
    facts = Facts(namespace=namespace, actors=actors)
    for name in sorted(a for a in actors if a.startswith("resource:")):
        facts.resources[name.removeprefix("resource:")] = _ask(namespace, name, "audit")
    for name in sorted(a for a in actors if a.startswith("agent:")):
        group = name.split(":")[1]
        facts.agents.setdefault(group, []).append(_ask(namespace, name, "ping"))
    if "supervisor" in actors:
        facts.supervisor = _ask(namespace, "supervisor", "audit")
    if "budget" in actors:
        facts.budget = _budget(namespace)
    for other in (LOCKS_ACTOR, EVENTS_ACTOR):
        if other in actors:  # their own ``describe()``, when they have one
            said = _ask(namespace, other, "describe")
            facts.described[other] = said if isinstance(said, dict) else {}
    return facts


def _budget(namespace: str) -> dict[str, Any]:
    described = _ask(namespace, "budget", "describe")
    status = _ask(namespace, "budget", "status")
    for answer in (described, status):
        if isinstance(answer, dict) and "error" in answer and "policy" not in answer:
            return answer
    return {"policy": described["policy"], "status": status}


def _print_report(report: dict[str, Any]) -> None:
    print(f"CHECK agentcast coordination: namespace {report['namespace']}")
    for item in report["checks"]:
        finding = Finding(**item)
        print(f"  {finding.status:<4}  [{finding.severity}] {finding.name}: {finding.evidence}")
    counts = report["summary"]
    failed = ", ".join(f"{n} {s}" for s, n in counts["failed_by_severity"].items())
    print(
        f"  summary: {counts['PASS']} PASS, {counts['FAIL']} FAIL"
        f"{f' ({failed})' if failed else ''}, {counts['WARN']} WARN"
    )
