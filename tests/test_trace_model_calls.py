"""``agentcast trace`` shows each model call (model, input/output tokens, duration,
outcome) under the subtask whose handler made it, in time order; the calls are stored per
replica, read through an index, and pruned after ``KEEP``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from model_call_agents import LATENCY, Chat, Chatty, Usage, chatty_model

from actors import System
from actors._agent.model_calls import KEEP, RecordedModel, call_log, calls_folder
from actors._cli.main import main
from runtime import Message, ModelUnavailableError
from runtime.testing import FakeClock


def _trace(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["trace", *argv])
    return code, capfd.readouterr().out


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_each_model_call_is_shown_under_its_handler_run(
    system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    system.agent(Chatty, name="chatty", replicas=2, model=chatty_model())
    first = system.supervisor.submit(
        Chat(prompts=["hi", "long one", "down", "bye"]), to="chatty:0", expect=Usage
    )
    second = system.supervisor.submit(Chat(prompts=["long again"]), to="chatty:1", expect=Usage)
    used = first.result(timeout=120)
    other = second.result(timeout=120)
    assert isinstance(used, Usage) and isinstance(other, Usage)
    assert used.failed == 1
    storage = ["--storage", str(system.root)]
    code, out = _trace(capfd, system.trace_id, *storage, "--json")
    assert code == 0
    timeline = json.loads(out)["timeline"]
    calls = [i for i in timeline if i["kind"] == "model call"]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_task.setdefault(call["subtask"], []).append(call)
    assert set(by_task) == {first.id, second.id}
    mine = by_task[first.id]
    assert [(c["agent"], c["replica"], c["model"]) for c in mine] == [("chatty", 0, "scripted")] * 4
    assert [c["outcome"] for c in mine] == ["ok", "ok", "ModelUnavailableError", "ok"]
    answered = [c for c in mine if c["outcome"] == "ok"]
    assert [(c["input_tokens"], c["output_tokens"]) for c in answered] == used.tokens
    assert (mine[2]["input_tokens"], mine[2]["output_tokens"]) == (0, 0)
    assert [(c["input_tokens"], c["output_tokens"]) for c in by_task[second.id]] == other.tokens
    assert all(c["duration_ms"] >= LATENCY.total_seconds() * 1000 for c in answered)
    assert [c["at"] for c in mine] == sorted(c["at"] for c in mine)
    # Each call sits between its subtask's submission and its end, in time order.
    order = [i["kind"] for i in timeline if i["subtask"] == first.id]
    assert order.index("submitted") < order.index("model call")
    assert max(i for i, k in enumerate(order) if k == "model call") < order.index("finished")
    _, tree = _trace(capfd, system.trace_id, *storage)
    lines = tree.splitlines()
    subtask = next(i for i, line in enumerate(lines) if f"subtask {first.id} to chatty:0" in line)
    shown = [line for line in lines[subtask + 1 :] if "model call" in line][:4]
    long_in, long_out = used.tokens[1]
    assert f"model call scripted by chatty:0: {long_in} in / {long_out} out tokens, " in shown[1]
    assert shown[2].endswith("ms, failed: ModelUnavailableError")
    # --subtask narrows the calls with the rest.
    _, narrowed = _trace(capfd, "--subtask", second.id, *storage, "--json")
    kept = [i for i in json.loads(narrowed)["timeline"] if i["kind"] == "model call"]
    assert [i["subtask"] for i in kept] == [second.id]


def _row(at: float, trace: str = "t" * 32) -> tuple[Any, ...]:
    return (at, trace, "task-1", "a", 0, "m", 3, 4, 12.5, "ok")


def test_calls_older_than_the_window_are_pruned_and_the_trace_query_uses_an_index(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    log = call_log(tmp_path, "a.0", clock)
    now = clock.now().timestamp()
    log.add([_row(now - KEEP.total_seconds() - 1)])  # already past the window
    log.add([_row(now)])
    clock.advance(timedelta(days=1).total_seconds())
    reopened = call_log(tmp_path, "a.0", clock)
    reopened.add([_row(clock.now().timestamp())])
    path = calls_folder(tmp_path) / "a.0.sqlite"
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT at FROM calls ORDER BY at")] == [
            now,
            clock.now().timestamp(),
        ]
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM calls WHERE trace_id = ? ORDER BY at", ("t",)
        ).fetchall()
    assert any("USING INDEX calls_trace" in row[3] for row in plan), plan


def test_a_store_that_fails_loses_the_row_not_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the model_calls folder should be")
    clock = FakeClock()
    model = RecordedModel(
        chatty_model(), call_log(blocked, "a.0", clock), "a", 0, clock
    )  # fmt: skip
    messages = [Message(role="user", content="long")]
    completion = asyncio.run(model.complete(messages, max_tokens=20))
    assert completion.text == "a much longer answer than the others"
    assert "model call not stored for agentcast trace" in caplog.text
    # A working store keeps the call, outside a handler under the all-zero trace.
    stored = RecordedModel(chatty_model(), call_log(tmp_path, "a.0", clock), "a", 0, clock)
    with pytest.raises(ModelUnavailableError):
        asyncio.run(stored.complete([Message(role="user", content="down")], max_tokens=5))
    with sqlite3.connect(calls_folder(tmp_path) / "a.0.sqlite") as conn:
        rows = conn.execute("SELECT trace_id, task_id, outcome, input_tokens FROM calls").fetchall()
    assert rows == [("0" * 32, "-", "ModelUnavailableError", 0)]
