"""``agentcast trace <trace id>``: everything the durable stores hold of one trace, in
time order, as a tree of subtasks in the terminal or as one JSON document.

Read from the stores under the storage root (SQLite files or PostgreSQL schemas, read
only), so it works while the actors are down, and after a crash: the supervisor's
subtasks (message, attempts, outcome, output), handoffs and audit events; every
resource's writes (with the before/after of each key they changed) and refused
attempts; and the budget's log of the trace's run (each allowance granted to an agent
for a model, and the tokens, cost and calls settled against it); and each model call an
agent made (model, input and output tokens, duration, outcome), from the replicas'
``model_calls`` stores; and each within-transaction validator's verdict on a write (from
the resources' ``validations`` stores). Writes, refusals, verdicts and model calls hang
under the subtask whose task made them (a write's idempotency key starts with its id; a
call stores it); budget
entries hang under the trace.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from runtime import ConfigurationError, Location

from .._agent.model_calls import calls_folder
from .._resource.verdicts import verdicts_folder, verdicts_of
from .log import write_text
from .output import emit
from .stores import cli_root, log_records, read_only, rejections_of, resource_names, store_names

Item = dict[str, Any]


def add_command(sub: Any) -> None:
    """Add ``trace`` to the ``agentcast`` parser."""
    command = sub.add_parser("trace", help="everything stored under one trace, in time order")
    command.add_argument("trace_id", nargs="?", default=None, help="the trace id (32 hex)")
    command.add_argument("--subtask", default=None, help="one subtask and what it delegated")
    command.add_argument(
        "--storage", default=None,
        help="storage folder or postgresql:// URL (default $AGENTCAST_STORAGE, else ./.agentcast)",
    )  # fmt: skip
    command.add_argument("--json", action="store_true", help="print one JSON document")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- the supervisor ---------------------------------------------------------------------


def _subtasks(conn: Any, trace: str) -> dict[str, Item]:
    rows = conn.execute(
        "SELECT * FROM subtasks WHERE trace_id = ? ORDER BY created", (trace,)
    ).fetchall()
    return {row["id"]: dict(row) for row in rows}


def _subtask_items(row: Item) -> list[Item]:
    sid = row["id"]
    message = json.loads(row["message"]) if row.get("message") else None
    items: list[Item] = [
        {"at": row["created"], "kind": "submitted", "subtask": sid, "to": row["target"],
         "parent": row["parent"], "message": message}
    ]  # fmt: skip
    for attempt in json.loads(row["attempts"]):
        items.append({**attempt, "kind": "attempt", "subtask": sid})
    if row["finished"] is not None:
        output = json.loads(row["output_json"]) if row.get("output_json") else None
        items.append(
            {"at": row["finished"], "kind": "finished", "subtask": sid, "state": row["state"],
             "reason": row["reason"], "detail": row["detail"], "output": output}
        )  # fmt: skip
    return items


def _supervisor_items(root: Location, trace: str) -> tuple[dict[str, Item], list[Item]]:
    path = root / "supervisor.sqlite"
    if not path.exists():
        return {}, []
    with read_only(path) as conn:
        subtasks = _subtasks(conn, trace)
        items = [item for row in subtasks.values() for item in _subtask_items(row)]
        for row in conn.execute("SELECT * FROM handoffs WHERE trace_id = ?", (trace,)):
            items.append({**dict(row), "kind": "handoff", "subtask": row["subtask_id"]})
        for sid in subtasks:
            for row in conn.execute("SELECT * FROM events WHERE subject = ? ORDER BY seq", (sid,)):
                items.append(
                    {"at": row["at"], "kind": f"event {row['kind']}", "subtask": sid,
                     "detail": json.loads(row["detail"])}
                )  # fmt: skip
    meta = {
        sid: {"id": sid, "parent": r["parent"], "to": r["target"], "state": r["state"]}
        for sid, r in subtasks.items()
    }
    return meta, items


# -- resources and the budget -----------------------------------------------------------


def _task_of(idem_key: str) -> str:
    return idem_key.rpartition(":")[0]


def _resource_items(root: Location, trace: str) -> list[Item]:
    items: list[Item] = []
    for name in resource_names(root):
        with read_only(root / "resources" / f"{name}.sqlite") as conn:
            for record in log_records(conn, trace=trace):
                items.append(
                    {**record, "at": _epoch(record["at"]), "kind": "write", "resource": name,
                     "subtask": _task_of(record["idem_key"])}
                )  # fmt: skip
            for refused in rejections_of(conn, trace):
                items.append(
                    {**refused, "at": _epoch(refused["at"]), "kind": "refused",
                     "resource": name, "subtask": _task_of(refused["idem_key"])}
                )  # fmt: skip
            items += _event_items(conn, name, trace, items)
    return items


def _event_items(conn: Any, resource: str, trace: str, writes: list[Item]) -> list[Item]:
    """The events ``resource`` committed under ``trace``, each under the subtask of the
    write that emitted it (same version)."""
    found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
    if not conn.execute(found).fetchone():
        return []  # a resource file from before events existed
    subtask_of = {
        w["version"]: w["subtask"] for w in writes
        if w["kind"] == "write" and w["resource"] == resource
    }  # fmt: skip
    rows = conn.execute("SELECT * FROM events WHERE trace_id = ? ORDER BY seq", (trace,)).fetchall()
    return [
        {"at": _epoch(r["at"]), "kind": "emitted", "resource": resource, "type": r["type"],
         "event_id": r["event_id"], "version": r["version"], "writer": r["writer"],
         "data": json.loads(r["payload"]), "subtask": subtask_of.get(r["version"])}
        for r in rows
    ]  # fmt: skip


def _budget_items(root: Location, trace: str) -> list[Item]:
    path = root / "budget.sqlite"
    if not path.exists():
        return []
    with read_only(path) as conn:
        own = conn.execute(
            "SELECT * FROM events WHERE json_extract(data, '$.ctx.run') = ? ORDER BY seq",
            (trace,),
        ).fetchall()
        grants = {
            json.loads(r["data"])["id"]: json.loads(r["data"]) for r in own if r["kind"] == "grant"
        }
        later = [
            row
            for grant in grants
            for row in conn.execute(
                "SELECT * FROM events WHERE json_extract(data, '$.id') = ? AND kind != 'grant'",
                (grant,),
            )
        ]
    items = []
    for row in [*own, *later]:
        data = json.loads(row["data"])
        ctx = data.get("ctx") or grants.get(data.get("id"), {}).get("ctx", {})
        items.append(
            {"at": row["at"], "kind": f"budget {row['kind']}", "subtask": None,
             "agent": ctx.get("agent"), "model": ctx.get("model") or ctx.get("tool"),
             **{k: data[k] for k in ("amounts", "used", "why", "late") if k in data}}
        )  # fmt: skip
    return items


def _model_call_items(root: Location, trace: str) -> list[Item]:
    items: list[Item] = []
    for name in store_names(calls_folder(root)):
        with read_only(calls_folder(root) / f"{name}.sqlite") as conn:
            rows = conn.execute(
                "SELECT * FROM calls WHERE trace_id = ? ORDER BY at", (trace,)
            ).fetchall()
        for row in rows:
            call = dict(row)
            del call["seq"], call["trace_id"]
            items.append({**call, "kind": "model call", "subtask": call.pop("task_id")})
    return items


def _verdict_items(root: Location, trace: str) -> list[Item]:
    items: list[Item] = []
    for name in store_names(verdicts_folder(root)):
        with read_only(verdicts_folder(root) / f"{name}.sqlite") as conn:
            verdicts = verdicts_of(conn, trace)
        for verdict in verdicts:
            del verdict["seq"], verdict["trace_id"]
            subtask = _task_of(verdict["idem_key"])
            items.append({**verdict, "kind": "validated", "subtask": subtask})
    return items


# -- assembling and rendering ------------------------------------------------------------


def _within(subtasks: dict[str, Item], top: str) -> set[str]:
    """``top`` and every subtask it delegated, at any depth."""
    keep, grew = {top}, True
    while grew:
        more = {sid for sid, s in subtasks.items() if s["parent"] in keep} - keep
        keep |= more
        grew = bool(more)
    return keep


def collect(root: Location, trace: str | None, subtask: str | None = None) -> dict[str, Any]:
    """Everything stored under ``trace`` (or under the trace of ``subtask``, narrowed to
    it and what it delegated), in time order.

    Raises:
        ConfigurationError: neither given, or nothing stored under them.
    """
    if trace is None:
        trace = _trace_of(root, subtask)
    subtasks, items = _supervisor_items(root, trace)
    items += _resource_items(root, trace) + _budget_items(root, trace)
    items += _model_call_items(root, trace) + _verdict_items(root, trace)
    for item in items:
        if item["subtask"] not in subtasks:
            item["subtask"] = None  # a driver's write, or a task the supervisor did not run
    if subtask is not None:
        keep = _within(subtasks, subtask)
        subtasks = {sid: s for sid, s in subtasks.items() if sid in keep}
        items = [i for i in items if i["subtask"] in keep]
    if not items:
        raise ConfigurationError(f"nothing stored under trace {trace} in {root}")
    items.sort(key=lambda i: i["at"])
    for item in items:
        item["at"] = _iso(item["at"])
    return {"trace_id": trace, "subtasks": subtasks, "timeline": items}


def _trace_of(root: Location, subtask: str | None) -> str:
    if subtask is None:
        raise ConfigurationError("give a trace id or --subtask")
    path = root / "supervisor.sqlite"
    if path.exists():
        with read_only(path) as conn:
            row = conn.execute("SELECT trace_id FROM subtasks WHERE id = ?", (subtask,)).fetchone()
            if row is not None:
                return str(row["trace_id"])
    raise ConfigurationError(f"no subtask {subtask!r} in {root}")


def describe(item: Item) -> str:
    """One timeline entry as a short line."""
    kind = item["kind"]
    if kind == "submitted":
        message = item["message"] or {}
        data = json.dumps(message.get("data"), sort_keys=True)
        return f"submitted to {item['to']}: {message.get('type', '?')} {data}"
    if kind == "attempt":
        detail = f" ({item['detail']})" if item["detail"] else ""
        return f"attempt {item['number']} on {item['replica'] or '-'}: {item['outcome']}{detail}"
    if kind == "finished":
        if item["state"] == "done":
            return f"done: {json.dumps((item['output'] or {}).get('data'), sort_keys=True)}"
        return f"failed: {item['reason']} {item['detail'] or ''}".rstrip()
    if kind == "handoff":
        return (
            f"handoff {item['status']}, stage {item['stage'] or '-'} -> {item['next_stage'] or '-'}"
        )
    if kind == "write":
        return f"write {item['resource']} v{item['version']} {write_text(item)}"
    if kind == "emitted":
        return f"emitted {item['type']} from {item['resource']} v{item['version']}: " + json.dumps(
            item["data"], sort_keys=True
        )
    if kind == "refused":
        return f"refused {item['resource']} {item['op']} by {item['writer']}: {item['reason']}"
    if kind == "validated":
        return _verdict_text(item)
    if kind == "model call":
        outcome = "" if item["outcome"] == "ok" else f", failed: {item['outcome']}"
        return (
            f"model call {item['model']} by {item['agent']}:{item['replica']}: "
            f"{item['input_tokens']} in / {item['output_tokens']} out tokens, "
            f"{item['duration_ms']:.1f} ms{outcome}"
        )
    if kind.startswith("budget "):
        return _budget_text(item)
    rest = {k: v for k, v in item.items() if k not in ("at", "kind", "subtask")}
    return f"{kind} {json.dumps(rest, sort_keys=True, default=str)}"


def _verdict_text(item: Item) -> str:
    detail = f": {item['detail']}" if item["detail"] else ""
    return (
        f"validated {item['event_type']} of {item['resource']} {item['op']} by "
        f"{item['agent']}: {item['outcome']}{detail} ({item['duration_ms']:.1f} ms)"
    )


def _budget_text(item: Item) -> str:
    what = {
        "budget grant": "allowance granted", "budget settle": "model use settled",
        "budget charge": "charged", "budget expire": "allowance expired, charged in full",
    }.get(item["kind"], item["kind"])  # fmt: skip
    amounts = item.get("used", item.get("amounts")) or {}
    text = ", ".join(f"{k} {v:g}" for k, v in sorted(amounts.items()))
    return f"{what}: {item['agent']} on {item['model'] or '-'}: {text or '-'}"


def tree(found: dict[str, Any]) -> list[str]:
    """The trace as a tree: subtasks under the subtask that delegated them, each entry
    under its subtask, everything in time order."""
    subtasks: dict[str, Item] = found["subtasks"]
    children: dict[str | None, list[tuple[str, Any]]] = {}
    first: dict[str, str] = {}
    for item in found["timeline"]:
        children.setdefault(item["subtask"], []).append((item["at"], item))
        if item["subtask"] is not None:
            first.setdefault(item["subtask"], item["at"])
    for sid, s in subtasks.items():
        parent = s["parent"] if s["parent"] in subtasks else None
        children.setdefault(parent, []).append((first.get(sid, ""), sid))
    lines = [f"trace {found['trace_id']}"]
    _branch(children, subtasks, None, "", lines)
    return lines


def _branch(
    children: dict[str | None, list[tuple[str, Any]]],
    subtasks: dict[str, Item],
    node: str | None,
    indent: str,
    lines: list[str],
) -> None:
    entries = sorted(children.get(node, []), key=lambda e: e[0])
    for i, (at, entry) in enumerate(entries):
        last = i == len(entries) - 1
        joint, below = ("└─ ", "   ") if last else ("├─ ", "│  ")
        if isinstance(entry, str):
            s = subtasks[entry]
            lines.append(f"{indent}{joint}subtask {entry} to {s['to']} ({s['state']})")
            _branch(children, subtasks, entry, indent + below, lines)
        else:
            lines.append(f"{indent}{joint}{at[11:23]} {describe(entry)}")


def run_command(args: argparse.Namespace) -> int:
    """Print the trace as a tree, or as one JSON document.

    Raises:
        ConfigurationError: nothing stored under the trace or subtask.
    """
    found = collect(cli_root(args.storage), args.trace_id, args.subtask)
    emit(json.dumps(found, sort_keys=True, default=str) if args.json else "\n".join(tree(found)))
    return 0
