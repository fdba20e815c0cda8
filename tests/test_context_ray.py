"""Derived reads and contracts on a real Ray: many agents reading a feature at one
version cause one computation; a message of another contract version is refused at the
agent's boundary."""

from __future__ import annotations

import pytest
import ray
from context_for_tests import (
    AvailableItemV1,
    AvailableItemV2,
    Catalog,
    FeatureReader,
    Look,
    Stock,
    StockAnswerV2,
)

from actors import System
from runtime import ContractMismatchError

pytestmark = pytest.mark.timeout(300)


def test_a_derived_read_is_computed_once_per_version_for_every_agent(system: System) -> None:
    catalog = system.resource(Catalog, name="catalog")
    catalog.note("A", 3)
    catalog.note("B", 4)
    readers = system.agent(FeatureReader, name="features", replicas=3)
    looks = [readers.call(Look(topic="x"), replica=i % 3) for i in range(9)]
    assert [r.version for r in ray.get(looks, timeout=120)] == [7] * 9
    assert catalog.status()["derived"] == {"computed": 1, "cached": 8}
    catalog.note("C", 1)
    looks = [readers.call(Look(topic="x"), replica=i % 3) for i in range(6)]
    assert [r.version for r in ray.get(looks, timeout=120)] == [8] * 6
    assert catalog.status()["derived"] == {"computed": 2, "cached": 13}


def test_another_contract_version_is_refused_at_the_agent_boundary(system: System) -> None:
    stock = system.agent(Stock, name="stock")
    answer = ray.get(stock.call(AvailableItemV2(sku="A", qty=2, warehouse="w")), timeout=120)
    assert answer == StockAnswerV2(sku="A", available=2)
    with pytest.raises(ContractMismatchError) as refused:
        ray.get(stock.call(AvailableItemV1(sku="A", qty=2)), timeout=120)
    assert (refused.value.contract, refused.value.expected, refused.value.got) == (
        "available_item", 2, 1,
    )  # fmt: skip
    with pytest.raises(ContractMismatchError) as output:  # a stale implementation answers v1
        ray.get(stock.call(AvailableItemV2(sku="A", qty=2, warehouse="old")), timeout=120)
    assert (output.value.contract, output.value.got) == ("stock_answer", 1)
