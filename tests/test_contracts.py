"""Contracts: versioned pydantic models by name, a consistency check over the registry,
and the one boundary check every receiver uses."""

from __future__ import annotations

import pytest
from context_for_tests import (
    AvailableItemV1,
    AvailableItemV2,
    StockAnswerV1,
    StockAnswerV2,
)
from pydantic import BaseModel

from actors import check_contract, check_contracts, contract
from actors._contracts import ContractChange, ContractId, contract_of, contracts
from actors._supervisor.state import validate
from runtime import ConfigurationError, ContractMismatchError

pytestmark = pytest.mark.timeout(30)


def test_a_contract_is_a_class_s_own_name_and_version() -> None:
    assert contract_of(AvailableItemV2) == ContractId("available_item", 2)
    assert contract_of(AvailableItemV1(sku="A", qty=1)) == ContractId("available_item", 1)

    class Derived(AvailableItemV2):
        pass

    assert contract_of(Derived) is None  # not inherited: a subclass is registered itself
    assert contracts()[ContractId("available_item", 2)] is AvailableItemV2


def test_registration_refuses_duplicates_and_non_models() -> None:
    with pytest.raises(ConfigurationError, match="already"):

        @contract("available_item", version=2)
        class Other(BaseModel):
            sku: str

    with pytest.raises(ConfigurationError, match="not a pydantic model"):
        contract("thing", version=1)(dict)  # type: ignore[type-var]
    for version in (0, -1, True, 1.0):
        with pytest.raises(ConfigurationError):
            contract("thing", version=version)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        contract("no spaces allowed", version=1)


def test_the_registered_contracts_are_consistent_and_their_changes_reported() -> None:
    report = check_contracts()
    assert report.problems == ()
    assert (
        ContractChange(
            "available_item", 1, 2, added=("warehouse",), removed=(), retyped=(), newly_required=()
        )
        in report.changes
    )
    assert (
        ContractChange("stock_answer", 1, 2, added=(), removed=(), retyped=(), newly_required=())
        in report.changes
    )


def test_an_inconsistent_registry_is_reported() -> None:
    class Loose(BaseModel):
        qty: str

    registry = {
        ContractId("available_item", 1): AvailableItemV1,
        ContractId("available_item", 3): AvailableItemV2,  # speaks v2, filed as v3
        ContractId("available_item", 4): Loose,  # names no contract at all
        ContractId("other", 1): int,  # not a model
    }
    report = check_contracts(registry)  # type: ignore[arg-type]
    assert len(report.problems) == 3
    assert all(
        p.startswith(("available_item@v3", "available_item@v4", "other@v1"))
        for p in report.problems
    )


def test_a_mismatch_is_refused_at_the_boundary_and_a_match_passes() -> None:
    check_contract(AvailableItemV2, AvailableItemV2(sku="A", qty=1, warehouse="w"), "here")
    check_contract(AvailableItemV2, {"sku": "A"}, "here")  # plain data names none: validated
    check_contract(BaseModel, AvailableItemV1(sku="A", qty=1), "here")  # receiver names none
    with pytest.raises(ContractMismatchError) as raised:
        check_contract(AvailableItemV2, AvailableItemV1(sku="A", qty=1), "agent stock: input")
    assert (raised.value.contract, raised.value.expected, raised.value.got) == (
        "available_item", 2, 1,
    )  # fmt: skip
    with pytest.raises(ContractMismatchError) as other:
        check_contract(AvailableItemV2, StockAnswerV2(sku="A", available=1), "x")
    assert other.value.got is None


def test_the_supervisor_refuses_an_output_of_another_contract_version() -> None:
    ok, _ = validate(StockAnswerV2, StockAnswerV2(sku="A", available=1))
    assert ok == StockAnswerV2(sku="A", available=1)
    refused, why = validate(StockAnswerV2, StockAnswerV1(sku="A", available=1))
    assert refused is None and "version 2" in why and "version 1" in why
