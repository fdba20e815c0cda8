"""``check_claims``: each claim against the primary source; a missing or different value
refutes it; numbers within a tolerance, a bool is never a number."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actors import Claim, VerifyClaims, check_claims

SOURCE = {"revenue": 12.5, "growth": 4.2, "audited": True, "region": "EU", "blank": None}


def _request(**claims: object) -> VerifyClaims:
    return VerifyClaims(stage="publish", claims=[Claim(name=k, value=v) for k, v in claims.items()])


def test_every_true_claim_verifies() -> None:
    verdict = check_claims(
        _request(revenue=12.5, growth=4.2 + 1e-12, region="EU"), SOURCE.__getitem__
    )
    assert (verdict.verified, verdict.checked, verdict.rejected, verdict.detail) == (
        True, ["revenue", "growth", "region"], [], "",
    )  # fmt: skip


def test_a_fabricated_missing_or_mistyped_claim_is_rejected_with_what_the_source_has() -> None:
    request = _request(revenue=12.5, growth=73.0, margin=0.3, audited=1, blank=None)
    verdict = check_claims(request, SOURCE.__getitem__)
    assert verdict.verified is False
    assert verdict.checked == ["revenue"]
    assert verdict.rejected == ["growth", "margin", "audited", "blank"]
    assert verdict.detail.split("; ") == [
        "growth: claimed 73.0, the source has 4.2",
        "margin: claimed 0.3, the source has nothing",
        "audited: claimed 1, the source has True",
        "blank: claimed None, the source has nothing",
    ]


def test_a_request_without_claims_is_refused() -> None:
    with pytest.raises(ValidationError):
        VerifyClaims(stage="publish", claims=[])
