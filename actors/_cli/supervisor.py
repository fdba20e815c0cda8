"""``agentcast escalations``, ``answer`` and ``kill``: the supervisor from a terminal,
against a running cluster (``--address``, default ``auto``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._supervisor.handle import Supervisor, supervisor_actor
from .._system import DEFAULT_NAMESPACE, System
from .connect import connect
from .output import emit


def add_commands(sub: Any) -> None:
    """Add the supervisor's subcommands to the ``agentcast`` parser."""
    for name, text in (
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
    connect(args.address)
    system = System.connect(args.address, storage=args.storage, namespace=args.namespace)
    try:
        supervisor = Supervisor(supervisor_actor(system.namespace), system.trace_id)
        if args.command == "escalations":
            for row in supervisor.escalations():
                emit(f"{row['subtask_id']}  to {row['handler']}  {row['reason']}: {row['detail']}")
        elif args.command == "answer":
            output = None if args.output is None else json.loads(args.output)
            emit(supervisor.answer(args.subtask, output, reject=args.reject))
        elif args.command == "kill":
            emit(json.dumps(system.kill(args.agent), sort_keys=True))
    finally:
        system.shutdown()  # disconnects from Ray only if this command connected
    return 0
