"""The public names of each package are pinned: changing them is a decision."""

from __future__ import annotations

import actors
import policies
import runtime


def test_actors_exports() -> None:
    assert {
        "Agent", "AgentGroup", "AgentHost", "AsyncResourceHandle", "LogRecord", "ReadResult",
        "Reconnect", "Resource", "ResourceCore", "ResourceHandle", "ResourceHost", "ResourceLog",
        "System", "Write", "WriteCall", "WriteResult", "handler", "read", "write",
    } <= set(actors.__all__)  # fmt: skip


def test_every_export_exists_and_all_is_sorted() -> None:
    for package in (actors, runtime, policies):
        assert list(package.__all__) == sorted(package.__all__), package.__name__
        for name in package.__all__:
            assert hasattr(package, name), f"{package.__name__}.{name}"


def test_runtime_and_policies_core_exports() -> None:
    assert {
        "AgentcastError", "Clock", "Envelope", "Provenance", "SystemClock", "decode",
        "encode", "storage_root", "transaction",
    } <= set(runtime.__all__)  # fmt: skip
    assert {"Durability", "ResourcePolicy", "WriteAuthority"} <= set(policies.__all__)
