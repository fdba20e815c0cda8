"""Provenance at the resource as a plain class: the trust rule caps a claimed mark at
what its writer can vouch for, ``requires`` refuses weaker writes (logged with the
trace), the log records each write's mark (also in a log made before the column
existed), and reads report the weakest mark of the state, also after recovery."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from provenance_for_tests import Reports

from actors._resource.calls import WriteCall, pack_calls, unpack_calls
from actors._resource.core import ResourceCore
from policies import Provenance
from runtime import ConfigurationError, ProvenanceError, encode

V, U = Provenance.VERIFIED, Provenance.UNVERIFIED_AGENT


def call(op: str, *args: Any, writer: str, mark: Provenance) -> WriteCall:
    return WriteCall(
        op, encode([list(args), {}]), writer, 1, uuid.uuid4().hex, "b" * 32, provenance=mark
    )


def test_a_claim_is_capped_at_what_its_writer_can_vouch_for(tmp_path: Path) -> None:
    core = ResourceCore(Reports(), "reports", tmp_path)
    results = core.apply_batch(
        [
            call("publish", "q3", 4.1, writer="research", mark=V),  # forged: cannot vouch
            call("publish", "q3", 4.2, writer="checker", mark=U),  # the checker's input unverified
            call("publish", "q3", 4.3, writer="checker", mark=Provenance.HUMAN),  # capped
            call("publish", "q4", 5.0, writer="system", mark=Provenance.SYSTEM),
            call("draft", "q3", 9.9, writer="research", mark=Provenance.HUMAN),  # no requirement
        ]
    )
    errors = [r.error for r in results]
    assert [type(e) for e in errors] == [ProvenanceError, ProvenanceError, type(None)] + [
        type(None)
    ] * 2
    assert isinstance(errors[0], ProvenanceError)
    assert (errors[0].where, errors[0].required, errors[0].actual) == (
        "reports:publish",
        "verified",
        "unverified_agent",
    )
    assert [(r.op, r.writer, r.provenance) for r in core.log.records()] == [
        ("publish", "checker", "verified"),
        ("publish", "system", "system"),
        ("draft", "research", "unverified_agent"),
    ]
    rejections = core.log.rejections()
    assert [(r.reason, r.writer, r.trace_id) for r in rejections] == [
        ("provenance", "research", "b" * 32),
        ("provenance", "checker", "b" * 32),
    ]
    assert "requires provenance verified" in rejections[0].detail
    assert core.state == {"published:q3": 4.3, "published:q4": 5.0, "draft:q3": 9.9}


def test_reads_report_the_weakest_mark_of_the_state_also_after_recovery(tmp_path: Path) -> None:
    core = ResourceCore(Reports(), "reports", tmp_path)
    assert core.read("get", ["x"], {}).provenance is Provenance.SYSTEM  # empty: the system's
    core.apply_batch([call("publish", "q3", 4.3, writer="checker", mark=V)])
    assert core.read("get", ["published:q3"], {}).provenance is V
    core.apply_batch([call("draft", "q3", 1.0, writer="research", mark=U)])
    assert core.read("get", ["published:q3"], {}).provenance is U
    core.close()
    again = ResourceCore(Reports(), "reports", tmp_path)
    assert again.read("get", ["draft:q3"], {}).provenance is U
    assert [r.provenance for r in again.log.audit()] == ["verified", "unverified_agent"]


def test_an_older_log_gains_the_column_and_its_records_read_as_unverified(tmp_path: Path) -> None:
    core = ResourceCore(Reports(), "reports", tmp_path)
    core.apply_batch([call("draft", "a", 1.0, writer="system", mark=Provenance.SYSTEM)])
    path = core.log.path
    core.close()
    with sqlite3.connect(path) as conn:  # the log as it was before provenance existed
        conn.execute("ALTER TABLE log DROP COLUMN provenance")
    again = ResourceCore(Reports(), "reports", tmp_path)
    assert [r.provenance for r in again.log.records()] == ["unverified_agent"]
    assert again.state == {"draft:a": 1.0}
    assert again.read("get", ["draft:a"], {}).provenance is U


def test_a_mark_that_is_not_a_provenance_is_a_malformed_call() -> None:
    blob = pack_calls([call("publish", "q", 1.0, writer="system", mark=V)])
    good = unpack_calls(blob)[0]
    assert (good.malformed, good.provenance) == (None, V)
    from runtime import decode

    fields = decode(blob)
    fields[0][10] = "trusted-by-me"
    bad = unpack_calls(encode(fields))[0]
    assert bad.malformed == "provenance 'trusted-by-me' is not a Provenance"


def test_requires_must_be_a_provenance() -> None:
    from actors import write

    with pytest.raises(ConfigurationError):
        write(requires="verified")  # type: ignore[arg-type]
