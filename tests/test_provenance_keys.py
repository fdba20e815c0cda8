"""Per-key provenance at the resource, as a plain class: a read that names its keys
reports the weakest mark of those keys only (a deleted key the mark of its deletion, a
key never written the system's), a read that names none the whole state's; the marks
are saved with each snapshot and survive recovery; a snapshot saved before marks were
(an old log, migrated) gives its keys the unknown mark, never a stronger one."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from actors import Resource, read, write
from actors._resource.calls import WriteCall
from actors._resource.core import ResourceCore
from actors._resource.provenance import MAX_GONE, StateMarks
from policies import Provenance, ResourcePolicy
from runtime import encode

V, U, S = Provenance.VERIFIED, Provenance.UNVERIFIED_AGENT, Provenance.SYSTEM


class Desk(Resource):
    vouchers = {"checker": Provenance.VERIFIED}

    @write
    def put(self, state: dict[str, Any], key: str, value: float) -> None:
        state[key] = value

    @write
    def drop(self, state: dict[str, Any], key: str) -> None:
        state.pop(key, None)

    @read(keys="key")
    def get(self, state: dict[str, Any], key: str) -> Any:
        return state.get(key)

    @read(keys="names")
    def some(self, state: dict[str, Any], names: list[str]) -> list[Any]:
        return [state.get(n) for n in names]

    @read(keys=lambda first, second: (first, second))
    def pair(self, state: dict[str, Any], first: str, second: str) -> tuple[Any, Any]:
        return state.get(first), state.get(second)

    @read(keys="spec")  # a dict is no key: this read answers for the whole state
    def by_spec(self, state: dict[str, Any], spec: dict[str, str]) -> Any:
        return state.get(spec["key"])

    @read
    def everything(self, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)


def put(key: str, value: float, *, writer: str, mark: Provenance) -> WriteCall:
    args = encode([[key, value], {}])
    return WriteCall("put", args, writer, 1, uuid.uuid4().hex, "c" * 32, provenance=mark)


def drop(key: str, *, writer: str, mark: Provenance) -> WriteCall:
    args = encode([[key], {}])
    return WriteCall("drop", args, writer, 1, uuid.uuid4().hex, "c" * 32, provenance=mark)


def marks_of(core: ResourceCore) -> dict[str, Provenance]:
    def one(op: str, *args: Any) -> Provenance:
        return core.read(op, list(args), {}).provenance

    return {
        "verified": one("get", "q3"),
        "draft": one("get", "draft"),
        "both": one("some", ["q3", "draft"]),
        "pair": one("pair", "q3", "q3"),
        "whole": one("everything"),
        "never": one("get", "never-written"),
    }


def filled(tmp_path: Path, **policy: Any) -> ResourceCore:
    core = ResourceCore(Desk(), "desk", tmp_path, policy=ResourcePolicy(**policy))
    core.apply_batch(
        [
            put("q3", 4.2, writer="checker", mark=V),
            put("draft", 7.3, writer="research", mark=V),  # believed as unverified
        ]
    )
    return core


EXPECTED = {"verified": V, "draft": U, "both": U, "pair": V, "whole": U, "never": S}


def test_a_read_that_names_its_keys_reports_only_their_marks(tmp_path: Path) -> None:
    core = filled(tmp_path)
    assert marks_of(core) == EXPECTED
    core.apply_batch([drop("draft", writer="research", mark=U)])
    after = marks_of(core)
    assert (after["draft"], after["whole"]) == (U, V)  # gone by an unverified hand
    core.apply_batch([put("draft", 4.2, writer="checker", mark=V)])
    assert core.read("get", ["draft"], {}).provenance is V


def test_keys_the_arguments_do_not_give_fall_back_to_the_whole_state(tmp_path: Path) -> None:
    core = filled(tmp_path)
    assert core.read("by_spec", [{"key": "q3"}], {}).provenance is U
    assert core.read("get", [], {"key": "q3"}).provenance is V  # a keyword works too


def test_the_marks_survive_recovery_from_a_snapshot(tmp_path: Path) -> None:
    core = filled(tmp_path, snapshot_every=1)
    core.apply_batch([put("gone", 1.0, writer="system", mark=S)])
    core.apply_batch([drop("gone", writer="research", mark=U)])
    core.close()
    again = ResourceCore(Desk(), "desk", tmp_path)
    assert marks_of(again) == EXPECTED
    assert again.read("get", ["gone"], {}).provenance is U


def test_an_old_snapshot_without_marks_gives_its_keys_the_unknown_mark(tmp_path: Path) -> None:
    core = filled(tmp_path, snapshot_every=1)
    path = core.log.path
    core.close()
    with sqlite3.connect(path) as conn:  # the snapshot table as it was before marks
        conn.execute("ALTER TABLE snapshot DROP COLUMN marks")
    again = ResourceCore(Desk(), "desk", tmp_path)
    assert set(marks_of(again).values()) == {U}  # never stronger than it knows
    with sqlite3.connect(path) as conn:
        assert "marks" in {row[1] for row in conn.execute("PRAGMA table_info(snapshot)")}


def test_forgotten_deletions_fold_into_the_mark_of_every_absent_key() -> None:
    marks = StateMarks({})
    marks.note([[f"k{i}", True, 1, False, None] for i in range(MAX_GONE + 1)], U)
    assert marks.of("k0") is U and marks.of("never") is U  # k0 was forgotten first
    fresh = StateMarks({})
    fresh.note([["a", False, None, True, 1]], V)
    assert (fresh.of("a"), fresh.of("never")) == (V, S)
