"""Ownership as plain classes: the check at the resource, changes, their log, restarts."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ownership_for_tests import Drafts

from actors import Resource, write
from actors._resource.ownership import OwnershipChange, pack_change, unpack_change
from actors.lowlevel import ResourceCore, WriteCall
from policies import WriteAuthority
from runtime import (
    ConfigurationError,
    FencedError,
    IdempotencyKeyReusedError,
    InvalidArgumentError,
    Location,
    NotOwnerError,
    UnauthorizedWriterError,
    encode,
)


def call(op: str, *args: Any, writer: str, trace: str = "a" * 32) -> WriteCall:
    return WriteCall(op, encode([list(args), {}]), writer, 1, uuid.uuid4().hex, trace)


def change(
    action: str, entity: str, *, by: str, to: str = "", key: str = "", handoff: str = ""
) -> OwnershipChange:
    return OwnershipChange(
        action, entity, to, handoff, key or uuid.uuid4().hex, by, 1, "", "b" * 32, "t-1"
    )


def open_core(root: Path, **kwargs: Any) -> ResourceCore:
    return ResourceCore(Drafts(), "drafts", root, **kwargs)


def test_an_unowned_entity_takes_any_writer_and_an_owned_one_only_its_owner(
    store_root: Location,
) -> None:
    core = open_core(store_root)
    assert core.apply_batch([call("revise", "d1", "v1", writer="research")])[0].error is None
    core.change_owner(change("own", "d1", by="system", to="editorial"))
    ok, refused, other = core.apply_batch([
        call("revise", "d1", "v2", writer="editorial"),
        call("revise", "d1", "half", writer="research", trace="c" * 32),
        call("revise", "d2", "x", writer="research"),
    ])  # fmt: skip
    assert (ok.error, other.error) == (None, None)
    assert isinstance(refused.error, NotOwnerError)
    assert (refused.error.entity, refused.error.owner, refused.error.writer) == (
        "d1", "editorial", "research",
    )  # fmt: skip
    assert core.state["d1"] == {"text": "v2", "rev": 2}
    (rejection,) = core.log.rejections()
    assert (rejection.reason, rejection.writer, rejection.trace_id) == (
        "not_owner", "research", "c" * 32,
    )  # fmt: skip
    assert "owned by 'editorial'" in rejection.detail


def test_the_system_is_refused_too_and_writes_without_an_entity_are_not_checked(
    store_root: Location,
) -> None:
    core = open_core(store_root)
    core.change_owner(change("own", "d1", by="system", to="editorial"))
    published, noted = core.apply_batch(
        [call("publish", "d1", writer="system"), call("note", "hi", writer="research")]
    )
    assert isinstance(published.error, NotOwnerError)  # the callable entity form
    assert noted.error is None


def test_transfer_and_release_by_the_owner_or_the_system_only(store_root: Location) -> None:
    core = open_core(store_root)
    core.change_owner(change("own", "d1", by="editorial", to="editorial"))
    with pytest.raises(NotOwnerError):
        core.change_owner(change("transfer", "d1", by="research", to="research"))
    with pytest.raises(NotOwnerError):
        core.change_owner(change("own", "d1", by="system", to="research"))
    moved = core.change_owner(
        change("transfer", "d1", by="editorial", to="publishing", handoff="approved rev 2")
    )
    assert (moved.previous, moved.owner, moved.by, moved.handoff) == (
        "editorial", "publishing", "editorial", "approved rev 2",
    )  # fmt: skip
    assert isinstance(
        core.apply_batch([call("revise", "d1", "late", writer="editorial")])[0].error,
        NotOwnerError,
    )
    with pytest.raises(NotOwnerError):
        core.change_owner(change("release", "d1", by="editorial"))
    core.change_owner(change("release", "d1", by="system"))
    assert core.owners.owner("d1") is None
    with pytest.raises(NotOwnerError):  # nothing to transfer
        core.change_owner(change("transfer", "d1", by="system", to="research"))
    history = core.owners.history("d1")
    assert [(r.action, r.previous, r.owner) for r in history] == [
        ("own", "", "editorial"),
        ("transfer", "editorial", "publishing"),
        ("release", "publishing", ""),
    ]
    assert [r.reason for r in core.log.rejections()] == ["not_owner"] * 5


def test_ownership_survives_a_new_incarnation_and_stale_ones_are_fenced(
    store_root: Location,
) -> None:
    old = open_core(store_root)
    old.change_owner(change("own", "d1", by="system", to="editorial"))
    new = open_core(store_root)
    assert new.owners.owner("d1") == "editorial"
    assert isinstance(
        new.apply_batch([call("revise", "d1", "x", writer="research")])[0].error, NotOwnerError
    )
    with pytest.raises(FencedError):
        old.change_owner(change("transfer", "d1", by="system", to="research"))
    assert new.owners.owner("d1") == "editorial"
    assert open_core(store_root).owners.owner("d1") == "editorial"


def test_a_change_key_applies_once_and_binds_its_content(store_root: Location) -> None:
    core = open_core(store_root)
    first = core.change_owner(change("own", "d1", by="system", to="editorial", key="k"))
    core.change_owner(change("transfer", "d1", by="system", to="research"))
    again = core.change_owner(change("own", "d1", by="system", to="editorial", key="k"))
    assert again == first and core.owners.owner("d1") == "research"
    with pytest.raises(IdempotencyKeyReusedError):
        core.change_owner(change("release", "d1", by="system", key="k"))


def test_bad_changes_get_typed_errors(store_root: Location) -> None:
    core = open_core(store_root, authority=WriteAuthority.of(["editorial", "system"]))
    with pytest.raises(UnauthorizedWriterError):  # the new owner could never write
        core.change_owner(change("own", "d1", by="system", to="research"))
    with pytest.raises(InvalidArgumentError):  # an agent claims only for itself
        core.change_owner(change("own", "d1", by="editorial", to="system"))
    with pytest.raises(InvalidArgumentError):
        core.change_owner(change("own", "d1", by="system", to="no spaces"))
    with pytest.raises(UnauthorizedWriterError):  # not a declared writer at all
        core.change_owner(change("own", "d1", by="research", to="research"))
    assert core.owners.owner("d1") is None
    assert len(core.log.rejections()) == 4


@pytest.mark.parametrize(
    "blob",
    [b"\x00", encode([1, 2]), encode(["steal", "d1", "", "", "k", "w", 1, "", "", ""]),
     encode(["own", "", "a", "", "k", "w", 1, "", "", ""]),
     encode(["own", "d1", "a", "", "k", "w", "1", "", "", ""]),
     encode(["own", "d1", "a", "x" * 5000, "k", "w", 1, "", "", ""]), "not bytes"],
)  # fmt: skip
def test_malformed_changes_are_refused(blob: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        unpack_change(blob)


def test_a_change_crosses_the_wire_unchanged() -> None:
    sent = change("transfer", "d1", by="editorial", to="publishing", handoff="rev 3")
    assert unpack_change(pack_change(sent)) == sent


def test_a_write_whose_entity_is_not_plain_is_refused_while_anything_is_owned(
    store_root: Location,
) -> None:
    core = open_core(store_root)
    core.change_owner(change("own", "d1", by="system", to="editorial"))
    (result,) = core.apply_batch([call("revise", ["d1"], "x", writer="research")])
    assert isinstance(result.error, InvalidArgumentError)
    assert "d1" not in core.state


def test_an_entity_naming_no_parameter_is_a_configuration_error() -> None:
    class Bad(Resource):
        @write(entity="missing")
        def op(self, state: dict[str, Any], draft_id: str) -> None: ...

    with pytest.raises(ConfigurationError):
        ResourceCore(Bad(), "bad", Path("/nonexistent"))


AGENTS = ["editorial", "research", "publishing", "system"]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["write", "own", "transfer", "release"]),
        st.sampled_from(AGENTS),  # who acts
        st.sampled_from(AGENTS[:3]),  # the new owner
        st.sampled_from(["d1", "d2"]),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_random_writes_and_changes_never_apply_a_non_owners_write(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, str, str]]
) -> None:
    core = open_core(tmp_path_factory.mktemp("own"))
    owners: dict[str, str] = {}  # the model
    for action, by, to, entity in steps:
        if action == "write":
            (result,) = core.apply_batch([call("revise", entity, f"{by}", writer=by)])
            allowed = entity not in owners or owners[entity] == by
            assert (result.error is None) == allowed
            continue
        current = owners.get(entity)
        if action == "own":
            allowed = by in ("system", to) and current in (None, to)
        else:
            allowed = current is not None and by in ("system", current)
        try:
            core.change_owner(change(action, entity, by=by, to=to))
        except (NotOwnerError, InvalidArgumentError):
            assert not allowed
            continue
        assert allowed
        if action == "release":
            owners.pop(entity)
        else:
            owners[entity] = to
    assert {e: core.owners.owner(e) for e in ("d1", "d2")} == {
        e: owners.get(e) for e in ("d1", "d2")
    }


class Keyed(Resource):
    @write(entity="draft_id")
    def put(self, state: dict[str, Any], text: str, *, draft_id: str = "d1") -> None:
        state[draft_id] = text


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(["x"], {"draft_id": "d1"}), (["x"], {}), ([], {"text": "x", "draft_id": "d1"})],
    ids=["keyword", "default", "all-keywords"],
)
def test_the_entity_is_found_however_the_arguments_are_passed(
    store_root: Location, args: list[Any], kwargs: dict[str, Any]
) -> None:
    core = ResourceCore(Keyed(), "keyed", store_root)
    core.change_owner(change("own", "d1", by="system", to="editorial"))
    refused = WriteCall("put", encode([args, kwargs]), "research", 1, uuid.uuid4().hex, "a" * 32)
    allowed = WriteCall("put", encode([args, kwargs]), "editorial", 1, uuid.uuid4().hex, "a" * 32)
    first, second = core.apply_batch([refused, allowed])
    assert isinstance(first.error, NotOwnerError) and second.error is None
    assert core.state == {"d1": "x"}
