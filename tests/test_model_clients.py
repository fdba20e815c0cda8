"""Model clients: the scripted model, the OpenAI-compatible client on a real local HTTP
server, the fake clock, and the model error subtree."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import BaseModel

import runtime
from runtime import (
    AgentcastError,
    Completion,
    ConfigurationError,
    InvalidArgumentError,
    Message,
    ModelAuthError,
    ModelClient,
    ModelError,
    ModelOutputError,
    ModelRateLimitedError,
    ModelRequestError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    OpenAICompatibleClient,
    Usage,
    estimate_prompt_tokens,
    estimate_text_tokens,
)
from runtime.testing import FakeClock, ScriptedModel, ScriptedRule


class Order(BaseModel):
    sku: str
    qty: int


def user(text: str) -> list[Message]:
    return [Message(role="system", content="You sell things."), Message(role="user", content=text)]


def shout(messages: Sequence[Message]) -> str:
    return messages[-1].content.upper()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- value types and estimates ------------------------------------------------------------


def test_estimates_are_ceil_of_chars_over_four_plus_four_per_message() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("abcde") == 2
    messages = [Message(role="system", content="x" * 9), Message(role="user", content="")]
    assert estimate_prompt_tokens(messages) == (3 + 4) + (0 + 4)
    assert estimate_prompt_tokens([]) == 0


def test_usage_total_and_validation() -> None:
    assert Usage(prompt_tokens=12, completion_tokens=30).total == 42
    with pytest.raises(InvalidArgumentError):
        Usage(prompt_tokens=-1, completion_tokens=0)


def test_message_refuses_unknown_role() -> None:
    with pytest.raises(InvalidArgumentError):
        Message(role="robot", content="hi")  # type: ignore[arg-type]


# --- ScriptedModel ------------------------------------------------------------------------


def test_default_reply_and_usage_arithmetic() -> None:
    model = ScriptedModel(default_reply="x" * 10, clock=FakeClock())
    messages = user("hello")  # 16 chars -> 4 + 4, 5 chars -> 2 + 4
    completion = run(model.complete(messages, max_tokens=100))
    assert completion == Completion(
        text="x" * 10,
        parsed=None,
        usage=Usage(prompt_tokens=14, completion_tokens=3),
        model="scripted",
        finish_reason="stop",
    )
    assert completion.usage.total == 17


def test_rules_match_the_last_user_message_first_match_wins() -> None:
    model = ScriptedModel(
        rules=[
            ScriptedRule(pattern=r"price of (\w+)", reply="3 EUR"),
            ScriptedRule(pattern=r"price", reply="never: the rule above matches first"),
            ScriptedRule(pattern=r"^shout", reply=shout),
        ],
        default_reply="?",
        clock=FakeClock(),
    )
    assert run(model.complete(user("the price of A"), max_tokens=10)).text == "3 EUR"
    assert run(model.complete(user("shout this"), max_tokens=10)).text == "SHOUT THIS"
    # An earlier user message and a later assistant message do not count.
    history = [
        Message(role="user", content="the price of A"),
        Message(role="assistant", content="price"),
        Message(role="user", content="thanks"),
    ]
    assert run(model.complete(history, max_tokens=10)).text == "?"


def test_scripted_model_is_deterministic() -> None:
    def script() -> list[Completion]:
        model = ScriptedModel(
            rules=[ScriptedRule(pattern="a", reply=shout), ScriptedRule(pattern="b", reply="bee")],
            latency=timedelta(milliseconds=250),
            clock=FakeClock(),
        )
        model.fail_calls(3, error=ModelUnavailableError(endpoint=model.endpoint))
        results: list[Completion] = []
        for text in ["a1", "b2", "c3", "abc", "a" + "z" * 40]:
            with contextlib.suppress(ModelUnavailableError):
                results.append(run(model.complete(user(text), max_tokens=8)))
        return results

    first, second = script(), script()
    assert first == second
    assert [c.text for c in first] == ["A1", "bee", "ABC", "A" + "Z" * 31]


def test_reply_longer_than_max_tokens_is_truncated_with_finish_reason_length() -> None:
    model = ScriptedModel(default_reply="y" * 50, clock=FakeClock())
    completion = run(model.complete(user("go"), max_tokens=5))
    assert completion.text == "y" * 20
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 5
    exact = ScriptedModel(default_reply="y" * 20, clock=FakeClock())
    at_limit = run(exact.complete(user("go"), max_tokens=5))
    assert (at_limit.text, at_limit.finish_reason) == ("y" * 20, "stop")


def test_truncate_after_rule_simulates_a_context_limit() -> None:
    model = ScriptedModel(
        rules=[ScriptedRule(pattern="long", reply="z" * 100, truncate_after=3)],
        clock=FakeClock(),
    )
    completion = run(model.complete(user("long one"), max_tokens=1000))
    assert (completion.text, completion.finish_reason) == ("z" * 12, "length")
    assert completion.usage.completion_tokens == 3


def test_schema_reply_is_parsed() -> None:
    model = ScriptedModel(default_reply='{"sku": "A", "qty": 3}', clock=FakeClock())
    completion = run(model.complete(user("order"), max_tokens=50, schema=Order))
    assert completion.parsed == Order(sku="A", qty=3)
    assert completion.text == '{"sku": "A", "qty": 3}'
    assert model.calls[0].schema == "Order"


@pytest.mark.parametrize(
    ("reply", "max_tokens", "finish_reason", "in_detail"),
    [
        ("not json at all", 50, "stop", "Invalid JSON"),
        ('{"sku": "A"}', 50, "stop", "qty"),
        ('{"sku": "A", "qty": "three"}', 50, "stop", "qty"),
        ('{"sku": "A", "qty": 3}', 3, "length", "truncated"),
    ],
)
def test_bad_schema_reply_raises_model_output_error(
    reply: str, max_tokens: int, finish_reason: str, in_detail: str
) -> None:
    model = ScriptedModel(default_reply=reply, clock=FakeClock())
    with pytest.raises(ModelOutputError) as caught:
        run(model.complete(user("order"), max_tokens=max_tokens, schema=Order))
    error = caught.value
    assert error.schema == "Order"
    assert error.text == reply[: max_tokens * 4]
    assert error.finish_reason == finish_reason
    assert in_detail in error.detail
    assert error.endpoint == "scripted:scripted"


def test_rule_can_raise_injected_errors_each_time_a_fresh_instance() -> None:
    limited = ModelRateLimitedError(endpoint="e", retry_after=timedelta(seconds=2))
    model = ScriptedModel(
        rules=[
            ScriptedRule(pattern="busy", error=limited),
            ScriptedRule(pattern="down", error=ModelUnavailableError("overloaded", status=503)),
        ],
        clock=FakeClock(),
    )
    raised = []
    for _ in range(2):
        with pytest.raises(ModelRateLimitedError) as caught:
            run(model.complete(user("busy now"), max_tokens=5))
        assert caught.value.retry_after == timedelta(seconds=2)
        raised.append(caught.value)
    assert raised[0] is not raised[1] and raised[0] is not limited
    with pytest.raises(ModelUnavailableError) as down:
        run(model.complete(user("down"), max_tokens=5))
    assert down.value.status == 503
    assert run(model.complete(user("fine"), max_tokens=5)).text == "ok"


def test_fail_next_and_fail_calls_take_precedence_over_rules() -> None:
    model = ScriptedModel(rules=[ScriptedRule(pattern="", reply="rule")], clock=FakeClock())
    model.fail_next(2, error=ModelUnavailableError())
    model.fail_calls(4, 5, error=ModelRequestError(status=400))
    outcomes: list[str] = []
    for _ in range(6):
        try:
            outcomes.append(str(run(model.complete(user("hi"), max_tokens=5)).text))
        except ModelError as error:
            outcomes.append(type(error).__name__)
    assert outcomes == [
        "ModelUnavailableError",
        "ModelUnavailableError",
        "rule",
        "ModelRequestError",
        "ModelRequestError",
        "rule",
    ]
    assert model.call_count == 6
    model.fail_next(error=ModelAuthError(status=401))
    with pytest.raises(ModelAuthError):
        run(model.complete(user("hi"), max_tokens=5))
    assert run(model.complete(user("hi"), max_tokens=5)).text == "rule"


def test_hang_waits_out_the_timeout_on_the_fake_clock_without_real_sleep() -> None:
    clock = FakeClock()
    model = ScriptedModel(
        rules=[ScriptedRule(pattern="stuck", hang=True)],
        timeout=timedelta(seconds=30),
        clock=clock,
    )
    model.fail_next(hang=True)
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError) as caught:
        run(model.complete(user("anything"), max_tokens=5))
    assert caught.value.timeout == timedelta(seconds=30)
    assert clock.monotonic() == 30.0
    with pytest.raises(ModelTimeoutError):
        run(model.complete(user("stuck"), max_tokens=5))
    assert clock.monotonic() == 60.0
    assert time.monotonic() - started < 10.0  # 60 s on the fake clock, not in real time


def test_latency_is_awaited_on_the_clock_and_too_slow_times_out() -> None:
    clock = FakeClock()
    model = ScriptedModel(
        rules=[
            ScriptedRule(pattern="slow", latency=timedelta(seconds=5)),
            ScriptedRule(pattern="glacial", latency=timedelta(minutes=5)),
        ],
        latency=timedelta(milliseconds=200),
        timeout=timedelta(seconds=10),
        clock=clock,
    )
    run(model.complete(user("quick"), max_tokens=5))
    run(model.complete(user("slow"), max_tokens=5))
    assert clock.slept == (0.2, 5.0)
    with pytest.raises(ModelTimeoutError):
        run(model.complete(user("glacial"), max_tokens=5))
    assert clock.monotonic() == pytest.approx(15.2)


def test_calls_are_recorded() -> None:
    model = ScriptedModel(clock=FakeClock())
    model.fail_next(error=ModelUnavailableError())
    with pytest.raises(ModelUnavailableError):
        run(model.complete(user("one"), max_tokens=7))
    run(model.complete(user("two"), max_tokens=9, schema=None))
    assert [(c.number, c.messages[-1].content, c.max_tokens) for c in model.calls] == [
        (1, "one", 7),
        (2, "two", 9),
    ]


def test_scripted_model_refuses_bad_arguments() -> None:
    model = ScriptedModel(clock=FakeClock())
    for max_tokens in (0, -3, True):
        with pytest.raises(InvalidArgumentError):
            run(model.complete(user("x"), max_tokens=max_tokens))
    with pytest.raises(InvalidArgumentError):
        model.fail_next(2)
    with pytest.raises(InvalidArgumentError):
        model.fail_calls(1, error=ModelUnavailableError(), hang=True)
    with pytest.raises(InvalidArgumentError):
        model.fail_calls(3, 2, hang=True)
    with pytest.raises(InvalidArgumentError):
        ScriptedRule(pattern="(unclosed")
    assert model.call_count == 0


def test_scripted_model_pickles_with_its_script_and_state() -> None:
    model = ScriptedModel(
        rules=[
            ScriptedRule(pattern="^shout", reply=shout),
            ScriptedRule(pattern="down", error=ModelUnavailableError(status=502)),
        ],
        latency=timedelta(seconds=1),
        clock=FakeClock(),
    )
    run(model.complete(user("hello"), max_tokens=5))
    model.fail_calls(3, error=ModelRateLimitedError())
    copy = pickle.loads(pickle.dumps(model))
    assert copy.call_count == 1 and copy.calls == model.calls
    assert run(copy.complete(user("shout it"), max_tokens=5)).text == "SHOUT IT"
    with pytest.raises(ModelRateLimitedError):
        run(copy.complete(user("shout it"), max_tokens=5))
    with pytest.raises(ModelUnavailableError) as caught:
        run(copy.complete(user("down"), max_tokens=5))
    assert caught.value.status == 502
    assert model.call_count == 1  # the copy counts on its own


def test_scripted_model_satisfies_the_protocol() -> None:
    client: ModelClient = ScriptedModel(model="m1")
    assert (client.model, client.endpoint) == ("m1", "scripted:m1")


# --- FakeClock ----------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=datetime(2030, 5, 1, 12, tzinfo=UTC))
    assert clock.now() == datetime(2030, 5, 1, 12, tzinfo=UTC)
    assert clock.now().tzinfo == UTC
    assert clock.monotonic() == 0.0
    clock.advance(timedelta(minutes=2))
    clock.advance(1.5)
    assert clock.monotonic() == 121.5
    started = time.monotonic()
    run(clock.sleep(3600))
    assert time.monotonic() - started < 10.0  # an hour on the fake clock, not in real time
    assert clock.now() == datetime(2030, 5, 1, 13, 2, 1, 500000, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(start=datetime(2030, 1, 1))


# --- errors -------------------------------------------------------------------------------

MODEL_ERRORS: list[ModelError] = [
    ModelError("generic", endpoint="m@h"),
    ModelUnavailableError("bad gateway", endpoint="m@h", status=502),
    ModelUnavailableError("ConnectError: refused", endpoint="m@h"),
    ModelTimeoutError(endpoint="m@h", timeout=timedelta(seconds=3)),
    ModelRateLimitedError(endpoint="m@h", retry_after=timedelta(seconds=7)),
    ModelRateLimitedError(endpoint="m@h"),
    ModelAuthError(endpoint="m@h", status=401, detail="bad key"),
    ModelRequestError(endpoint="m@h", status=422, detail="max_tokens too large"),
    ModelResponseError("choices: missing", endpoint="m@h"),
    ModelOutputError(
        endpoint="m@h", schema="Order", text='{"sku"', detail="EOF", finish_reason="length"
    ),
]


@pytest.mark.parametrize("error", MODEL_ERRORS, ids=lambda e: type(e).__name__)
def test_model_errors_survive_pickling(error: ModelError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)
    assert isinstance(copy, ModelError) and isinstance(copy, AgentcastError)
    assert copy.endpoint == "m@h"


def test_every_model_error_is_exported_and_pickle_tested() -> None:
    exported = {
        getattr(runtime, name)
        for name in runtime.__all__
        if isinstance(getattr(runtime, name), type)
        and issubclass(getattr(runtime, name), ModelError)
    }
    assert exported == {type(e) for e in MODEL_ERRORS}


# --- OpenAI-compatible client against a real local HTTP server ----------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def chat_body(
    content: str | None,
    *,
    finish_reason: str = "stop",
    prompt_tokens: int = 21,
    completion_tokens: int = 7,
    model: str = "served-model",
) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    ).encode()


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.reply = Reply(body=chat_body("hi"))
        self.requests: list[Request] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closes the socket under a slow reply


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.server.requests.append(Request(self.path, dict(self.headers), body))
        reply = self.server.reply
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    chat = ChatServer()
    thread = threading.Thread(target=chat.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield chat
    chat.shutdown()
    chat.server_close()
    thread.join(timeout=5)


def client_for(server: ChatServer, **overrides: Any) -> OpenAICompatibleClient:
    args: dict[str, Any] = {
        "base_url": server.base_url,
        "api_key": "sk-test",
        "model": "tiny",
        "timeout": timedelta(seconds=5),
    }
    return OpenAICompatibleClient(**(args | overrides))


def test_success_reads_text_and_usage_from_the_response(server: ChatServer) -> None:
    server.reply = Reply(body=chat_body("Hello there", prompt_tokens=31, completion_tokens=2))
    completion = run(client_for(server).complete(user("hi"), max_tokens=64))
    assert completion == Completion(
        text="Hello there",
        parsed=None,
        usage=Usage(prompt_tokens=31, completion_tokens=2),
        model="served-model",
        finish_reason="stop",
    )
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "You sell things."},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 64,
    }


def test_schema_reply_is_validated_and_json_mode_requested(server: ChatServer) -> None:
    server.reply = Reply(body=chat_body('{"sku": "B", "qty": 2}'))
    completion = run(client_for(server).complete(user("order"), max_tokens=64, schema=Order))
    assert completion.parsed == Order(sku="B", qty=2)
    assert server.requests[0].body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("content", "finish_reason"),
    [("Sure! Here is", "stop"), ('{"sku": "B", "qty": 2', "length"), (None, "stop")],
)
def test_bad_schema_reply_from_the_server_raises_model_output_error(
    server: ChatServer, content: str | None, finish_reason: str
) -> None:
    server.reply = Reply(body=chat_body(content, finish_reason=finish_reason))
    with pytest.raises(ModelOutputError) as caught:
        run(client_for(server).complete(user("order"), max_tokens=64, schema=Order))
    assert caught.value.text == content
    assert caught.value.finish_reason == finish_reason


def test_429_carries_retry_after_seconds(server: ChatServer) -> None:
    server.reply = Reply(status=429, body=b'{"error": "slow down"}', headers={"Retry-After": "7"})
    with pytest.raises(ModelRateLimitedError) as caught:
        run(client_for(server).complete(user("hi"), max_tokens=8))
    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.endpoint == f"tiny@{server.base_url}"


def test_429_retry_after_as_http_date_and_absent(server: ChatServer) -> None:
    clock = FakeClock(start=datetime(2030, 1, 1, tzinfo=UTC))
    when = format_datetime(clock.now() + timedelta(seconds=30), usegmt=True)
    server.reply = Reply(status=429, headers={"Retry-After": when})
    with pytest.raises(ModelRateLimitedError) as caught:
        run(client_for(server, clock=clock).complete(user("hi"), max_tokens=8))
    assert caught.value.retry_after == timedelta(seconds=30)
    server.reply = Reply(status=429)
    with pytest.raises(ModelRateLimitedError) as absent:
        run(client_for(server).complete(user("hi"), max_tokens=8))
    assert absent.value.retry_after is None


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, ModelUnavailableError),
        (503, ModelUnavailableError),
        (401, ModelAuthError),
        (403, ModelAuthError),
        (400, ModelRequestError),
        (404, ModelRequestError),
    ],
)
def test_statuses_map_to_typed_errors(
    server: ChatServer, status: int, error_type: type[ModelError]
) -> None:
    server.reply = Reply(status=status, body=b'{"error": {"message": "nope"}}')
    with pytest.raises(error_type) as caught:
        run(client_for(server).complete(user("hi"), max_tokens=8))
    assert type(caught.value) is error_type
    assert getattr(caught.value, "status", None) == status
    assert "nope" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": "hi"}}]}',
        b'{"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 1}}',
        b'{"choices": [{"finish_reason": "stop"}], '
        b'"usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
    ],
)
def test_malformed_body_raises_model_response_error(server: ChatServer, body: bytes) -> None:
    server.reply = Reply(body=body)
    with pytest.raises(ModelResponseError):
        run(client_for(server).complete(user("hi"), max_tokens=8))


def test_slow_response_times_out(server: ChatServer) -> None:
    server.reply = Reply(body=chat_body("late"), delay=30.0)
    client = client_for(server, timeout=timedelta(milliseconds=200))
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError) as caught:
        run(client.complete(user("hi"), max_tokens=8))
    # Given up long before the reply, with room for a loaded machine.
    assert time.monotonic() - started < 10.0
    assert caught.value.timeout == timedelta(milliseconds=200)


def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAICompatibleClient(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m", timeout=timedelta(seconds=2)
    )
    with pytest.raises(ModelUnavailableError) as caught:
        run(client.complete(user("hi"), max_tokens=8))
    assert caught.value.status is None


def test_client_pickles_and_keeps_the_key_out_of_its_repr(server: ChatServer) -> None:
    client = pickle.loads(pickle.dumps(client_for(server)))
    assert "sk-test" not in repr(client)
    assert run(client.complete(user("hi"), max_tokens=8)).text == "hi"
    assert server.requests[0].headers["Authorization"] == "Bearer sk-test"
    other: ModelClient = client
    assert other.model == "tiny"


def test_from_env_reads_the_three_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "AGENTCAST_MODEL_BASE_URL": "http://gateway:8000/v1/",
        "AGENTCAST_MODEL_API_KEY": "k",
        "AGENTCAST_MODEL": "llama",
    }
    client = OpenAICompatibleClient.from_env(env, timeout=timedelta(seconds=9))
    assert client.endpoint == "llama@http://gateway:8000/v1"
    assert client.timeout == timedelta(seconds=9)
    for name in env:
        monkeypatch.setenv(name, env[name])
    assert OpenAICompatibleClient.from_env().model == "llama"
    monkeypatch.delenv("AGENTCAST_MODEL")
    monkeypatch.setenv("AGENTCAST_MODEL_API_KEY", "")
    with pytest.raises(ConfigurationError) as caught:
        OpenAICompatibleClient.from_env()
    assert "AGENTCAST_MODEL_API_KEY, AGENTCAST_MODEL to use" in str(caught.value)
    assert "AGENTCAST_MODEL_BASE_URL" not in str(caught.value)
