"""Provenance marks: where content comes from, in a total order of trust.

Trust only falls as content is derived: derived output takes the ``weakest`` mark of what
it was derived from (a meet on the order). Only a verifier (or the system) raises it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Provenance(StrEnum):
    """Where content comes from, strongest first (``rank``: higher is more trusted).

    HUMAN: a person's input, through the driver. SYSTEM: the runtime's own data.
    VERIFIED: checked against a primary source by a verifier (or the system). TOOL: a
    tool's or a resource's output, unchecked. UNVERIFIED_AGENT: an agent's or a model's
    output that nobody checked.
    """

    HUMAN = "human"
    SYSTEM = "system"
    VERIFIED = "verified"
    TOOL = "tool"
    UNVERIFIED_AGENT = "unverified_agent"

    @property
    def rank(self) -> int:
        """Trust as a number: 4 for HUMAN down to 0 for UNVERIFIED_AGENT."""
        return _RANK[self]

    def at_least(self, other: Provenance) -> bool:
        """Whether this mark is as trusted as ``other`` or more."""
        return _RANK[self] >= _RANK[other]

    def __repr__(self) -> str:  # as it is written in code: results print readably
        return f"Provenance.{self.name}"


_RANK = {mark: 4 - index for index, mark in enumerate(Provenance)}


def weakest(*marks: Provenance | Iterable[Provenance]) -> Provenance:
    """The least trusted of ``marks`` (the meet of the order), given as marks or
    iterables of marks; ``HUMAN`` (the top) for none at all.

    Raises:
        ValueError: an item is not a ``Provenance`` value.
    """
    low = Provenance.HUMAN
    for item in marks:
        for mark in (item,) if isinstance(item, (str, Provenance)) else item:
            mark = Provenance(mark)
            if _RANK[mark] < _RANK[low]:
                low = mark
    return low


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceTrust:
    """Which writers a resource believes about the provenance they claim, and how far.

    A write's claimed mark is capped at its writer's ceiling: the driver (``"system"``)
    is believed up to HUMAN; a writer listed in ``vouchers`` up to its mark (a declared
    verifier or publisher, at most VERIFIED); any other writer up to ``others``. A
    forged claim sent straight to the resource is thus recorded as what its writer can
    vouch for, and a ``requires`` above that is refused.

    Attributes:
        vouchers: writer name -> the strongest mark believed from it. Default none.
        others: the ceiling of every other writer. Default UNVERIFIED_AGENT.
    """

    vouchers: Mapping[str, Provenance] = field(default_factory=dict)
    others: Provenance = Provenance.UNVERIFIED_AGENT

    def ceiling(self, writer: str) -> Provenance:
        """The strongest mark believed from ``writer``."""
        if writer == "system":
            return Provenance.HUMAN
        return self.vouchers.get(writer, self.others)

    def believed(self, writer: str, claimed: Provenance) -> Provenance:
        """What a claim of ``writer`` is recorded as: the claim, capped at its ceiling."""
        ceiling = self.ceiling(writer)  # on every write's path: no ``weakest`` loop
        return claimed if _RANK[claimed] <= _RANK[ceiling] else ceiling
