"""The ``agentcast`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from runtime import ConfigurationError, StorageError

from .output import document_only, progress


def _version() -> str:
    try:
        return metadata.version("agentcast")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentcast", description=__doc__)
    parser.add_argument("--version", action="version", version=f"agentcast {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the storefront demo on the embedded default")
    demo.add_argument("--seconds", type=float, default=5.0, help="how long agents work")
    demo.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    demo.add_argument("--keep", action="store_true", help="leave Ray up to look at the dashboard")

    bench = sub.add_parser("bench", help="benchmarks against plain Ray, side by side")
    bench.add_argument(
        "target",
        choices=["resource", "budget", "supervisor", "soak", "locks", "events", "agents"],
        help="what to measure",
    )
    bench.add_argument("--json", action="store_true", help="print one JSON document")
    bench.add_argument("--quick", action="store_true", help="fewer operations per row")
    bench.add_argument("--out", default=None, help="also write the JSON to this file")

    from .budget import add_command as add_budget_command
    from .check import add_command as add_check_command
    from .log import add_command as add_log_command
    from .status import add_command as add_status_command
    from .supervisor import add_commands
    from .trace import add_command as add_trace_command

    add_status_command(sub)
    add_trace_command(sub)
    add_log_command(sub)
    add_commands(sub)
    add_budget_command(sub)
    add_check_command(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "run", None) is not None:  # a subcommand that runs itself
        return int(args.run(args))
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(seconds=args.seconds, storage=args.storage, keep=args.keep)
    if args.command == "status":
        from .status import run_command as run_status

        return run_status(args)
    if args.command == "trace":
        from .trace import run_command as run_trace

        return run_trace(args)
    if args.command == "log":
        from .log import run_command as run_log

        return run_log(args)
    if args.command == "budget":
        from .budget import run_command as run_budget_command

        return run_budget_command(args)
    if args.command in ("escalations", "answer", "kill"):
        from .supervisor import run_command

        return run_command(args)
    return _run_bench(args)


def _run_bench(args: argparse.Namespace) -> int:
    progress(f"bench {args.target}: starting Ray, then measuring")
    from .bench.agents import run_bench as run_agents_bench
    from .bench.budget import run_bench as run_budget_bench
    from .bench.events import run_bench as run_events_bench
    from .bench.locks import run_bench as run_locks_bench
    from .bench.resource import run_bench as run_resource_bench
    from .bench.soak import run_bench as run_soak_bench
    from .bench.supervisor import run_bench as run_supervisor_bench

    run = {
        "resource": run_resource_bench, "budget": run_budget_bench,
        "supervisor": run_supervisor_bench, "soak": run_soak_bench, "locks": run_locks_bench,
        "events": run_events_bench, "agents": run_agents_bench,
    }[args.target]  # fmt: skip
    return run(as_json=args.json, quick=args.quick, out=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentcast`` console script.

    A ``--json`` command prints exactly one JSON document on stdout (Ray's own lines go
    to stderr); a command that cannot do its work says why in one line on stderr and
    exits 1.
    """
    args = _parser().parse_args(argv)
    try:
        # Benchmarks too: Ray's warnings would land in the middle of their table.
        if getattr(args, "json", False) or args.command == "bench":
            with document_only():
                return _run(args)
        return _run(args)
    except (ConfigurationError, StorageError) as error:
        print(f"agentcast {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
