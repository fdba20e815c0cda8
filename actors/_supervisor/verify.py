"""The verification step: a verifier agent, run by the supervisor as a subtask of its
own (stage ``verify:<stage>``), checks an output's claims against a primary source.

The request (``VerifyClaims``) and the verdict (``Verdict``) are ordinary supervised
messages, so the verdict is kept in the subtask table like any output (its history,
handoff record and trace). A verifier agent (``verifier = True`` on its class) that
finds every claim true calls ``self.vouch()``: what it makes from then on is VERIFIED,
which the resources that declare it among their ``vouchers`` believe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from runtime import InvalidArgumentError

_MISSING = object()


class Claim(BaseModel):
    """One checkable statement of an output: ``name`` has ``value``.

    Attributes:
        name: what the claim is about, as the primary source names it.
        value: the claimed value (plain data).
        claimed_by: who made the claim (an agent name, a task id). Default "".
    """

    name: str
    value: Any
    claimed_by: str = ""


class VerifyClaims(BaseModel):
    """The request a verifier agent handles: check ``claims`` made for ``stage``."""

    stage: str
    claims: list[Claim] = Field(min_length=1)


class Verdict(BaseModel):
    """A verifier's answer: every claim checked, none refuted, or the ones that failed.

    Attributes:
        stage: the stage whose output was checked.
        verified: every claim matched the primary source.
        checked: names of the claims that matched. rejected: names that did not (a
            missing or different value in the primary source).
        detail: one line per rejected claim: claimed versus found.
    """

    stage: str
    verified: bool
    checked: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    detail: str = ""


def verify_request(stage: str, claims: list[Claim]) -> VerifyClaims:
    """The request of an explicit ``verify`` call.

    Raises:
        InvalidArgumentError: no claims.
    """
    if not claims:
        raise InvalidArgumentError(f"verify {stage!r}: no claims to check")
    return VerifyClaims(stage=stage, claims=claims)


def claims_of(output: BaseModel, by: str) -> list[Claim]:
    """The claims an output makes, for its stage's verifier: its ``claims`` field when it
    is a list of ``Claim``, else one claim per field (``name`` the field's, made ``by``)."""
    listed = getattr(output, "claims", None)
    if isinstance(listed, list) and listed and all(isinstance(c, Claim) for c in listed):
        return list(listed)
    data = output.model_dump(mode="json")
    return [Claim(name=name, value=value, claimed_by=by) for name, value in data.items()]


def check_claims(
    request: VerifyClaims, source: Callable[[str], Any], *, rel_tol: float = 1e-9
) -> Verdict:
    """Compare each claim with what ``source(name)`` (the primary source: a callable or
    a resource read) says; numbers match within ``rel_tol``, anything else by equality.
    A name the source does not know (``KeyError`` or None) refutes its claim."""
    checked, rejected, lines = [], [], []
    for claim in request.claims:
        try:
            found = source(claim.name)
        except KeyError:
            found = _MISSING
        if found is not _MISSING and found is not None and _same(claim.value, found, rel_tol):
            checked.append(claim.name)
        else:
            rejected.append(claim.name)
            shown = "nothing" if found is _MISSING or found is None else repr(found)
            lines.append(f"{claim.name}: claimed {claim.value!r}, the source has {shown}")
    return Verdict(
        stage=request.stage, verified=not rejected, checked=checked, rejected=rejected,
        detail="; ".join(lines),
    )  # fmt: skip


def _same(claimed: Any, found: Any, rel_tol: float) -> bool:
    numbers = (int, float)
    if isinstance(claimed, numbers) and isinstance(found, numbers):
        if isinstance(claimed, bool) or isinstance(found, bool):
            return claimed is found
        return math.isclose(claimed, found, rel_tol=rel_tol)
    return bool(claimed == found)
