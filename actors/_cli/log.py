"""``agentcast log <resource>``: a resource's durable log, decoded (operation,
arguments, result, writer, trace, and the before/after of every key it changed), read
from its store (SQLite file or PostgreSQL schema), so it works whether the resource actor
runs or not."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .output import emit
from .stores import cli_root, log_records, read_only, resource_path

FOLLOW_POLL_S = 0.5
"""How often ``--follow`` looks for new records."""


def add_command(sub: Any) -> None:
    """Add ``log`` to the ``agentcast`` parser."""
    command = sub.add_parser("log", help="a resource's committed writes, decoded")
    command.add_argument("resource", help="the resource's name")
    command.add_argument(
        "--storage", default=None,
        help="storage folder or postgresql:// URL (default $AGENTCAST_STORAGE, else ./.agentcast)",
    )  # fmt: skip
    command.add_argument("--writer", default=None, help="only this writer's writes")
    command.add_argument("--op", default=None, help="only this operation")
    command.add_argument("--trace", default=None, help="only writes of this trace id")
    command.add_argument("--from-version", type=int, default=1, help="first version shown")
    command.add_argument("--to-version", type=int, default=None, help="last version shown")
    command.add_argument("--follow", action="store_true", help="keep printing new writes")
    command.add_argument(
        "--json", action="store_true", help="one JSON document (with --follow: one per line)"
    )


def line(record: dict[str, Any]) -> str:
    """One record as a line: version, time, the write, its trace."""
    return f"v{record['version']} {record['at']} {write_text(record)}  trace {record['trace_id']}"


def write_text(record: dict[str, Any]) -> str:
    """A write as text: writer and epoch, the call, its result, the before/after of
    every key it changed."""
    args = [json.dumps(a) for a in record["args"]]
    args += [f"{k}={json.dumps(v)}" for k, v in sorted(record["kwargs"].items())]
    changes = "; ".join(_change(c) for c in record["changes"]) or "no change"
    return (
        f"{record['writer']}#{record['writer_epoch']} {record['op']}({', '.join(args)}) -> "
        f"{json.dumps(record['result'])}  [{changes}]"
    )


def _change(change: dict[str, Any]) -> str:
    before = json.dumps(change["before"]) if "before" in change else "(none)"
    after = json.dumps(change["after"]) if "after" in change else "(removed)"
    return f"{change['key']}: {before} -> {after}"


def run_command(args: argparse.Namespace) -> int:
    """Print the records asked for; with ``--follow``, then every new one until stopped.

    Raises:
        ConfigurationError: no such resource in the storage.
    """
    path = resource_path(cli_root(args.storage), args.resource)
    filters = {"writer": args.writer, "op": args.op, "trace": args.trace}
    after = args.from_version - 1
    with read_only(path) as conn:
        records = log_records(conn, after=after, upto=args.to_version, **filters)
        if args.json and not args.follow:
            emit(json.dumps({"resource": args.resource, "records": records}, sort_keys=True))
            return 0
        _print(records, as_json=args.json)
        if not args.follow:
            return 0
        after = max([after, *(r["version"] for r in records)])
        try:
            while args.to_version is None or after < args.to_version:
                time.sleep(FOLLOW_POLL_S)
                records = log_records(conn, after=after, upto=args.to_version, **filters)
                _print(records, as_json=args.json)
                after = max([after, *(r["version"] for r in records)])
        except KeyboardInterrupt:
            pass
    return 0


def _print(records: list[dict[str, Any]], *, as_json: bool) -> None:
    for record in records:
        emit(json.dumps(record, sort_keys=True) if as_json else line(record))
