"""``agentcast budget``: the budget's books and its durable log from a terminal, against a
running cluster (``--address``, default ``auto``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from runtime import lookup

from .._budget.client import BUDGET_ACTOR, BudgetHandle
from .._budget.status import BudgetStatus
from .._system import DEFAULT_NAMESPACE, System
from .connect import connect
from .output import emit


def add_command(sub: Any) -> None:
    """Add ``budget`` to the ``agentcast`` parser."""
    command = sub.add_parser("budget", help="the budget's ledgers, spend, breakers and log")
    command.add_argument("--address", default="auto", help="Ray address (default auto)")
    command.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    command.add_argument("--storage", default=None, help="storage folder of the system")
    command.add_argument("--events", action="store_true", help="print the durable log")
    command.add_argument("--after", type=int, default=0, help="log events after this position")
    command.add_argument("--limit", type=int, default=100, help="log events to print")
    command.add_argument("--json", action="store_true", help="print JSON")


def run_command(args: argparse.Namespace) -> int:
    """Print the budget's status (or its log); the exit status (1: no budget actor)."""
    connect(args.address)
    system = System.connect(args.address, storage=args.storage, namespace=args.namespace)
    try:
        budget = BudgetHandle(lookup(BUDGET_ACTOR, system.namespace))
        if args.events:
            events = budget.events(args.after, args.limit)
            if args.json:  # one document: the list of events
                emit(json.dumps([dataclasses.asdict(e) for e in events], sort_keys=True))
            for event in [] if args.json else events:
                emit(f"{event.seq} {event.kind} {json.dumps(event.data)}")
        else:
            status = budget.status()
            if args.json:
                emit(json.dumps(dataclasses.asdict(status), sort_keys=True, default=str))
            else:
                print_status(status)
    finally:
        system.shutdown()  # disconnects from Ray only if this command connected
    return 0


def print_status(status: BudgetStatus) -> None:
    """Print the budget's status, one fact per line."""
    emit(f"incarnation {status.incarnation}; events {status.events} ({status.replayed} replayed)")
    emit(f"open grants: {status.open_grants}; late settles: {status.late_settles}")
    for row in status.ledgers:
        emit(
            f"cap {row.scope}:{row.key} {row.dimension} spent by {row.spender}: "
            f"{row.committed:g} committed, {row.outstanding:g} outstanding of {row.cap:g}"
        )
    for spend in status.spent:
        amounts = ", ".join(f"{k} {v:g}" for k, v in sorted(spend.amounts.items()))
        emit(f"spent run {spend.run} agent {spend.agent} on {spend.target or '-'}: {amounts}")
    for dependency, view in sorted(status.breakers.items()):
        emit(f"breaker {dependency}: {view.status.value}")
    for incident in status.incidents:
        emit(
            f"incident {incident.fingerprint} on {incident.dependency}: "
            f"{incident.reports} reports by {', '.join(incident.agents)}"
        )
    retries = ", ".join(f"{k} {v}" for k, v in sorted(status.retries.items())) or "none"
    emit(f"retries: {retries}")
