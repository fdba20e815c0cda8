"""The journaled state view: undo and O(change) before/after records."""

from __future__ import annotations

from typing import Any

from actors._resource.state_view import StateView, apply_changes


def test_changes_hold_only_touched_keys_that_changed() -> None:
    data: dict[str, Any] = {f"k{i}": i for i in range(1000)}
    view = StateView(data)
    view["k1"] = 100
    view["new"] = [1]
    _ = view["k2"]
    view["k3"] = 3  # same value: not a change
    del view["k4"]
    changes = view.changes()
    assert sorted(c[0] for c in changes) == ["k1", "k4", "new"]
    assert ["k1", True, 1, True, 100] in changes
    assert ["new", False, None, True, [1]] in changes
    assert ["k4", True, 4, False, None] in changes


def test_undo_restores_nested_in_place_mutation() -> None:
    data: dict[str, Any] = {"accounts": {"a": [1, 2]}, "n": 1}
    view = StateView(data)
    view["accounts"]["a"].append(3)
    view["accounts"]["b"] = [9]
    view["n"] = 2
    view["extra"] = True
    view.undo()
    assert data == {"accounts": {"a": [1, 2]}, "n": 1}


def test_replay_and_revert_of_changes() -> None:
    before: dict[str, Any] = {"a": 1, "b": {"x": [1]}}
    data = {"a": 1, "b": {"x": [1]}}
    view = StateView(data)
    view["b"]["x"].append(2)
    del view["a"]
    view["c"] = "new"
    changes = view.changes()
    replayed = {"a": 1, "b": {"x": [1]}}
    apply_changes(replayed, changes)
    assert replayed == data
    apply_changes(replayed, changes, forward=False)
    assert replayed == before


def test_mapping_helpers_are_journaled() -> None:
    data: dict[str, Any] = {"a": [1]}
    view = StateView(data)
    view.setdefault("b", []).append(5)
    view.pop("a")
    view.update({"c": 3})
    assert data == {"b": [5], "c": 3}
    view.undo()
    assert data == {"a": [1]}
