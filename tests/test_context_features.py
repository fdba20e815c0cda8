"""Derived reads as a plain class: computed once per state version, served from a bounded
cache, recomputed once after a write, never served by a fenced incarnation."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import context_for_tests
import pytest
from context_for_tests import Catalog

from actors import Resource, derived, write
from actors._resource.features import FeatureCache
from actors.lowlevel import ResourceCore, WriteCall
from runtime import FencedError, InvalidArgumentError, encode

pytestmark = pytest.mark.timeout(60)


def note(sku: str, price: int) -> WriteCall:
    return WriteCall("note", encode([[sku, price], {}]), "w", 1, uuid.uuid4().hex, "e" * 32)


def total(cache: FeatureCache, core: ResourceCore, factor: int = 1) -> int:
    blob = encode([[factor], {}])
    value: int = cache.read(core, "total", blob, [factor], {}).value
    return value


def test_computed_once_per_version_and_once_again_after_a_write(tmp_path: Path) -> None:
    core = ResourceCore(Catalog(), "catalog", tmp_path)
    cache = FeatureCache(Catalog, "catalog")
    context_for_tests.COMPUTED.clear()
    core.apply_batch([note("A", 3), note("B", 4)])
    assert [total(cache, core) for _ in range(10)] == [7] * 10
    assert len(context_for_tests.COMPUTED) == 1
    core.apply_batch([note("C", 1)])
    assert [total(cache, core) for _ in range(10)] == [8] * 10
    assert len(context_for_tests.COMPUTED) == 2
    assert total(cache, core, 2) == 16  # other arguments: computed for themselves
    assert cache.counts() == {"computed": 3, "cached": 18}
    plain = cache.read(core, "price", encode([["A"], {}]), ["A"], {})
    assert plain.value == 3 and cache.counts()["computed"] == 3  # a plain read is not cached


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    core = ResourceCore(Catalog(), "catalog", tmp_path)
    cache = FeatureCache(Catalog, "catalog", size=4)
    core.apply_batch([note("A", 1)])
    for factor in range(10):
        total(cache, core, factor)
    assert len(cache._values) == 4
    total(cache, core, 9)
    total(cache, core, 0)  # evicted: computed again
    assert cache.counts() == {"computed": 11, "cached": 1}


def test_a_fenced_incarnation_serves_nothing_from_its_cache(tmp_path: Path) -> None:
    old = ResourceCore(Catalog(), "catalog", tmp_path)
    cache = FeatureCache(Catalog, "catalog")
    old.apply_batch([note("A", 1)])
    assert total(cache, old) == 1
    ResourceCore(Catalog(), "catalog", tmp_path)  # a newer incarnation opens the log
    with pytest.raises(FencedError):
        total(cache, old)


class Shelf(Resource):
    """Nested state a write mutates in place before it refuses."""

    def initial_state(self) -> dict[str, Any]:
        return {"items": ["a"]}

    @write
    def put_or_fail(self, state: dict[str, Any], item: str, fail: bool) -> int:
        state["items"].append(item)  # in place, then perhaps refused
        if fail:
            raise InvalidArgumentError("refused after the change")
        return len(state["items"])

    @derived
    def items(self, state: dict[str, Any]) -> list[str]:
        found: list[str] = state["items"]  # the live nested value, no copy
        return found


def test_a_refused_write_leaves_no_trace_in_a_cached_value(tmp_path: Path) -> None:
    core = ResourceCore(Shelf(), "shelf", tmp_path)
    cache = FeatureCache(Shelf, "shelf")
    blob = encode([[], {}])
    assert cache.read(core, "items", blob, [], {}).value == ["a"]
    put = WriteCall("put_or_fail", encode([["b", True], {}]), "w", 1, uuid.uuid4().hex, "e" * 32)
    (refused,) = core.apply_batch([put])
    assert isinstance(refused.error, InvalidArgumentError) and core.version == 0
    assert cache.read(core, "items", blob, [], {}).value == ["a"]
    assert core.read("items", [], {}).value == ["a"]
    assert cache.counts() == {"computed": 1, "cached": 1}
