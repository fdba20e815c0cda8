"""``agentcast status``, ``escalations``, ``answer`` and ``kill``: the supervisor from a
terminal, against a running cluster (``--address``, default ``auto``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._supervisor.handle import Supervisor, supervisor_actor
from .._system import DEFAULT_NAMESPACE, System


def add_commands(sub: Any) -> None:
    """Add the supervisor's subcommands to the ``agentcast`` parser."""
    for name, text in (
        ("status", "subtasks, replicas, open escalations and stalled stages"),
        ("escalations", "subtasks escalated to a human, waiting for an answer"),
        ("answer", "answer an escalated subtask with an output or a rejection"),
        ("kill", "the kill switch: fence an agent everywhere and kill its replicas"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--address", default="auto", help="Ray address (default auto)")
        command.add_argument("--namespace", default=DEFAULT_NAMESPACE)
        command.add_argument("--storage", default=None, help="storage folder of the system")
        if name == "answer":
            command.add_argument("subtask", help="the escalated subtask's id")
            group = command.add_mutually_exclusive_group(required=True)
            group.add_argument("--output", help="the output, as JSON of the expected model")
            group.add_argument("--reject", help="reject it with this reason")
        if name == "kill":
            command.add_argument("agent", help="the agent's name")


def run_command(args: argparse.Namespace) -> int:
    """Run one of the supervisor's subcommands; the exit status."""
    system = System.connect(args.address, storage=args.storage, namespace=args.namespace)
    try:
        supervisor = Supervisor(supervisor_actor(system.namespace), system.trace_id)
        if args.command == "status":
            print_status(supervisor.status())
        elif args.command == "escalations":
            for row in supervisor.escalations():
                print(f"{row['subtask_id']}  to {row['handler']}  {row['reason']}: {row['detail']}")
        elif args.command == "answer":
            output = None if args.output is None else json.loads(args.output)
            print(supervisor.answer(args.subtask, output, reject=args.reject))
        elif args.command == "kill":
            print(json.dumps(system.kill(args.agent), sort_keys=True))
    finally:
        system.shutdown()  # disconnects from Ray only if this command connected
    return 0


def print_status(overview: dict[str, Any]) -> None:
    """Print the supervisor's overview, one fact per line."""
    live = ", ".join(f"{k} {v}" for k, v in sorted(overview["live"].items())) or "none"
    stored = ", ".join(f"{k} {v}" for k, v in sorted(overview["stored"].items())) or "none"
    print(f"subtasks in flight: {live}")
    print(f"subtasks stored: {stored}")
    for replica, load in overview["replicas"].items():
        print(f"replica {replica}: {load} busy")
    for group in overview["failed_groups"]:
        print(f"agent group {group}: failed (restart intensity exceeded)")
    print(f"open escalations: {overview['open_escalations']}")
    for stall in overview["stalls"]:
        print(
            f"stall: stage {stall['stage']} silent for {stall['silent_s']:.1f}s "
            f"(window {stall['window_s']:.1f}s)"
        )
