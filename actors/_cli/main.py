"""The ``agentcast`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the storefront demo on the embedded default")
    demo.add_argument("--seconds", type=float, default=5.0, help="how long agents work")
    demo.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    demo.add_argument("--keep", action="store_true", help="leave Ray up to look at the dashboard")

    bench = sub.add_parser("bench", help="benchmarks against plain Ray, side by side")
    bench.add_argument(
        "target", choices=["resource", "budget", "supervisor", "soak"], help="what to measure"
    )
    bench.add_argument("--json", action="store_true", help="print one JSON document")
    bench.add_argument("--quick", action="store_true", help="fewer operations per row")
    bench.add_argument("--out", default=None, help="also write the JSON to this file")

    from .budget import add_command as add_budget_command
    from .check import add_command as add_check_command
    from .supervisor import add_commands

    add_commands(sub)
    add_budget_command(sub)
    add_check_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentcast`` console script."""
    args = _parser().parse_args(argv)
    if getattr(args, "run", None) is not None:  # a subcommand that runs itself
        return int(args.run(args))
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(seconds=args.seconds, storage=args.storage, keep=args.keep)
    if args.command == "budget":
        from .budget import run_command as run_budget_command

        return run_budget_command(args)
    if args.command in ("status", "escalations", "answer", "kill"):
        from .supervisor import run_command

        return run_command(args)
    if args.command == "bench" and args.target == "supervisor":
        from .bench.supervisor import run_bench as run_supervisor_bench

        return run_supervisor_bench(as_json=args.json, quick=args.quick, out=args.out)
    if args.command == "bench" and args.target == "soak":
        from .bench.soak import run_bench as run_soak_bench

        return run_soak_bench(as_json=args.json, quick=args.quick, out=args.out)
    if args.command == "bench" and args.target == "budget":
        from .bench.budget import run_bench as run_budget_bench

        return run_budget_bench(as_json=args.json, quick=args.quick, out=args.out)
    if args.command == "bench":
        from .bench.resource import run_bench

        return run_bench(as_json=args.json, quick=args.quick, out=args.out)
    return 2


if __name__ == "__main__":
    sys.exit(main())
