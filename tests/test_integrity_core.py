"""Constraints and invariants at the resource, as a plain class: a write that breaks a
constraint it carries, or an invariant of the whole state, is refused, logged with its
reason and trace, and leaves nothing behind; the rest of its batch is unaffected."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from actors import Resource, invariant, write
from actors._resource.calls import pack_calls, unpack_calls
from actors._resource.constraints import MODEL_PREAMBLE, carried, carrying, for_model, wire_of
from actors.lowlevel import ResourceCore, WriteCall
from policies import AllowOnly, CapArgument, ConstraintSet, ForbidPath
from runtime import (
    ConstraintViolationError,
    InvalidArgumentError,
    InvariantViolationError,
    Message,
    decode,
    encode,
)
from runtime.testing import ScriptedModel, ScriptedRule

pytestmark = pytest.mark.timeout(60)

PROD = ConstraintSet((ForbidPath(prefix="/prod"), CapArgument(argument="size", maximum=100)))
TRACE = "c" * 32


class Files(Resource):
    @write
    def write_file(self, state: dict[str, Any], path: str, size: int = 1) -> int:
        state[path] = size
        return len(state)

    @write
    def rename(self, state: dict[str, Any], old: str, new: str) -> None:
        state[new] = state.pop(old)


class Credit(Resource):
    """Grants per customer under a firm-wide cap on the total."""

    CAP = 100

    @write
    def grant(self, state: dict[str, Any], customer: str, amount: int) -> int:
        state[customer] = state.get(customer, 0) + amount
        return int(state[customer])

    @invariant
    def exposure_under_cap(self, state: dict[str, Any]) -> bool:
        return sum(state.values()) <= self.CAP


class Broken(Resource):
    @write
    def put(self, state: dict[str, Any], key: str, value: int) -> None:
        state[key] = value

    @invariant
    def raises(self, state: dict[str, Any]) -> bool:
        return 1 / state.get("zero", 1) > 0


def call(op: str, *args: Any, constraints: bytes = b"", **kwargs: Any) -> WriteCall:
    return WriteCall(
        op, encode([list(args), kwargs]), "w", 1, uuid.uuid4().hex, TRACE, constraints=constraints
    )


def test_a_write_under_a_forbidden_path_is_refused_named_and_logged(tmp_path: Path) -> None:
    core = ResourceCore(Files(), "files", tmp_path)
    carried_wire = wire_of(PROD)
    ok, prod, keyword, capped, elsewhere = core.apply_batch(
        [
            call("write_file", "/tmp/a", constraints=carried_wire),
            call("write_file", "/tmp/../prod/db", constraints=carried_wire),
            call("write_file", path="/prod", size=1, constraints=carried_wire),
            call("write_file", "/tmp/b", 101, constraints=carried_wire),
            call("write_file", "/prod/x"),  # no constraints carried: the system's own write
        ]
    )
    assert (ok.value, ok.error, elsewhere.value) == (1, None, 2)
    for refused in (prod, keyword):
        assert isinstance(refused.error, ConstraintViolationError)
        assert refused.error.constraint == "forbid_path(path under /prod)"
        assert refused.error.trace_id == TRACE and refused.error.operation == "write_file"
    assert isinstance(capped.error, ConstraintViolationError)
    assert capped.error.constraint == "cap(size <= 100)"
    assert core.state == {"/tmp/a": 1, "/prod/x": 1} and core.version == 2
    rejections = core.log.rejections()
    assert [r.reason for r in rejections] == ["constraint"] * 3
    assert {r.trace_id for r in rejections} == {TRACE}
    assert "forbid_path(path under /prod)" in rejections[0].detail


def test_a_constraint_on_an_argument_the_write_does_not_take_does_not_apply(
    tmp_path: Path,
) -> None:
    core = ResourceCore(Files(), "files", tmp_path)
    core.apply_batch([call("write_file", "/tmp/a")])
    (renamed,) = core.apply_batch([call("rename", "/tmp/a", "/prod/a", constraints=wire_of(PROD))])
    assert renamed.error is None  # ForbidPath names the argument "path"; rename has none
    only = wire_of(ConstraintSet((AllowOnly(targets=frozenset({"files.write_file"})),)))
    (refused,) = core.apply_batch([call("rename", "/prod/a", "/tmp/a", constraints=only)])
    assert isinstance(refused.error, ConstraintViolationError)
    assert refused.error.constraint == "allow_only(['files.write_file'])"


@pytest.mark.parametrize(
    "blob",
    [b"\xc1", encode("forbid /prod"), encode([{"kind": "forbid_path"}]), encode([{"kind": 1}])],
)
def test_a_malformed_constraint_set_is_a_malformed_write(tmp_path: Path, blob: bytes) -> None:
    core = ResourceCore(Files(), "files", tmp_path)
    (refused,) = core.apply_batch([call("write_file", "/tmp/a", constraints=blob)])
    assert isinstance(refused.error, InvalidArgumentError)
    assert "constraints" in str(refused.error)
    assert core.state == {} and [r.reason for r in core.log.rejections()] == ["malformed"]


def test_the_wire_carries_constraints_and_refuses_a_wrong_type() -> None:
    sent = call("write_file", "/tmp/a", constraints=wire_of(PROD))
    (back,) = unpack_calls(pack_calls([sent]))
    assert back == sent
    fields = decode(pack_calls([sent]))
    fields[0][9] = [{"kind": "forbid_path", "prefix": "/prod"}]  # not bytes
    (forged,) = unpack_calls(encode(fields))
    assert forged.malformed == "constraints of type list"


def test_carrying_stamps_the_set_and_refuses_prose() -> None:
    assert carried() == b""
    with carrying(PROD):
        assert ConstraintSet.from_wire(decode(carried())) == PROD
    assert carried() == b""
    with pytest.raises(InvalidArgumentError), carrying({"never": "/prod"}):  # type: ignore[arg-type]
        pass


def test_an_invariant_refuses_the_write_that_would_break_it_whoever_sent_it(
    tmp_path: Path,
) -> None:
    core = ResourceCore(Credit(), "credit", tmp_path)
    results = core.apply_batch([call("grant", c, 40) for c in ("a", "b", "c")])
    assert [r.value for r in results[:2]] == [40, 40]
    assert isinstance(results[2].error, InvariantViolationError)
    assert results[2].error.invariant == "exposure_under_cap"
    assert core.state == {"a": 40, "b": 40} and core.version == 2
    (topped,) = core.apply_batch([call("grant", "a", 20)])
    assert topped.value == 60 and sum(core.state.values()) == 100
    assert [r.reason for r in core.log.rejections()] == ["invariant"]
    core.close()
    again = ResourceCore(Credit(), "credit", tmp_path)
    assert again.state == {"a": 60, "b": 40}  # the refused grant left nothing in the log


def test_an_invariant_that_raises_does_not_hold(tmp_path: Path) -> None:
    core = ResourceCore(Broken(), "broken", tmp_path)
    ok, refused = core.apply_batch([call("put", "x", 1), call("put", "zero", 0)])
    assert ok.error is None
    assert (
        isinstance(refused.error, InvariantViolationError) and refused.error.invariant == "raises"
    )
    assert core.state == {"x": 1}


def test_a_model_call_under_constraints_gets_them_first_as_data(tmp_path: Path) -> None:
    from test_budget_lease import _metered

    model, link, _ = _metered(tmp_path)
    link.gate.set()
    hello = [Message(role="user", content="hello")]
    assert for_model(hello) == hello
    with carrying(PROD):
        first, rest = for_model(hello)[0], for_model(hello)[1:]
        assert rest == hello and first.role == "system"
        assert json.loads(first.content.removeprefix(MODEL_PREAMBLE)) == PROD.to_wire()
        model.inner = ScriptedModel(rules=[ScriptedRule(pattern=".", reply=lambda m: m[0].content)])
        reply = asyncio.run(model.complete(hello, max_tokens=64))
    assert reply.text is not None and reply.text.startswith(MODEL_PREAMBLE)
