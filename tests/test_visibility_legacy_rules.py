"""A storage root that still holds its within-transaction rules in the old file
(``visibility.json``, written by ``Visibility.enforce`` before the rules moved to
``visibility.sqlite``) keeps them: its gated writes are validated, never let through."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from visibility_for_tests import Shop

from actors import Veto
from actors._resource.validation import (
    VISIBILITY_STORE,
    Gate,
    GateRule,
    load_rules,
    save_rules,
)
from actors.lowlevel import ResourceCore, WriteCall
from policies import Latency, VisibilityPolicy, VisibilityRule
from runtime import SerialApplier, StorageError, VetoedError, encode

pytestmark = pytest.mark.timeout(60)

LEGACY_RULES = "visibility.json"  # the old file's name, as the old code spelled it

OLD_FILE = {  # as the old ``save_rules`` wrote it: json.dumps(..., sort_keys=True)
    "replicas": {"pricing": 2},
    "rules": {"PromiseMade": {"allow_on_failure": False, "deadline_s": 5.0,
                              "notify": ["pricing"]}},
}  # fmt: skip


def old_root(root: Path, text: str | None = None) -> Path:
    (root / LEGACY_RULES).write_text(text or json.dumps(OLD_FILE, sort_keys=True))
    return root


def promise(root: Path, asked: list[str]) -> Any:
    """One promise through a gate whose validator vetoes (recording who it asked)."""
    core = ResourceCore(Shop(), "shop", root)
    applier: SerialApplier[list[WriteCall]] = SerialApplier(
        lambda batch: [(True, core.apply_batch(calls)) for calls in batch]
    )

    async def ask(agent: str, *rest: Any) -> Veto | None:
        asked.append(agent)
        return Veto(reason="no promise at that price")

    gate = Gate("shop", root, Shop.emits, ask=ask)
    sent = WriteCall("promise", encode([["A", 10], {}]), "f", 1, uuid.uuid4().hex, "t" * 32)
    [result] = asyncio.run(gate.submit([sent], applier, lambda: core, lambda c: c))
    return result, core


def test_a_root_with_only_the_old_file_vetoes_what_its_rules_gate(tmp_path: Path) -> None:
    root = old_root(tmp_path)
    asked: list[str] = []
    result, core = promise(root, asked)
    assert isinstance(result.error, VetoedError) and asked == ["pricing"]
    assert core.version == 0 and core.state == {}


def test_the_old_rules_are_copied_into_the_store_and_the_old_file_left_alone(
    tmp_path: Path,
) -> None:
    root = old_root(tmp_path)
    text = (root / LEGACY_RULES).read_text()
    expected = ({"PromiseMade": GateRule(("pricing",), 5.0, False)}, {"pricing": 2})
    assert load_rules(root) == expected
    assert (root / VISIBILITY_STORE).exists() and (root / LEGACY_RULES).read_text() == text
    (root / LEGACY_RULES).unlink()
    assert load_rules(root) == expected  # from the store alone now


def test_rules_enforced_in_the_new_store_win_over_the_old_file(tmp_path: Path) -> None:
    root = old_root(tmp_path)
    save_rules(root, VisibilityPolicy(), {})  # a policy without gated events
    assert load_rules(root) == ({}, {})
    rule = VisibilityRule(
        notify=("support",), latency=Latency.WITHIN_TRANSACTION, deadline=timedelta(seconds=1)
    )
    save_rules(root, VisibilityPolicy(rules={"PromiseMade": rule}), {"support": 1})
    assert load_rules(root) == ({"PromiseMade": GateRule(("support",), 1.0, False)},
                                {"support": 1})  # fmt: skip


def test_an_unreadable_old_file_refuses_gated_writes_and_is_not_copied(tmp_path: Path) -> None:
    root = old_root(tmp_path, '{"rules": {"PromiseMade": ')
    with pytest.raises(StorageError, match=r"visibility\.json"):
        load_rules(root)
    assert not (root / VISIBILITY_STORE).exists()
    with pytest.raises(StorageError):
        promise(root, [])
